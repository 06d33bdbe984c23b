package probe

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// rrProber is the netperf-style TCP_RR probe (one connection kept for the whole
// measurement) and, with connectEach, the TCP_CRR probe (connect, one round trip, close per
// transaction; the latency includes the connect). It speaks ServeEcho's protocol.
//
// With rate 0 transactions run back to back and each is timed from its own start. With a
// rate they follow the fixed timeline t0 + i/rate, and an overdue transaction is timed from
// its intended start, so a stalled target shows in the latency (see httpProber on
// coordinated omission and waitForSlot).
type rrProber struct {
	dialer      Dialer
	target      string
	rate        float64
	timeout     time.Duration
	connectEach bool

	conn net.Conn // TCP_RR: the kept connection, nil after a failure until redialled
	br   *bufio.Reader
	seq  uint32
	req  [rrRequestLen]byte
	hdr  [rrHeaderLen]byte
}

func (p *rrProber) prepare(ctx context.Context) error {
	if p.connectEach {
		return nil
	}
	if err := p.dial(ctx); err != nil {
		return fmt.Errorf("probe: connect to %s: %w", p.target, err)
	}
	return nil
}

func (p *rrProber) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

func (p *rrProber) dial(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	c, err := p.dialer.DialContext(dctx, "tcp", p.target)
	if err != nil {
		return err
	}
	p.conn = c
	if p.br == nil {
		p.br = bufio.NewReaderSize(c, 64<<10)
	} else {
		p.br.Reset(c)
	}
	return nil
}

// transaction is one timed unit: a round trip on the kept connection (redialled first if a
// previous failure dropped it), or connect + round trip + close.
func (p *rrProber) transaction(ctx context.Context) error {
	if p.conn == nil {
		if err := p.dial(ctx); err != nil {
			return err
		}
	}
	// Cancelling ctx interrupts a blocked read or write.
	c := p.conn
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err := p.roundTrip()
	stop()
	if err != nil || p.connectEach {
		p.close()
	}
	return err
}

func (p *rrProber) roundTrip() error {
	p.seq++
	copy(p.req[:4], rrMagic)
	binary.BigEndian.PutUint32(p.req[4:], p.seq)
	if err := p.conn.SetDeadline(time.Now().Add(p.timeout)); err != nil {
		return err
	}
	if _, err := p.conn.Write(p.req[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(p.br, p.hdr[:]); err != nil {
		return err
	}
	if string(p.hdr[:4]) != rrMagic {
		return fmt.Errorf("target %s does not speak the echo protocol (got %q)", p.target, p.hdr[:4])
	}
	if seq := binary.BigEndian.Uint32(p.hdr[4:8]); seq != p.seq {
		return fmt.Errorf("response for request %d, want %d", seq, p.seq)
	}
	n := binary.BigEndian.Uint32(p.hdr[8:12])
	if n > MaxEchoResponse {
		return fmt.Errorf("response of %d bytes exceeds %d", n, MaxEchoResponse)
	}
	_, err := p.br.Discard(int(n))
	return err
}

func (p *rrProber) window(ctx context.Context, d time.Duration, rec *recorder) (time.Duration, error) {
	t0 := time.Now()
	end := t0.Add(d)
	// Back to back against a failing target: back off (10 ms doubling to 500 ms) instead of
	// spinning.
	retry := backoff.NewExponentialBackOff()
	retry.InitialInterval, retry.MaxInterval, retry.Multiplier, retry.RandomizationFactor = 10*time.Millisecond, 500*time.Millisecond, 2, 0
	retry.Reset()
	failing := false
	for i := int64(0); ; i++ {
		var start time.Time
		if p.rate > 0 {
			slot := intendedAt(t0, i, p.rate)
			if !slot.Before(end) {
				break
			}
			var err error
			if start, err = waitForSlot(ctx, slot); err != nil {
				break
			}
		} else {
			start = time.Now()
			if !start.Before(end) {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		if err := p.transaction(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			rec.fail(err)
			if p.rate == 0 {
				failing = true
				wake := time.Now().Add(retry.NextBackOff())
				if wake.After(end) {
					wake = end
				}
				if sleepUntil(ctx, wake) != nil {
					break
				}
			}
			continue
		}
		if failing {
			failing = false
			retry.Reset()
		}
		rec.observe(time.Since(start))
	}
	return max(time.Since(t0), d), ctx.Err()
}

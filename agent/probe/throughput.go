package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// throughputProber is the iperf3-style bulk transfer probe against ServeDiscard. Each window
// is one connection: the sender writes as fast as the connection takes bytes for the window's
// duration, and the receiver, which times the same window from when it read the header,
// acknowledges how many bytes it read and over how long. The window's sample is the
// receiver's count over the receiver's time, so a slow reader shows even though the sender
// could fill socket buffers faster than the reader drains them.
type throughputProber struct {
	dialer  Dialer
	target  string
	timeout time.Duration
	buf     []byte
}

func (p *throughputProber) prepare(context.Context) error {
	p.buf = make([]byte, 128<<10)
	return nil
}

func (p *throughputProber) close() {}

func (p *throughputProber) window(ctx context.Context, d time.Duration, rec *recorder) (time.Duration, error) {
	t0 := time.Now()
	sent, received, elapsed, err := p.transfer(ctx, d)
	took := max(time.Since(t0), d)
	switch {
	case ctx.Err() != nil:
		return took, ctx.Err()
	case err != nil:
		rec.fail(err)
	case elapsed <= 0:
		rec.fail(fmt.Errorf("receiver reported a window of %s", elapsed))
	default:
		rec.observeThroughput(float64(received)/elapsed.Seconds(), sent, received)
	}
	return took, nil
}

func (p *throughputProber) transfer(ctx context.Context, d time.Duration) (sent, received int64, elapsed time.Duration, err error) {
	dctx, cancel := context.WithTimeout(ctx, p.timeout)
	c, err := p.dialer.DialContext(dctx, "tcp", p.target)
	cancel()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var hdr [tpHeaderLen]byte
	copy(hdr[:], tpMagic)
	binary.BigEndian.PutUint64(hdr[4:], uint64(d))
	c.SetWriteDeadline(time.Now().Add(p.timeout))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, 0, 0, fmt.Errorf("send header: %w", err)
	}
	// Write until the window is over; the deadline ends a write blocked on a full
	// connection.
	end := time.Now().Add(d)
	c.SetWriteDeadline(end)
	for time.Now().Before(end) {
		n, err := c.Write(p.buf)
		sent += int64(n)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return sent, 0, 0, fmt.Errorf("send: %w", err)
		}
	}
	if ctx.Err() != nil {
		return sent, 0, 0, ctx.Err()
	}
	var ack [tpAckLen]byte
	c.SetReadDeadline(time.Now().Add(p.timeout))
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return sent, 0, 0, fmt.Errorf("read receiver's acknowledgement: %w", err)
	}
	if string(ack[:4]) != tpAckMagic {
		return sent, 0, 0, fmt.Errorf("target %s does not speak the throughput protocol (got %q)", p.target, ack[:4])
	}
	received = int64(binary.BigEndian.Uint64(ack[4:12]))
	elapsed = time.Duration(binary.BigEndian.Uint64(ack[12:20]))
	return sent, received, elapsed, nil
}

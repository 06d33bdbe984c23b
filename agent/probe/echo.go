package probe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Wire protocols of the local targets. All integers are big-endian.
//
// Request/response (TCP_RR, TCP_CRR), served by ServeEcho:
//
//	request:  "EBRR" | seq uint32                         (8 bytes)
//	response: "EBRR" | seq uint32 | n uint32 | n bytes    (12 + n bytes)
//
// Throughput, served by ServeDiscard:
//
//	client:   "EBTP" | window int64 (ns) | bytes ... until the client closes
//	server:   "EBTA" | received int64 | elapsed int64 (ns)   sent once the window is over
//
// The server's window starts when it has read the header; it counts what it read until the
// window is over and acknowledges that, then discards the rest until the client closes.
const (
	rrMagic       = "EBRR"
	rrRequestLen  = 8
	rrHeaderLen   = 12
	tpMagic       = "EBTP"
	tpHeaderLen   = 12
	tpAckMagic    = "EBTA"
	tpAckLen      = 20
	serverIOLimit = 30 * time.Second // idle bound on a target's reads and writes
)

// MaxEchoResponse bounds ServeEcho's response size and what the TCP probes accept.
const MaxEchoResponse = 16 << 20

// ServeEcho serves the request/response protocol of the TCP_RR and TCP_CRR probes on ln:
// for every request it waits delay() (when delay is not nil and returns > 0) and answers
// with respSize payload bytes. It is the real target of e2e tests and the demo. It returns
// nil once ln is closed, after closing the connections it accepted and waiting for their
// handlers.
func ServeEcho(ln net.Listener, respSize int, delay func() time.Duration) error {
	if respSize < 0 || respSize > MaxEchoResponse {
		ln.Close()
		return fmt.Errorf("probe: echo response size must be between 0 and %d, got %d", MaxEchoResponse, respSize)
	}
	return serve(ln, func(c net.Conn) { echoConn(c, respSize, delay) })
}

func echoConn(c net.Conn, respSize int, delay func() time.Duration) {
	br := bufio.NewReader(c)
	var req [rrRequestLen]byte
	resp := make([]byte, rrHeaderLen+respSize)
	copy(resp, rrMagic)
	binary.BigEndian.PutUint32(resp[8:12], uint32(respSize))
	for i := rrHeaderLen; i < len(resp); i++ {
		resp[i] = byte(i)
	}
	for {
		// The idle bound only applies between requests; a client that keeps a connection
		// open without sending is dropped after serverIOLimit.
		c.SetReadDeadline(time.Now().Add(serverIOLimit))
		if _, err := io.ReadFull(br, req[:]); err != nil {
			return
		}
		if string(req[:4]) != rrMagic {
			return
		}
		sleep(delay)
		copy(resp[4:8], req[4:8])
		c.SetWriteDeadline(time.Now().Add(serverIOLimit))
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// ServeDiscard serves the throughput probe's protocol on ln, reading as fast as it can. It
// returns nil once ln is closed.
func ServeDiscard(ln net.Listener) error { return ServeDiscardLimited(ln, 0) }

// ServeDiscardLimited is ServeDiscard with each connection's reads paced to bytesPerSecond
// (0 means unlimited): a slow reader, whose back-pressure the throughput probe must show.
func ServeDiscardLimited(ln net.Listener, bytesPerSecond int64) error {
	if bytesPerSecond < 0 {
		ln.Close()
		return fmt.Errorf("probe: discard rate must be >= 0, got %d", bytesPerSecond)
	}
	return serve(ln, func(c net.Conn) { discardConn(c, bytesPerSecond) })
}

func discardConn(c net.Conn, rate int64) {
	var hdr [tpHeaderLen]byte
	c.SetReadDeadline(time.Now().Add(serverIOLimit))
	if _, err := io.ReadFull(c, hdr[:]); err != nil || string(hdr[:4]) != tpMagic {
		return
	}
	window := time.Duration(binary.BigEndian.Uint64(hdr[4:]))
	if window <= 0 || window > MaxDuration {
		return
	}
	start := time.Now()
	end := start.Add(window)
	c.SetReadDeadline(end)
	buf := make([]byte, 256<<10)
	chunk := len(buf)
	if rate > 0 {
		chunk = int(min(max(rate/100, 1), int64(len(buf)))) // about 100 reads per second
	}
	var received int64
	for {
		n, err := c.Read(buf[:chunk])
		received += int64(n)
		if err != nil {
			var ne net.Error
			if errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(received) / float64(rate) * float64(time.Second)))
			if due.After(end) {
				due = end
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		// The deadline only interrupts a read once its timer has fired, which can be late
		// on a busy machine; meanwhile reads of buffered data would go on succeeding.
		if !time.Now().Before(end) {
			break
		}
	}
	elapsed := time.Since(start)
	var ack [tpAckLen]byte
	copy(ack[:], tpAckMagic)
	binary.BigEndian.PutUint64(ack[4:12], uint64(received))
	binary.BigEndian.PutUint64(ack[12:20], uint64(elapsed))
	c.SetWriteDeadline(time.Now().Add(serverIOLimit))
	if _, err := c.Write(ack[:]); err != nil {
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(serverIOLimit))
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// serve accepts on ln until it is closed, running handle for each connection; then it
// closes the open connections and waits for their handlers.
func serve(ln net.Listener, handle func(net.Conn)) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			handle(c)
		})
	}
}

// Delay is a delay that can be changed while servers read it, for DelayHandler and
// ServeEcho: pass d.Get, then d.Set to change it. The zero value is no delay.
type Delay struct{ ns atomic.Int64 }

// Set changes the delay; later requests see it.
func (d *Delay) Set(v time.Duration) { d.ns.Store(int64(v)) }

// Get returns the current delay.
func (d *Delay) Get() time.Duration { return time.Duration(d.ns.Load()) }

// DelayHandler answers every request with 200 "ok\n" after waiting delay() (when delay is
// not nil and returns > 0; the wait ends early if the client goes away). It is the HTTP
// probe's real target in e2e tests and the demo; changing the delay at run time creates a
// real, measured regression.
func DelayHandler(delay func() time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay != nil {
			if d := delay(); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "ok\n")
	})
}

func sleep(delay func() time.Duration) {
	if delay == nil {
		return
	}
	if d := delay(); d > 0 {
		time.Sleep(d)
	}
}

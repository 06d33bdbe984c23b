package probe

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTCPRRSeesDelay(t *testing.T) {
	var delay Delay
	ln := startEcho(t, 64, delay.Get)
	spec := newSpec(kindRR, ln.Addr().String(), 0, 300*time.Millisecond)
	opts := Options{Windows: 2}

	fast := mustRun(t, spec, opts)
	delay.Set(10 * time.Millisecond)
	slow := mustRun(t, spec, opts)
	t.Logf("no delay: p50 %.3fms %.0f ops/s; 10ms delay: p50 %.3fms %.0f ops/s", fast.P50Ms, fast.OpsPerSecond, slow.P50Ms, slow.OpsPerSecond)

	if fast.Errors != 0 || slow.Errors != 0 {
		t.Errorf("errors %d and %d (last %q %q), want none", fast.Errors, slow.Errors, fast.LastError, slow.LastError)
	}
	if fast.Count < 100 || fast.P50Ms >= 5 {
		t.Errorf("no delay: %d round trips p50 %.3fms, want >= 100 and < 5ms", fast.Count, fast.P50Ms)
	}
	if slow.P50Ms < 10 || slow.MinMs < 10 {
		t.Errorf("10ms delay: p50 %.3fms min %.3fms, want >= 10ms", slow.P50Ms, slow.MinMs)
	}
	if slow.OpsPerSecond <= 0 || slow.OpsPerSecond > 100 || fast.OpsPerSecond < 4*slow.OpsPerSecond {
		t.Errorf("ops/s %.1f without and %.1f with the delay; one connection can do at most 100/s at 10ms", fast.OpsPerSecond, slow.OpsPerSecond)
	}
	if got := ln.accepted.Load(); got != 2 {
		t.Errorf("%d connections accepted, want one per measurement", got)
	}
}

func TestTCPRRAtRate(t *testing.T) {
	ln := startEcho(t, 1, nil)
	res := mustRun(t, newSpec(kindRR, ln.Addr().String(), 100, 300*time.Millisecond), Options{Windows: 1})
	if res.Count != 30 || res.Errors != 0 {
		t.Errorf("count %d errors %d, want 30 round trips (100/s x 300ms)", res.Count, res.Errors)
	}
	if res.OpsPerSecond < 50 || res.OpsPerSecond > 101 {
		t.Errorf("ops/s %.1f, want about 100", res.OpsPerSecond)
	}
}

func TestTCPCRR(t *testing.T) {
	ln := startEcho(t, 128, nil)
	res := mustRun(t, newSpec(kindCRR, ln.Addr().String(), 0, 300*time.Millisecond), Options{Windows: 1, Warmup: 50 * time.Millisecond})
	t.Logf("CRR: %d transactions p50 %.3fms %.0f ops/s", res.Count, res.P50Ms, res.OpsPerSecond)
	if res.Count < 10 || res.Errors != 0 || res.P50Ms <= 0 || res.OpsPerSecond <= 0 {
		t.Errorf("count %d errors %d (last %q) p50 %.3f ops/s %.1f", res.Count, res.Errors, res.LastError, res.P50Ms, res.OpsPerSecond)
	}
	// One connection per transaction, the warm-up's included.
	if got := ln.accepted.Load(); got <= res.Count {
		t.Errorf("%d connections accepted for %d measured transactions, want one each plus the warm-up's", got, res.Count)
	}
}

func TestTCPRRTargetDown(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	_, err := Run(context.Background(), newSpec(kindRR, addr, 0, 100*time.Millisecond), Options{Windows: 1})
	if err == nil || !strings.Contains(err.Error(), "connect to "+addr) {
		t.Errorf("error %v, want a connect error naming %s", err, addr)
	}
}

func TestTCPRRWrongProtocol(t *testing.T) {
	// A target that answers every 8 bytes with 12 bytes of something else.
	ln := startServer(t, func(ln net.Listener) error {
		return serve(ln, func(c net.Conn) {
			buf := make([]byte, rrRequestLen)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write([]byte("HTTP/1.1 400")); err != nil {
					return
				}
			}
		})
	})
	spec := newSpec(kindRR, ln.Addr().String(), 0, 100*time.Millisecond)
	res := runErr(t, spec, Options{Windows: 1}, ErrNoSuccess)
	if res.Errors == 0 || !strings.Contains(res.LastError, "echo protocol") {
		t.Errorf("errors %d last %q, want protocol errors", res.Errors, res.LastError)
	}
}

func TestServeEchoClosesConnectionsOnStop(t *testing.T) {
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- ServeEcho(ln, 4, nil) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("EBRR\x00\x00\x00\x07")); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, rrHeaderLen+4)
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	if string(resp[:8]) != "EBRR\x00\x00\x00\x07" || string(resp[8:12]) != "\x00\x00\x00\x04" {
		t.Fatalf("response header %q", resp[:12])
	}
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("ServeEcho returned %v, want nil after Close", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(resp); !errors.Is(err, io.EOF) {
		t.Errorf("read after stop: %v, want EOF (connection closed by the server)", err)
	}
	if err := ServeEcho(listen(t), -1, nil); err == nil {
		t.Error("ServeEcho accepted a negative response size")
	}
}

package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v5"
)

// failover sends each call to the controllers of --server a,b,c in turn, starting with the one
// that answered last, and moves to the next when a node does not accept the connection: the
// call was not sent, so any call (a write too) is safe to send again. An answer, an error
// after the call was sent, or a TLS failure (a wrong --ca is not an outage) ends the call there.
// Any node serves every call (it forwards to the leader), so a dead node costs one refused
// connection, not the call.
type failover struct {
	next    http.RoundTripper
	servers []*url.URL

	mu      sync.Mutex
	current int
}

func newFailover(next http.RoundTripper, servers []string) (*failover, error) {
	f := &failover{next: next}
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		f.servers = append(f.servers, u)
	}
	return f, nil
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	start := f.current
	f.mu.Unlock()
	var lastErr error
	for i := range f.servers {
		idx := (start + i) % len(f.servers)
		r := req.Clone(req.Context())
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, lastErr // a streaming body cannot be sent again
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, lastErr
			}
			r.Body = body
		}
		u := f.servers[idx]
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, ""
		res, err := f.next.RoundTrip(r)
		if err == nil {
			f.mu.Lock()
			f.current = idx
			f.mu.Unlock()
			return res, nil
		}
		if !notSent(err) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// notSent says whether err means the connection was never made (refused, unreachable, no
// answer to the dial), so the request did not leave this process.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryUnavailableFor bounds retryUnavailable: a leader election takes a few seconds.
const retryUnavailableFor = 10 * time.Second

// retryUnavailable sends a unary call again, with backoff, while it fails with UNAVAILABLE and
// the call's deadline allows: the controller answers UNAVAILABLE only for a call it did not
// propose (no leader known yet, the leader unreachable from the node that forwarded it, a node
// shutting down), so any call, a write too, is safe to send again. Through the failover
// transport the next attempt may go to another node. A write whose outcome is unknown comes
// back as UNKNOWN and is not sent again here; only the commands for which a repeat is safe
// finish it themselves (labelCluster, sendAgain). When the deadline passes, the last UNAVAILABLE is
// the answer, and after retryUnavailableFor: a group that has no leader for that long is down,
// not failing over.
func retryUnavailable() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval, b.MaxInterval = 100*time.Millisecond, time.Second
			var last error
			res, err := backoff.Retry(ctx, func() (connect.AnyResponse, error) {
				res, err := next(ctx, req)
				if connect.CodeOf(err) == connect.CodeUnavailable {
					last = err
					return nil, err
				}
				last = nil
				if err != nil {
					return nil, backoff.Permanent(err)
				}
				return res, nil
			}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(retryUnavailableFor))
			if err != nil && last != nil {
				return nil, last
			}
			return res, err
		}
	}
}

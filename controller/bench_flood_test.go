package controller_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// fromAddress is sec's HTTPS client with connections from source address ip (any of 127/8
// reaches the node over loopback).
func fromAddress(sec *controllertest.Security, ip string) *http.Client {
	tr := sec.Client(nil).Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr}
}

// BenchmarkCallsUnderFlood: from 127.0.0.1, an operator lists profiles with a good token and
// an agent without credentials tries a join; in alternate rounds, 127.0.0.2 floods the node
// with calls carrying a wrong token and anonymous joins. Reported: the p50 of the first
// source's calls in quiet and flooded rounds, their ratio, and how many of its calls were
// refused (rate-limited) in each: 0 in both when the limits are per source (with one bucket
// for every anonymous caller, the flood's joins used up the agent's).
//
//	go test ./controller -run '^$' -bench CallsUnderFlood -benchtime 5x
func BenchmarkCallsUnderFlood(b *testing.B) {
	sec := controllertest.NewSecurity(b)
	url := controllertest.StartSecureCluster(b, 1, sec, nil)[0].URL
	good := fromAddress(sec, "127.0.0.1")
	bad := fromAddress(sec, "127.0.0.2")
	profiles := c.NewProfileServiceClient(good, url, sec.Bearer("admin"))
	joins := c.NewAgentServiceClient(good, url)
	ctx := context.Background()
	n := 0
	victim := func() (time.Duration, bool) {
		n++
		token := fmt.Sprintf("v%05d.0000000000000000", n%100000) // each agent its own token
		start := time.Now()
		_, err := profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{}))
		refused := connect.CodeOf(err) == connect.CodeResourceExhausted
		if err != nil && !refused {
			b.Fatalf("ListProfiles: %v", err)
		}
		if n%2 == 0 {
			_, err = joins.JoinCluster(ctx, connect.NewRequest(&ebbflowv1.JoinClusterRequest{Token: token, CsrPem: floodCSR}))
			refused = refused || connect.CodeOf(err) == connect.CodeResourceExhausted
		}
		return time.Since(start), refused
	}
	flood := func(stop <-chan struct{}, sent *atomic.Int64) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				wrong := c.NewProfileServiceClient(bad, url, connect.WithInterceptors(bearerInterceptor("not-a-token")))
				anon := c.NewAgentServiceClient(bad, url)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if i%2 == 0 {
						_, _ = wrong.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{}))
					} else {
						tok := fmt.Sprintf("f%05d.0000000000000000", (w*1000000+i)%100000)
						_, _ = anon.JoinCluster(ctx, connect.NewRequest(&ebbflowv1.JoinClusterRequest{Token: tok, CsrPem: floodCSR}))
					}
					sent.Add(1)
				}
			})
		}
		wg.Wait()
	}
	// The first source stays within its own limits: a call every 20 ms (50/s against the
	// default 100/s per actor and per anonymous address).
	const calls = 100
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var quiet, flooded []time.Duration
	var refusedQuiet, refusedFlooded int
	var floodCalls atomic.Int64
	floodTime := time.Duration(0)
	round := func(into *[]time.Duration, refused *int) {
		for range calls {
			<-tick.C
			d, r := victim()
			*into = append(*into, d)
			if r {
				*refused++
			}
		}
	}
	for b.Loop() {
		round(&quiet, &refusedQuiet)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { flood(stop, &floodCalls); close(done) }()
		start := time.Now()
		round(&flooded, &refusedFlooded)
		close(stop)
		<-done
		floodTime += time.Since(start)
	}
	p50 := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	q, f := p50(quiet), p50(flooded)
	b.ReportMetric(q, "quiet-p50-ms")
	b.ReportMetric(f, "flooded-p50-ms")
	b.ReportMetric(f/q, "flooded/quiet")
	b.ReportMetric(float64(refusedQuiet), "refused-quiet")
	b.ReportMetric(float64(refusedFlooded), "refused-flooded")
	b.ReportMetric(float64(floodCalls.Load())/floodTime.Seconds(), "flood-calls/s")
}

// bearerInterceptor sends token as a bearer token.
func bearerInterceptor(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// floodCSR is a well-formed certificate request for the joins of the flood benchmark.
var floodCSR = func() string {
	_, b, err := pki.NewKeyAndCSR("agent")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Config wires an agent loop.
type Config struct {
	Cluster string
	Labels  map[string]string
	Version string
	Client  ebbflowv1.AgentServiceClient
	Logger  *slog.Logger
	// Inventory collects the cluster's inventory; nil registers without one.
	Inventory func(ctx context.Context) (*ebbflowv1.Inventory, error)
	// OnAssignment is called with every new assignment, in order, from one goroutine.
	OnAssignment func(ctx context.Context, a *ebbflowv1.Assignment)
	// MaxBackoff caps the wait between reconnects (default 15s).
	MaxBackoff time.Duration
}

// Loop is a running agent: registered, following its assignment, and alive to the
// controller. A controller that counts an open assignment stream as liveness (it says so when
// the agent registers) hears a Heartbeat only while the stream is down; an older one every
// interval.
type Loop struct {
	cfg Config
	log *slog.Logger

	// kick asks the heartbeat loop to beat now: the assignment stream broke or reopened,
	// maybe on another node or under a new leader, which should count this agent as alive
	// at once rather than an interval later.
	kick chan struct{}

	mu             sync.Mutex
	current        *ebbflowv1.Assignment
	interval       time.Duration
	streamLiveness bool // the controller counts an open stream as liveness
	streaming      bool // the assignment stream is open (its first message arrived)
}

// New builds a loop; Run starts it.
func New(cfg Config) *Loop {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	return &Loop{cfg: cfg, log: cfg.Logger.With("cluster", cfg.Cluster), interval: 10 * time.Second, kick: make(chan struct{}, 1)}
}

// Current is the last assignment received (nil before the first).
func (l *Loop) Current() *ebbflowv1.Assignment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current
}

// Run registers (retrying), then heartbeats and follows the assignment stream until ctx ends,
// reconnecting with jittered exponential backoff whenever the stream breaks.
func (l *Loop) Run(ctx context.Context) error {
	if err := l.register(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.heartbeat(ctx) }()
	defer wg.Wait()
	b := newBackoff(l.cfg.MaxBackoff)
	for {
		err := l.watch(ctx, b)
		if ctx.Err() != nil {
			return nil
		}
		if status.Code(err) == codes.NotFound {
			// The controller forgot the cluster (deleted, or a restored snapshot): register again.
			if err := l.register(ctx); err != nil {
				return err
			}
		}
		l.beatNow()
		d := b.NextBackOff()
		l.log.Warn("assignment stream broke; reconnecting", "err", err, "in", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

func (l *Loop) register(ctx context.Context) error {
	b := newBackoff(l.cfg.MaxBackoff)
	for {
		req := &ebbflowv1.RegisterAgentRequest{Cluster: l.cfg.Cluster, Labels: l.cfg.Labels, AgentVersion: l.cfg.Version}
		var err error
		if l.cfg.Inventory != nil {
			req.Inventory, err = l.cfg.Inventory(ctx)
			if err != nil {
				l.log.Warn("inventory failed; registering without it", "err", err)
			}
		}
		res, err := l.cfg.Client.RegisterAgent(ctx, req)
		if err == nil {
			l.mu.Lock()
			if d := res.GetHeartbeatInterval().AsDuration(); d > 0 {
				l.interval = d
			}
			l.streamLiveness = res.GetStreamLiveness()
			l.mu.Unlock()
			l.log.Info("registered", "generation", res.GetCluster().GetGeneration())
			return nil
		}
		if status.Code(err) == codes.InvalidArgument {
			return fmt.Errorf("register: %w", err)
		}
		d := b.NextBackOff()
		l.log.Warn("register failed; retrying", "err", err, "in", d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func (l *Loop) watch(ctx context.Context, b *backoff.ExponentialBackOff) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := l.cfg.Client.WatchAssignment(ctx, &ebbflowv1.WatchAssignmentRequest{Cluster: l.cfg.Cluster})
	if err != nil {
		return err
	}
	defer l.setStreaming(false)
	for {
		res, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("controller closed the stream")
			}
			return err
		}
		b.Reset()
		l.setStreaming(true)
		a := res.GetAssignment()
		if a == nil {
			continue
		}
		l.mu.Lock()
		l.current = a
		l.mu.Unlock()
		l.log.Info("assignment", "id", a.GetId(), "action", a.GetAction().String(), "phase", a.GetPhase().String())
		if l.cfg.OnAssignment != nil {
			l.cfg.OnAssignment(ctx, a)
		}
	}
}

func (l *Loop) setStreaming(on bool) {
	l.mu.Lock()
	opened := on && !l.streaming
	l.streaming = on
	l.mu.Unlock()
	if opened {
		l.beatNow()
	}
}

// beatNow asks for a heartbeat now (see kick).
func (l *Loop) beatNow() {
	select {
	case l.kick <- struct{}{}:
	default: // one is pending already
	}
}

// Streaming reports whether the assignment stream is open.
func (l *Loop) Streaming() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streaming
}

// heartbeat beats every interval while the stream is down (or always, for a controller that
// does not count streams), and at once when kicked, whatever the stream: a kicked beat that
// fails is retried with backoff until one gets through, so an agent whose node or leader
// changed is counted alive as soon as a leader answers.
func (l *Loop) heartbeat(ctx context.Context) {
	var retry *backoff.ExponentialBackOff // set while a kicked beat has not got through
	for {
		l.mu.Lock()
		interval := l.interval
		l.mu.Unlock()
		d := interval
		if retry != nil {
			d = min(d, retry.NextBackOff())
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-l.kick:
			t.Stop()
			if retry == nil {
				retry = newBackoff(l.cfg.MaxBackoff)
			}
		}
		l.mu.Lock()
		cur, skip := l.current, l.streamLiveness && l.streaming && retry == nil
		l.mu.Unlock()
		if skip {
			continue // the open stream is the liveness
		}
		hctx, cancel := context.WithTimeout(ctx, interval)
		_, err := l.cfg.Client.Heartbeat(hctx, &ebbflowv1.HeartbeatRequest{
			Cluster: l.cfg.Cluster, AssignmentId: cur.GetId(), Phase: cur.GetPhase(),
		})
		cancel()
		switch {
		case err == nil:
			retry = nil
		case ctx.Err() == nil:
			l.log.Debug("heartbeat failed", "err", err)
		}
	}
}

// newBackoff is the reconnect backoff: 200 ms doubling up to max, each wait jittered by
// ±50% so a fleet that lost its controller at once does not come back at once; it never gives
// up by itself.
func newBackoff(max time.Duration) *backoff.ExponentialBackOff {
	return exponential(200*time.Millisecond, max, 0.5)
}

// exponential is backoff from initial doubling to max, jittered by ±jitter, without end.
func exponential(initial, max time.Duration, jitter float64) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier, b.RandomizationFactor = initial, max, 2, jitter
	b.Reset()
	return b
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

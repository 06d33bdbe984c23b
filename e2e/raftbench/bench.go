package raftbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Labels of the sides.
const (
	EbbflowLabel = "ebbflow"
	EtcdLabel    = "etcd"
)

// Options configure a benchmark run.
type Options struct {
	// Clients are the concurrencies of writes mode, in order.
	Clients []int
	// Duration is one measured run of one side at one concurrency.
	Duration time.Duration
	// Rounds of every concurrency; the tables show the median.
	Rounds int
	// ValueSize is the size of every written value in bytes (for ebbflow, the label values).
	ValueSize int
	// LeaderOnly sends every write mode client to the leader (ebbflow) or the leader's endpoint
	// alone (etcd), instead of spreading them over the nodes.
	LeaderOnly bool

	// Kills per side in failover mode.
	Kills int
	// FailoverClients write steadily while the leader is killed.
	FailoverClients int
	// CallTimeout bounds each failover write; a failed write is retried on the next node.
	CallTimeout time.Duration
	// RecoveryTimeout is how long a kill waits for the first acknowledged write.
	RecoveryTimeout time.Duration

	// Dir holds the data and logs of every node.
	Dir string
	// Log is told of progress (nil: discarded).
	Log io.Writer
}

func (o *Options) defaults() error {
	if len(o.Clients) == 0 {
		o.Clients = []int{1, 16, 64}
	}
	for _, c := range o.Clients {
		if c < 1 {
			return fmt.Errorf("raftbench: clients must be at least 1, got %d", c)
		}
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	o.Rounds = max(o.Rounds, 1)
	if o.ValueSize == 0 {
		o.ValueSize = 256
	}
	if o.ValueSize < MinValueSize {
		return fmt.Errorf("raftbench: value size must be at least %d bytes, got %d", MinValueSize, o.ValueSize)
	}
	if o.FailoverClients <= 0 {
		o.FailoverClients = 4
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 300 * time.Millisecond
	}
	if o.RecoveryTimeout <= 0 {
		o.RecoveryTimeout = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Dir == "" {
		return errors.New("raftbench: Options.Dir is required")
	}
	return nil
}

// SideSpec says how to start one side.
type SideSpec struct {
	Label string
	// Bin is a fleet-controller, or etcd when Etcd is set.
	Bin  string
	Etcd bool
	// Flags are added to every fleet-controller node's command line.
	Flags []string
}

// StartSides starts every side under dir, one after another; on an error the ones started are
// stopped.
func StartSides(ctx context.Context, dir string, specs []SideSpec, log io.Writer) ([]Side, error) {
	var sides []Side
	for _, sp := range specs {
		fmt.Fprintf(log, "raftbench: starting %s (%s)\n", sp.Label, sp.Bin)
		var s Side
		var err error
		if sp.Etcd {
			s, err = StartEtcd(ctx, sp.Label, sp.Bin, dir)
		} else {
			s, err = StartEbbflow(ctx, sp.Label, sp.Bin, dir, sp.Flags)
		}
		if err != nil {
			StopSides(sides)
			return nil, err
		}
		sides = append(sides, s)
	}
	return sides, nil
}

// StopSides stops every side.
func StopSides(sides []Side) {
	for _, s := range sides {
		s.Stop()
	}
}

// rotate is sides starting at the k-th, wrapping around: each round (or kill) starts with a
// different side, so none always runs first or right after another.
func rotate(sides []Side, k int) []Side {
	if len(sides) == 0 {
		return nil
	}
	k %= len(sides)
	return append(slices.Clone(sides[k:]), sides[:k]...)
}

// prepare makes n keys prefix0, prefix1, ... with values of size bytes exist on every side, each
// side with its own tracker of them. labels are the sides' labels, up to the one that failed.
func prepare(ctx context.Context, sides []Side, prefix string, n, size int) (labels []string, trackers map[Side]*tracker, err error) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	trackers = map[Side]*tracker{}
	for _, s := range sides {
		labels = append(labels, s.Label())
		trackers[s] = newTracker(keys, size)
		if err := s.Prepare(ctx, trackers[s]); err != nil {
			return labels, trackers, fmt.Errorf("raftbench: %s: prepare %d keys: %w", s.Label(), len(keys), err)
		}
	}
	return labels, trackers, nil
}

// WriteRun is one measured run of one side at one concurrency.
type WriteRun struct {
	Side    string  `json:"side"`
	Clients int     `json:"clients"`
	Round   int     `json:"round"`
	Acked   int64   `json:"acked"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	// PerSecond is acknowledged writes per second.
	PerSecond float64 `json:"writesPerSecond"`
	// P50 and P99 are latencies of acknowledged writes in seconds (-1 in JSON: none).
	P50       float64 `json:"p50Seconds"`
	P99       float64 `json:"p99Seconds"`
	LastError string  `json:"lastError,omitempty"`
}

// WritesResult is writes mode's runs.
type WritesResult struct {
	Sides      []string   `json:"sides"`
	Clients    []int      `json:"clients"`
	Rounds     int        `json:"rounds"`
	Duration   string     `json:"duration"`
	ValueSize  int        `json:"valueSize"`
	LeaderOnly bool       `json:"leaderOnly"`
	Runs       []WriteRun `json:"runs"`
}

// median is the median over rounds of get, for one side and concurrency.
func (r *WritesResult) median(side string, clients int, get func(WriteRun) float64) float64 {
	var xs []float64
	for _, run := range r.Runs {
		if run.Side == side && run.Clients == clients {
			if v := get(run); !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
	}
	return Quantile(xs, 0.5)
}

// total sums get over the rounds of one side and concurrency.
func (r *WritesResult) total(side string, clients int, get func(WriteRun) float64) float64 {
	s, n := 0.0, 0
	for _, run := range r.Runs {
		if run.Side == side && run.Clients == clients {
			s += get(run)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s
}

// Writes runs writes mode: for every concurrency and round, each side in turn (rotated every
// round) gets the same closed-loop load for o.Duration after a short warm-up. It returns what
// ran until the first error.
func Writes(ctx context.Context, o Options, sides []Side) (*WritesResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	res := &WritesResult{Clients: o.Clients, Rounds: o.Rounds, Duration: o.Duration.String(), ValueSize: o.ValueSize, LeaderOnly: o.LeaderOnly}
	var trackers map[Side]*tracker
	var err error
	if res.Sides, trackers, err = prepare(ctx, sides, "bench-", slices.Max(o.Clients), o.ValueSize); err != nil {
		return res, err
	}
	warm := min(time.Second, o.Duration/5)
	for _, c := range o.Clients {
		for round := range o.Rounds {
			for _, s := range rotate(sides, round) {
				run, err := writeRun(ctx, o, s, trackers[s], c, warm)
				run.Round = round + 1
				res.Runs = append(res.Runs, run)
				if err != nil {
					return res, err
				}
				line := fmt.Sprintf("raftbench: writes: %d clients, round %d, %s: %s, p50 %s, p99 %s, %d errors", c, round+1, s.Label(),
					format(perSecond, run.PerSecond), format(seconds, run.P50), format(seconds, run.P99), run.Errors)
				if run.LastError != "" {
					line += " (last: " + run.LastError + ")"
				}
				fmt.Fprintln(o.Log, line)
			}
		}
	}
	return res, nil
}

func writeRun(ctx context.Context, o Options, s Side, t *tracker, clients int, warm time.Duration) (WriteRun, error) {
	run := WriteRun{Side: s.Label(), Clients: clients, P50: math.NaN(), P99: math.NaN(), PerSecond: math.NaN()}
	if err := s.Exited(); err != nil {
		return run, err
	}
	kvs, done, err := s.Clients(ctx, clients, o.LeaderOnly)
	if err != nil {
		return run, err
	}
	defer done()
	const perCall = 10 * time.Second
	if warm > 0 {
		w := &load{kvs: kvs, t: t, perCall: perCall}
		w.run(ctx, time.Now().Add(warm))
	}
	l := &load{kvs: kvs, t: t, perCall: perCall}
	start := time.Now()
	l.run(ctx, start.Add(o.Duration))
	el := time.Since(start)
	if err := ctx.Err(); err != nil {
		return run, err
	}
	lat := l.latencies()
	run.Acked, run.Errors, run.Seconds = l.acked.Load(), l.failed.Load(), el.Seconds()
	run.PerSecond = float64(run.Acked) / el.Seconds()
	run.P50, run.P99 = Quantile(lat, 0.5), Quantile(lat, 0.99)
	if err := l.err(); err != nil {
		run.LastError = err.Error()
	}
	return run, s.Exited()
}

// Kill is one leader kill of failover mode.
type Kill struct {
	Side string `json:"side"`
	N    int    `json:"n"`
	// Leader is the node killed; NewLeader the one leading once it was back.
	Leader    string `json:"leader"`
	NewLeader string `json:"newLeader"`
	// Failover is the time in seconds from the SIGKILL to the first acknowledged write sent
	// after it (NaN, -1 in JSON: none within the recovery timeout).
	Failover float64 `json:"failoverSeconds"`
	// Healthy is the time in seconds from the restart to a healthy group.
	Healthy float64 `json:"healthySeconds"`
	// FailedWrites failed (timed out or refused) while this kill's load ran.
	FailedWrites int64 `json:"failedWrites"`
	// LastError is the last failed write's error.
	LastError string `json:"lastError,omitempty"`
	Check     Check  `json:"check"`
}

// Check is a linearizable read of every key compared with its last acknowledged write.
type Check struct {
	Keys int `json:"keys"`
	// Lost reads returned less than the last acknowledged write (and not one of the key's
	// failed writes).
	Lost int `json:"lostAckedWrites"`
	// Late reads returned less than the last acknowledged write, but one of the key's failed
	// writes: it was still pending when the client gave up on it, so it may apply late.
	Late       int `json:"lateUnackedWrites"`
	ReadErrors int `json:"readErrors"`
}

func (c *Check) add(o Check) {
	c.Keys += o.Keys
	c.Lost += o.Lost
	c.Late += o.Late
	c.ReadErrors += o.ReadErrors
}

// FailoverResult is failover mode's kills and final checks.
type FailoverResult struct {
	Sides       []string         `json:"sides"`
	Clients     int              `json:"clients"`
	CallTimeout string           `json:"callTimeout"`
	Kills       []Kill           `json:"kills"`
	Final       map[string]Check `json:"final"`
}

// Failover runs failover mode: o.Kills times, each side in turn (rotated every time) gets a
// steady load of o.FailoverClients clients, its leader is SIGKILLed, the first acknowledged write
// after it is timed, the node restarts and the group heals, the load stops and every key is
// checked. A final check of every side ends it. It returns what ran until the first error.
func Failover(ctx context.Context, o Options, sides []Side) (*FailoverResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	res := &FailoverResult{Clients: o.FailoverClients, CallTimeout: o.CallTimeout.String(), Final: map[string]Check{}}
	var trackers map[Side]*tracker
	var err error
	if res.Sides, trackers, err = prepare(ctx, sides, "failover-", o.FailoverClients, o.ValueSize); err != nil {
		return res, err
	}
	for k := range o.Kills {
		for _, s := range rotate(sides, k) {
			kill, err := killOnce(ctx, o, s, trackers[s])
			kill.N = k + 1
			res.Kills = append(res.Kills, kill)
			if err != nil {
				return res, fmt.Errorf("raftbench: %s: kill %d: %w", s.Label(), k+1, err)
			}
			fmt.Fprintf(o.Log, "raftbench: failover: %s kill %d: leader %s killed, first write after %s, %s leads, healthy %s after the restart, %d failed writes (last: %s); %s\n",
				s.Label(), k+1, kill.Leader, format(seconds, kill.Failover), kill.NewLeader, format(seconds, kill.Healthy), kill.FailedWrites, kill.LastError, kill.Check)
		}
	}
	for _, s := range sides {
		c, err := check(ctx, s, trackers[s], o.Log)
		res.Final[s.Label()] = c
		if err != nil {
			return res, err
		}
		fmt.Fprintf(o.Log, "raftbench: failover: %s final check: %s\n", s.Label(), c)
	}
	return res, nil
}

func (c Check) String() string {
	return fmt.Sprintf("%d keys read: %d lost acknowledged writes, %d unacknowledged writes applied late, %d read errors",
		c.Keys, c.Lost, c.Late, c.ReadErrors)
}

func killOnce(ctx context.Context, o Options, s Side, t *tracker) (Kill, error) {
	kill := Kill{Side: s.Label(), Failover: math.NaN(), Healthy: math.NaN()}
	if err := s.Exited(); err != nil {
		return kill, err
	}
	kvs, done, err := s.Clients(ctx, len(t.keys), false)
	if err != nil {
		return kill, err
	}
	defer done()
	var killedAt atomic.Pointer[time.Time]
	recovered := make(chan time.Time, 1)
	var once sync.Once
	l := &load{kvs: kvs, t: t, perCall: o.CallTimeout, pause: 5 * time.Millisecond,
		onAck: func(sent, acked time.Time) {
			if k := killedAt.Load(); k != nil && sent.After(*k) {
				once.Do(func() { recovered <- acked })
			}
		}}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { l.run(lctx, time.Time{}) })
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopLoad()
			wg.Wait()
		}
	}
	defer stop()

	// Every client has written, and the load has run a little while.
	if err := poll(ctx, 30*time.Second, s.Label()+": writes before the kill", func(context.Context) error {
		if n := l.acked.Load(); n < int64(len(kvs)) {
			return fmt.Errorf("%d writes acknowledged (last error: %v)", n, l.err())
		}
		return nil
	}); err != nil {
		return kill, err
	}
	time.Sleep(300 * time.Millisecond)
	leader, err := s.Leader(ctx)
	if err != nil {
		return kill, err
	}
	kill.Leader = s.NodeName(leader)
	failedBefore := l.failed.Load()
	t0 := time.Now()
	killedAt.Store(&t0)
	s.Kill(leader)
	select {
	case at := <-recovered:
		kill.Failover = at.Sub(t0).Seconds()
	case <-time.After(o.RecoveryTimeout):
	case <-ctx.Done():
		return kill, ctx.Err()
	}
	restart := time.Now()
	if err := s.Restart(ctx, leader); err != nil {
		return kill, err
	}
	if err := s.Healthy(ctx, leader); err != nil {
		return kill, err
	}
	kill.Healthy = time.Since(restart).Seconds()
	if nl, err := s.Leader(ctx); err == nil {
		kill.NewLeader = s.NodeName(nl)
	}
	stop()
	kill.FailedWrites = l.failed.Load() - failedBefore
	if err := l.err(); err != nil {
		kill.LastError = err.Error()
	}
	kill.Check, err = check(ctx, s, t, o.Log)
	return kill, err
}

// check reads every key of t linearizably and compares it with its last acknowledged write.
// Writes must have stopped.
func check(ctx context.Context, s Side, t *tracker, log io.Writer) (Check, error) {
	c := Check{Keys: len(t.keys)}
	kvs, done, err := s.Clients(ctx, 1, false)
	if err != nil {
		return c, err
	}
	defer done()
	kv := kvs[0]
	for i, key := range t.keys {
		acked := t.lastAcked(i)
		var v []byte
		var found bool
		err := poll(ctx, 30*time.Second, s.Label()+": read "+key, func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var err error
			v, found, err = kv.Get(cctx, key)
			return err
		})
		if err != nil {
			c.ReadErrors++
			fmt.Fprintf(log, "raftbench: %s: %v\n", s.Label(), err)
			continue
		}
		var seq uint64
		if found {
			if seq, err = decodeSeq(v); err != nil {
				c.ReadErrors++
				continue
			}
		}
		late, lost := t.verdict(i, seq, acked)
		if late {
			c.Late++
		}
		if lost {
			c.Lost++
			fmt.Fprintf(log, "raftbench: %s: LOST acknowledged write: %s reads %d (found %v), last acknowledged %d\n", s.Label(), key, seq, found, acked)
		}
	}
	return c, nil
}

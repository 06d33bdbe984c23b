package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Options configure one run.
type Options struct {
	// Seed decides the fault schedule (and the clients' choices of key, node and operation).
	Seed int64
	// Duration is how long the clients run while faults are injected (default 20 s).
	Duration time.Duration
	// Nodes is the group's size (default 3).
	Nodes int
	// Clients is the number of concurrent clients (default 4).
	Clients int
	// Kinds are the faults to inject (default: every kind this machine allows).
	Kinds []Kind
	// Bin is the fleet-controller binary; required.
	Bin string
	// Dir holds the group's data and logs; required.
	Dir string
	// VisDir receives porcupine's visualisation of a history that is not linearizable
	// (default Dir).
	VisDir string
	// RaftTimeout is the nodes' Raft heartbeat and election timeout (default 1 s, the
	// binary's default).
	RaftTimeout time.Duration
	// OpTimeout bounds each client call (default 2 s, shorter than any fault that stops the
	// leader, so a call caught by one ends Unknown before the node wakes).
	OpTimeout time.Duration
	// CheckTimeout bounds porcupine's search (default 1 min); past it the verdict is Unknown.
	CheckTimeout time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result is what one run found.
type Result struct {
	Seed     int64
	Nodes    int
	Planned  []Fault
	Injected []Injected
	// Faults counts the faults injected, by kind.
	Faults map[Kind]int
	// Ops counts the operations of the history by kind and outcome ("write ok", "cas
	// conflict", "read ok", ...).
	Ops map[string]int
	// Check is porcupine's verdict; Visualization the HTML it wrote unless Ok.
	Check         porcupine.CheckResult
	Visualization string
	// Lost are acknowledged writes the final state does not hold.
	Lost []string
	// Phantom are writes that failed for certain but were seen.
	Phantom []string
	// Divergent are keys whose replicas differ after healing.
	Divergent []string
	// KnownBug lists the marks of RerunAfterLeadershipLost in the history (RerunSignatures):
	// when the run fails and this is not empty, that bug explains at least part of it.
	KnownBug []string
	// Problems are everything else that went wrong (a node that exited on its own, a fault
	// that could not be injected or healed).
	Problems []string
	// History is the checked history.
	History []Op
	Wall    time.Duration
}

// Violations is 1 when porcupine found the history not linearizable.
func (r *Result) Violations() int {
	if r.Check == porcupine.Illegal {
		return 1
	}
	return 0
}

// TotalOps is the number of operations of the history, init and final reads included.
func (r *Result) TotalOps() int { return len(r.History) }

// Err summarises everything that makes the run fail, or nil.
func (r *Result) Err() error {
	var errs []error
	switch r.Check {
	case porcupine.Ok:
	case porcupine.Illegal:
		errs = append(errs, fmt.Errorf("seed %d: history not linearizable; visualisation: %s", r.Seed, r.Visualization))
	default:
		errs = append(errs, fmt.Errorf("seed %d: linearizability check undecided (%s) in its time", r.Seed, r.Check))
	}
	for _, l := range r.Lost {
		errs = append(errs, fmt.Errorf("seed %d: lost write: %s", r.Seed, l))
	}
	for _, p := range r.Phantom {
		errs = append(errs, fmt.Errorf("seed %d: failed write present: %s", r.Seed, p))
	}
	for _, d := range r.Divergent {
		errs = append(errs, fmt.Errorf("seed %d: replicas diverge: %s", r.Seed, d))
	}
	for _, p := range r.Problems {
		errs = append(errs, fmt.Errorf("seed %d: %s", r.Seed, p))
	}
	return errors.Join(errs...)
}

// AvailableKinds are the kinds of fault this process can inject, and why the others cannot be.
func AvailableKinds() ([]Kind, string) {
	netns, tmpfs := CanUseNetns(), CanMountTmpfs()
	var out []Kind
	for _, k := range AllKinds {
		if (k.NeedsNetns() && netns != nil) || (k.NeedsTmpfs() && tmpfs != nil) {
			continue
		}
		out = append(out, k)
	}
	var why []string
	if netns != nil {
		why = append(why, "partitions skipped: "+netns.Error())
	}
	if tmpfs != nil {
		why = append(why, string(DiskFull)+" skipped: "+tmpfs.Error())
	}
	return out, strings.Join(why, "; ")
}

// Run starts a group, runs the clients against it while the seed's faults are injected,
// heals everything and checks the history and the final state. An error means the run could
// not be carried out; what the run found is in the Result (see Result.Err).
func Run(ctx context.Context, o Options) (*Result, error) {
	began := time.Now()
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.RaftTimeout <= 0 {
		o.RaftTimeout = time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 2 * time.Second
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = time.Minute
	}
	if o.VisDir == "" {
		o.VisDir = o.Dir
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Kinds == nil {
		o.Kinds, _ = AvailableKinds()
	}
	netns := slices.ContainsFunc(o.Kinds, Kind.NeedsNetns)
	r := &Result{Seed: o.Seed, Nodes: o.Nodes, Faults: map[Kind]int{}, Ops: map[string]int{}}
	r.Planned = Schedule(o.Seed, o.Nodes, o.Duration, o.Kinds, o.RaftTimeout)
	fmt.Fprintf(o.Log, "faults: seed %d: %d nodes, %d clients for %s; plan: %s\n", o.Seed, o.Nodes, o.Clients, o.Duration, describePlan(r.Planned))

	gopts := GroupOptions{Bin: o.Bin, Dir: o.Dir, Nodes: o.Nodes, Netns: netns, Log: o.Log}
	// Only a run that fills a disk puts the nodes' data on tmpfs of their own.
	if slices.ContainsFunc(r.Planned, func(f Fault) bool { return f.Kind.NeedsTmpfs() }) {
		gopts.DiskSize = DefaultDiskSize
	}
	if o.RaftTimeout != time.Second {
		gopts.RaftTimeout = o.RaftTimeout
	}
	g, err := StartGroup(ctx, gopts)
	if err != nil {
		return r, err
	}
	defer g.Stop()

	h := NewHistory()
	keys := []Key{ClusterKey("chaos-a"), ClusterKey("chaos-b"), ProfileKey("chaos-p")}
	if err := createKeys(ctx, g, h, keys); err != nil {
		return r, err
	}
	w := &workload{g: g, h: h, keys: keys, opTime: o.OpTimeout, pauseOp: 30 * time.Millisecond}
	runCtx, stop := context.WithTimeout(ctx, o.Duration)
	var wg sync.WaitGroup
	for c := 1; c <= o.Clients; c++ {
		rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(c)))
		wg.Go(func() { w.client(runCtx, c, rng) })
	}
	n := &nemesis{g: g, h: h, log: o.Log, killed: map[int]bool{}, removed: map[int]bool{}}
	n.run(runCtx, r.Planned)
	stop()
	wg.Wait()
	r.Injected = n.applied
	for _, a := range n.applied {
		r.Faults[a.Kind]++
		if a.Err != "" {
			r.Problems = append(r.Problems, "fault "+a.Describe())
		}
	}
	if err := g.Unexpected(n.killed); err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	// Heal whatever is left (nothing, unless a heal failed) and bring every node back.
	if err := n.healAll(ctx); err != nil {
		r.Problems = append(r.Problems, "heal: "+err.Error())
	}
	if err := g.Converged(ctx, 2*time.Minute); err != nil {
		return r, err
	}
	if err := finalReads(ctx, g, h, keys, o.Clients+1); err != nil {
		return r, err
	}
	r.History = h.Ops()
	for _, op := range r.History {
		r.Ops[op.Input.Kind.String()+" "+op.Output.Outcome.String()]++
	}
	if err := saveHistory(filepath.Join(o.Dir, "history.jsonl"), r.History); err != nil {
		return r, err
	}
	stored, err := storedVersions(ctx, g, keys)
	if err != nil {
		return r, err
	}
	v, err := Check(r.History, stored, r.Injected, o.VisDir, fmt.Sprintf("seed-%d", o.Seed), o.CheckTimeout)
	if err != nil {
		return r, err
	}
	r.Check, r.Visualization = v.Result, v.Visualization
	r.KnownBug = RerunSignatures(r.History, stored)
	for _, sig := range r.KnownBug {
		fmt.Fprintf(o.Log, "faults: seed %d: known bug (%s): %s\n", o.Seed, RerunAfterLeadershipLost, sig)
	}
	checkFinal(ctx, g, keys, stored, r)
	r.Wall = time.Since(began)
	fmt.Fprintf(o.Log, "faults: seed %d: %d ops %v; %s, %d lost, %d phantom, %d divergent, %d problems, %s\n", o.Seed, len(r.History), r.Ops,
		r.Check, len(r.Lost), len(r.Phantom), len(r.Divergent), len(r.Problems), r.Wall.Round(time.Second))
	return r, nil
}

func describePlan(fs []Fault) string {
	parts := make([]string, 0, len(fs))
	for _, f := range fs {
		parts = append(parts, f.String())
	}
	return strings.Join(parts, ", ")
}

// finalReads reads every key linearizably through the leader, into the history.
func finalReads(ctx context.Context, g *Group, h *History, keys []Key, client int) error {
	hc := g.HTTPClient()
	defer hc.CloseIdleConnections()
	for _, k := range keys {
		err := poll(ctx, time.Minute, "final read of "+k.Name(), func(ctx context.Context) error {
			l, err := g.Leader(ctx)
			if err != nil {
				return err
			}
			c := g.ClientsOf(hc, l)
			call := h.Now()
			st, err := k.Read(ctx, c, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE)
			if err != nil {
				return err
			}
			h.add(Op{Client: client, Input: Input{Key: k.Name(), Kind: OpRead}, Output: Output{Outcome: OK, State: st},
				Call: call, Return: h.Now(), Note: "final, " + c.Node.ID})
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// storedVersions lists, through the leader, every version the API keeps of each key: every
// revision of a profile (a cluster keeps only its latest labels).
func storedVersions(ctx context.Context, g *Group, keys []Key) (map[string][]State, error) {
	hc := g.HTTPClient()
	defer hc.CloseIdleConnections()
	out := map[string][]State{}
	for _, k := range keys {
		pk, ok := k.(ProfileKey)
		if !ok {
			continue
		}
		err := poll(ctx, time.Minute, "revisions of "+k.Name(), func(ctx context.Context) error {
			l, err := g.Leader(ctx)
			if err != nil {
				return err
			}
			out[k.Name()], err = pk.Revisions(ctx, g.ClientsOf(hc, l), ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// saveHistory writes the history as JSON lines, one operation a line.
func saveHistory(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// checkFinal checks the state after healing: every acknowledged write is there (the last
// version acknowledged is at most the final one; every acknowledged profile revision is stored
// with its value), no write that failed for certain was ever seen, and every node's replica
// holds the same (read stale from each node).
func checkFinal(ctx context.Context, g *Group, keys []Key, stored map[string][]State, r *Result) {
	for _, k := range keys {
		var final State
		acked, failed := map[string]uint64{}, map[string]bool{}
		var maxAcked uint64
		seen := map[string]bool{}
		for _, op := range r.History {
			if op.Input.Key != k.Name() {
				continue
			}
			switch {
			case op.Input.Kind == OpRead && op.Output.Outcome == OK:
				seen[op.Output.State.Value] = true
				if strings.HasPrefix(op.Note, "final") {
					final = op.Output.State
				}
			case op.Input.Kind == OpWrite || op.Input.Kind == OpCAS:
				switch op.Output.Outcome {
				case OK:
					acked[op.Input.Value] = op.Output.State.Version
					maxAcked = max(maxAcked, op.Output.State.Version)
				case Failed, Conflict:
					failed[op.Input.Value] = true
				}
			}
		}
		if final.Version < maxAcked {
			r.Lost = append(r.Lost, fmt.Sprintf("%s: final version %d, but version %d was acknowledged", k.Name(), final.Version, maxAcked))
		}
		for v := range seen {
			if failed[v] {
				r.Phantom = append(r.Phantom, fmt.Sprintf("%s: value %q was read, its write failed", k.Name(), v))
			}
		}
		revs, ok := stored[k.Name()]
		if !ok {
			continue
		}
		byValue := map[string]uint64{}
		for _, s := range revs {
			byValue[s.Value] = s.Version
			if failed[s.Value] {
				r.Phantom = append(r.Phantom, fmt.Sprintf("%s: revision %d holds %q, whose update failed", k.Name(), s.Version, s.Value))
			}
		}
		for v, ver := range acked {
			if got := byValue[v]; got != ver {
				r.Lost = append(r.Lost, fmt.Sprintf("%s: update %q acknowledged as revision %d; stored as revision %d (0: missing)", k.Name(), v, ver, got))
			}
		}
	}
	hc := g.HTTPClient()
	defer hc.CloseIdleConnections()
	err := poll(ctx, time.Minute, "replicas equal", func(ctx context.Context) error {
		if diffs := divergence(ctx, g, hc, keys); len(diffs) > 0 {
			return errors.New(strings.Join(diffs, "; "))
		}
		return nil
	})
	if err != nil {
		r.Divergent = append(r.Divergent, err.Error())
	}
}

// divergence compares what each node's replica holds of every key.
func divergence(ctx context.Context, g *Group, hc *http.Client, keys []Key) []string {
	var diffs []string
	for _, k := range keys {
		var first string
		for i := range g.Nodes {
			c := g.ClientsOf(hc, i)
			var got string
			if pk, ok := k.(ProfileKey); ok {
				revs, err := pk.Revisions(ctx, c, ebbflowv1.Consistency_CONSISTENCY_STALE)
				got = fmt.Sprint(revs, err)
			} else {
				st, err := k.Read(ctx, c, ebbflowv1.Consistency_CONSISTENCY_STALE)
				got = fmt.Sprint(st, err)
			}
			if i == 0 {
				first = got
			} else if got != first {
				diffs = append(diffs, fmt.Sprintf("%s: %s has %.200s, %s has %.200s", k.Name(), g.Nodes[0].ID, first, g.Nodes[i].ID, got))
			}
		}
	}
	return diffs
}

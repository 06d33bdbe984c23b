package raftbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/e2e/process"
)

// groupSize is the number of nodes of every side.
const groupSize = 3

// Side is one replicated store under test: a running 3-node group on 127.0.0.1.
type Side interface {
	// Label names the side in tables: "ebbflow", "etcd", "ebbflow@<rev>".
	Label() string
	// Prepare makes every key exist with its initial value (ebbflow registers the clusters).
	Prepare(ctx context.Context, t *tracker) error
	// Clients are n clients, client i of which writes key i: spread over the nodes (client i
	// starts on node i%3; on an error it moves on to the next node), or all on the leader.
	Clients(ctx context.Context, n int, leaderOnly bool) ([]KV, func(), error)
	// Leader is the index of the node that leads now.
	Leader(ctx context.Context) (int, error)
	// Kill ends node i at once (SIGKILL of its process group) and waits for it.
	Kill(i int)
	// Restart starts node i again on its data directory and addresses.
	Restart(ctx context.Context, i int) error
	// Healthy waits until the group has three voters, agrees on a leader and node i has
	// applied what the leader had committed when the wait began.
	Healthy(ctx context.Context, i int) error
	// NodeName is node i's name, for logs and notes.
	NodeName(i int) string
	// Exited names a node whose process ended, if any.
	Exited() error
	// Stop ends every node.
	Stop()
}

// KV is one benchmark client's handle on a side. A KV is used by one goroutine at a time.
type KV interface {
	// Put writes value to key and returns once the side acknowledged it.
	Put(ctx context.Context, key string, value []byte) error
	// Get reads key linearizably; found is false when it does not exist.
	Get(ctx context.Context, key string) (value []byte, found bool, err error)
}

// group is what both kinds of side keep of their nodes: a name and a process each, and how to
// ask a node what it says of the group (ask); from it, one Leader and one Healthy serve both.
type group struct {
	label, bin, dir string
	names           []string
	procs           []*process.Process // nil until started
	ask             func(ctx context.Context, i int) (raftView, error)
}

// raftView is what one node says of its group, in terms both kinds of side have.
type raftView struct {
	leader int    // the node it names leader, -1: none it knows
	named  string // that leader as the node names it, for errors
	// notLeading says why the node does not lead ("is RAFT_STATE_FOLLOWER, not leader"); empty
	// when it does.
	notLeading      string
	voters          int // voters it lists, -1: it does not say
	learner         bool
	commit, applied uint64
}

// newGroup is label's group of groupSize nodes prefix-1, prefix-2, ... running bin, under a
// fresh directory for it in dir.
func newGroup(label, bin, dir, prefix string) (group, error) {
	d, err := sideDir(dir, label)
	if err != nil {
		return group{}, err
	}
	g := group{label: label, bin: bin, dir: d, procs: make([]*process.Process, groupSize)}
	for i := range groupSize {
		g.names = append(g.names, prefix+"-"+strconv.Itoa(i+1))
	}
	return g, nil
}

func (g *group) Label() string         { return g.label }
func (g *group) NodeName(i int) string { return g.names[i] }

// startNode runs node i with args, its log in the side's logs/.
func (g *group) startNode(i int, args ...string) error {
	var err error
	if g.procs[i], err = process.Start(filepath.Join(g.dir, "logs"), g.dir, g.names[i], g.bin, nil, args...); err != nil {
		return fmt.Errorf("raftbench: %s: start %s: %w", g.label, g.names[i], err)
	}
	return nil
}

func (g *group) Kill(i int) { g.procs[i].Kill() }

// Exited names the first node whose process has ended.
func (g *group) Exited() error {
	for _, p := range g.procs {
		if p == nil {
			continue
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("raftbench: %s node %s exited (%v); see %s", g.label, p.Name, err, p.Log)
		}
	}
	return nil
}

// stopNodes ends every node, the last started first.
func (g *group) stopNodes() {
	for i := len(g.procs) - 1; i >= 0; i-- {
		if p := g.procs[i]; p != nil {
			p.Stop()
		}
	}
}

// Leader asks the nodes in turn; the node named leader must say itself that it leads and, when
// it lists voters, list groupSize.
func (g *group) Leader(ctx context.Context) (int, error) {
	var errs []error
	for i := range g.names {
		v, err := g.ask(ctx, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l := v.leader
		if l < 0 {
			errs = append(errs, fmt.Errorf("%s names no known leader (%s)", g.names[i], v.named))
			continue
		}
		lv, err := g.ask(ctx, l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if lv.notLeading != "" {
			errs = append(errs, fmt.Errorf("%s %s", g.names[l], lv.notLeading))
			continue
		}
		if lv.voters >= 0 && lv.voters != groupSize {
			return -1, fmt.Errorf("%s: the leader %s lists %d voters", g.label, g.names[l], lv.voters)
		}
		return l, nil
	}
	return -1, fmt.Errorf("%s: no leader: %w", g.label, errors.Join(errs...))
}

// Healthy waits until every node names the same leader, none is a learner, and node i has
// applied what the leader had committed when the wait began.
func (g *group) Healthy(ctx context.Context, i int) error {
	var target uint64
	return poll(ctx, 2*time.Minute, g.label+": healthy again after restarting "+g.names[i], func(ctx context.Context) error {
		if err := g.Exited(); err != nil {
			return process.StopPolling(err)
		}
		l, err := g.Leader(ctx)
		if err != nil {
			return err
		}
		lv, err := g.ask(ctx, l)
		if err != nil {
			return err
		}
		if target == 0 {
			target = lv.commit
		}
		for j := range g.names {
			v, err := g.ask(ctx, j)
			if err != nil {
				return err
			}
			if v.leader != l {
				return fmt.Errorf("%s names leader %s, not %s", g.names[j], v.named, g.names[l])
			}
			if v.learner {
				return fmt.Errorf("%s is a learner", g.names[j])
			}
			if j == i && v.applied < target {
				return fmt.Errorf("%s applied %d of %d", g.names[j], v.applied, target)
			}
		}
		return nil
	})
}

// poll calls cond every 20 ms (each call bounded by 10 s) until it returns nil or timeout
// passes (process.Poll).
func poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) error) error {
	if err := process.Poll(ctx, timeout, 20*time.Millisecond, 10*time.Second, what, cond); err != nil {
		return fmt.Errorf("raftbench: %w", err)
	}
	return nil
}

// waitFile waits until path holds something and returns it trimmed, failing early when p ends.
func waitFile(ctx context.Context, path string, p *process.Process, timeout time.Duration) (string, error) {
	var out string
	err := poll(ctx, timeout, p.Name+" writing "+path, func(context.Context) error {
		if done, perr := p.Exited(); done {
			return process.StopPolling(fmt.Errorf("raftbench: %s exited (%v) before it was ready; see %s", p.Name, perr, p.Log))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if out = string(bytes.TrimSpace(b)); out == "" {
			return errors.New("empty")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%w; see %s", err, p.Log)
	}
	return out, nil
}

// sideDir is a fresh directory for one side under dir.
func sideDir(dir, label string) (string, error) {
	d := filepath.Join(dir, strings.NewReplacer("@", "-at-", "/", "-", "~", "-", "^", "-").Replace(label))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	return d, nil
}

package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// nemesis injects a schedule's faults into a group, one at a time, and heals each before the
// next.
type nemesis struct {
	g      *Group
	h      *History
	log    io.Writer
	killed map[int]bool // nodes killed by a fault (their exit is expected)
	// removed are nodes a Membership fault removed and did not bring back.
	removed map[int]bool

	applied []Injected
}

// run injects the faults of plan until ctx ends; a fault under way when it ends is still held
// for its time and healed.
func (n *nemesis) run(ctx context.Context, plan []Fault) {
	start := time.Now()
	for _, f := range plan {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(f.At))):
		}
		if ctx.Err() != nil {
			// Both were ready (the previous fault's heal ran past the end): the clients have
			// stopped, so a fault now would go untested.
			return
		}
		a := n.inject(f)
		n.applied = append(n.applied, a)
		fmt.Fprintf(n.log, "faults: %.1fs %s\n", time.Duration(a.Start).Seconds(), a.Describe())
	}
}

// inject applies f, holds it and heals it.
func (n *nemesis) inject(f Fault) (a Injected) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a = Injected{Fault: f, Start: n.h.Now()}
	// a is the named result, so that this sets what the caller gets.
	defer func() { a.End = n.h.Now() }()
	leader := -1
	if f.Leader || f.Kind == PartitionLeader {
		// An election may be under way: give it a few seconds.
		_ = poll(ctx, 10*time.Second, "a leader", func(ctx context.Context) error {
			var err error
			leader, err = n.g.Leader(ctx)
			return err
		})
	} else if l, err := n.g.Leader(ctx); err == nil {
		leader = l
	}
	target := f.Nodes
	if f.Leader && leader >= 0 {
		target = []int{leader}
	}
	var heal func(context.Context) error
	var err error
	switch f.Kind {
	case Kill:
		i := target[0]
		a.Targets = n.name(i, leader)
		n.killed[i] = true
		n.g.Kill(i)
		heal = func(ctx context.Context) error {
			err := n.g.Restart(ctx, i)
			if err == nil {
				delete(n.killed, i)
			}
			return err
		}
	case Pause:
		i := target[0]
		a.Targets = n.name(i, leader)
		err = n.g.Pause(i)
		heal = func(context.Context) error { return n.g.Resume(i) }
	case PartitionMinority, PartitionLeader:
		minority := target
		if f.Kind == PartitionLeader {
			if leader < 0 {
				a.Err = "no leader to isolate"
				return a
			}
			minority = []int{leader}
		}
		var majority []int
		for i := range n.g.Nodes {
			if !contains(minority, i) {
				majority = append(majority, i)
			}
		}
		a.Targets = n.names(minority, leader) + " | " + n.names(majority, leader)
		err = n.g.Net.Partition(ctx, minority, majority)
		heal = n.g.Net.Heal
	case DiskFull:
		i := target[0]
		a.Targets = n.name(i, leader)
		n.diskFull(ctx, &a, i)
		return a
	case Membership:
		i := target[0]
		a.Targets = n.name(i, leader)
		n.membership(ctx, &a, i, leader)
		return a
	case PartitionBridge:
		bridge, rest := target[0], target[1:]
		half := len(rest) / 2
		a.Targets = fmt.Sprintf("%s | %s | %s", n.names(rest[:half], leader), n.name(bridge, leader), n.names(rest[half:], leader))
		err = n.g.Net.Partition(ctx, rest[:half], rest[half:])
		heal = n.g.Net.Heal
	default:
		err = fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if err == nil {
		time.Sleep(f.Hold)
	}
	if heal != nil {
		err = errors.Join(err, heal(ctx))
	}
	if err != nil {
		a.Err = err.Error()
	}
	return a
}

// enospc is how the Go runtime spells ENOSPC in the error a node logs before it ends.
const enospc = "no space left on device"

// diskFull fills node i's disk, watches it for the fault's hold, frees the disk, restarts the
// node if it ended, and waits until it has caught up.
func (n *nemesis) diskFull(ctx context.Context, a *Injected, i int) {
	var obs []string
	defer func() { a.Observed = strings.Join(obs, "; ") }()
	fail := func(err error) { a.Err = err.Error() }
	// The node may end on the full disk: that exit is expected until it is healed.
	n.killed[i] = true
	began, fullFrom := time.Now(), n.h.Now()
	// The node's log is appended across restarts: only what it writes from now on tells why
	// it ends.
	logPath, _, _ := n.g.exitLog(i)
	var logFrom int64
	if st, err := os.Stat(logPath); err == nil {
		logFrom = st.Size()
	}
	filled, used, err := n.g.FillDisk(i)
	if err != nil {
		fail(errors.Join(err, n.g.FreeDisk(i)))
		return
	}
	obs = append(obs, fmt.Sprintf("data %.1f MiB, filled %.1f MiB", float64(used)/(1<<20), float64(filled)/(1<<20)))
	// Watch the node and the leadership while the disk is full.
	var ended time.Duration
	leaders := map[string]bool{}
	deadline := began.Add(a.Hold)
	for time.Now().Before(deadline) {
		if _, exited, _ := n.g.exitLog(i); exited && ended == 0 {
			ended = time.Since(began)
		}
		if l, err := n.g.Leader(ctx); err == nil {
			leaders[n.g.Nodes[l].ID] = true
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
	log, exited, exitErr := n.g.exitLog(i)
	fullTo := n.h.Now()
	var heal []error
	if err := n.g.FreeDisk(i); err != nil {
		heal = append(heal, err)
	}
	// Writes it acknowledged while full (itself or forwarding to the leader): the final
	// checks hold each of them to being there after healing.
	acked := 0
	for _, op := range n.h.Ops() {
		if op.Note == n.g.Nodes[i].ID && (op.Input.Kind == OpWrite || op.Input.Kind == OpCAS) && op.Output.Outcome == OK &&
			op.Call >= fullFrom && op.Return <= fullTo {
			acked++
		}
	}
	obs = append(obs, fmt.Sprintf("%d writes acknowledged through it while full", acked))
	if exited {
		if ended == 0 {
			ended = a.Hold
		}
		why := "without " + enospc + " in its log"
		if tail, err := logSince(log, logFrom); err == nil && strings.Contains(tail, enospc) {
			why = fmt.Sprintf("on %s (%.160s)", enospc, firstLineWith(tail, enospc))
		} else {
			heal = append(heal, fmt.Errorf("%s ended (%v) %s; see %s", n.g.Nodes[i].ID, exitErr, why, log))
		}
		obs = append(obs, fmt.Sprintf("%s ended after %.1fs (%v) %s; restarted", n.g.Nodes[i].ID, ended.Seconds(), exitErr, why))
		a.Restarted = true
		if err := n.g.Restart(ctx, i); err != nil {
			heal = append(heal, err)
		}
	} else {
		obs = append(obs, n.g.Nodes[i].ID+" kept running")
	}
	names := make([]string, 0, len(leaders))
	for id := range leaders {
		names = append(names, id)
	}
	slices.Sort(names)
	obs = append(obs, "leaders while full: "+strings.Join(names, ","))
	if len(heal) == 0 {
		delete(n.killed, i)
		caught := time.Now()
		if err := n.g.CaughtUp(ctx, i, time.Minute); err != nil {
			heal = append(heal, err)
		} else {
			obs = append(obs, fmt.Sprintf("caught up in %.1fs", time.Since(caught).Seconds()))
		}
	}
	if err := errors.Join(heal...); err != nil {
		fail(err)
	}
}

// membership removes node i from the group, keeps it out for the fault's hold, adds it back
// and waits until it is a voter again and caught up.
func (n *nemesis) membership(ctx context.Context, a *Injected, i, leader int) {
	var obs []string
	defer func() { a.Observed = strings.Join(obs, "; ") }()
	id := n.g.Nodes[i].ID
	began := time.Now()
	n.removed[i] = true
	via, answers, err := n.g.RemoveServer(ctx, i)
	if err != nil {
		a.Err = err.Error()
		return
	}
	obs = append(obs, fmt.Sprintf("removed in %.1fs", time.Since(began).Seconds()))
	if len(answers) > 0 {
		obs = append(obs, fmt.Sprintf("%d calls failed first (%.160s)", len(answers), answers[0]))
	}
	if via >= 0 && via != leader {
		// Leadership moved between choosing the target and removing it.
		obs = append(obs, "removed through "+n.name(via, via))
		a.Targets = n.name(i, via)
		leader = via
	}
	if i == leader {
		// The others must elect a leader of their own.
		err := poll(ctx, 30*time.Second, "a leader without "+id, func(ctx context.Context) error {
			l, err := n.g.Leader(ctx)
			if err != nil {
				return err
			}
			if l == i {
				return fmt.Errorf("%s still leads", id)
			}
			return nil
		})
		if err != nil {
			a.Err = err.Error()
		} else {
			obs = append(obs, fmt.Sprintf("new leader after %.1fs", time.Since(began).Seconds()))
		}
	}
	time.Sleep(time.Until(began.Add(a.Hold)))
	st, serr := n.g.Status(ctx, i)
	switch {
	case serr != nil:
		obs = append(obs, fmt.Sprintf("out: %v", serr))
	default:
		obs = append(obs, fmt.Sprintf("out: %s %s, %d members", id, st.GetState(), len(st.GetMembers())))
	}
	back := time.Now()
	switch {
	case a.Fresh:
		n.g.StopNode(i)
		a.Restarted = true
		err = n.g.Rejoin(ctx, i)
		obs = append(obs, "restarted empty (--rejoin)")
	case serr != nil || st.GetState() == ebbflowv1.RaftState_RAFT_STATE_SHUTDOWN:
		// A removed leader shuts its Raft down (hashicorp/raft ShutdownOnRemove); the process
		// serves on without it until restarted, and joins again on its data.
		n.g.StopNode(i)
		a.Restarted = true
		err = n.g.Restart(ctx, i)
		obs = append(obs, "restarted on its data (--join)")
	default:
		err = n.g.AddVoter(ctx, i)
		obs = append(obs, "AddVoter")
	}
	if err == nil {
		err = n.g.CaughtUp(ctx, i, time.Minute)
	}
	if err != nil {
		if a.Err != "" {
			err = fmt.Errorf("%s; %w", a.Err, err)
		}
		a.Err = err.Error()
		return
	}
	delete(n.removed, i)
	obs = append(obs, fmt.Sprintf("voter and caught up in %.1fs", time.Since(back).Seconds()))
}

// firstLineWith is the first line of s that holds sub, trimmed.
func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// logSince is what the file at path holds from offset from on (at most its last MiB).
func logSince(path string, from int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	from = max(from, st.Size()-1<<20, 0)
	b := make([]byte, max(st.Size()-from, 0))
	_, err = f.ReadAt(b, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b), nil
}

// healAll heals the network, frees full disks, resumes paused nodes, restarts killed ones
// and has removed ones join again.
func (n *nemesis) healAll(ctx context.Context) error {
	var errs []error
	if n.g.Net != nil {
		errs = append(errs, n.g.Net.Heal(ctx))
	}
	for i := range n.g.Nodes {
		errs = append(errs, n.g.FreeDisk(i))
		errs = append(errs, n.g.Resume(i))
		if n.removed[i] {
			n.g.StopNode(i)
		}
		if !n.g.Running(i) {
			errs = append(errs, n.g.Restart(ctx, i))
		}
	}
	return errors.Join(errs...)
}

func (n *nemesis) name(i, leader int) string {
	if i == leader {
		return n.g.Nodes[i].ID + "*"
	}
	return n.g.Nodes[i].ID
}

func (n *nemesis) names(is []int, leader int) string {
	parts := make([]string, 0, len(is))
	for _, i := range is {
		parts = append(parts, n.name(i, leader))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func contains(is []int, i int) bool {
	for _, j := range is {
		if j == i {
			return true
		}
	}
	return false
}

package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// nemesis injects a schedule's faults into a group, one at a time, and heals each before the
// next.
type nemesis struct {
	g      *Group
	h      *History
	log    io.Writer
	killed map[int]bool // nodes killed by a fault (their exit is expected)

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
		a := n.inject(f)
		n.applied = append(n.applied, a)
		fmt.Fprintf(n.log, "faults: %.1fs %s\n", time.Duration(a.Start).Seconds(), a.Describe())
	}
}

// inject applies f, holds it and heals it.
func (n *nemesis) inject(f Fault) Injected {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := Injected{Fault: f, Start: n.h.Now()}
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

// healAll heals the network, resumes paused nodes and restarts killed ones.
func (n *nemesis) healAll(ctx context.Context) error {
	var errs []error
	if n.g.Net != nil {
		errs = append(errs, n.g.Net.Heal(ctx))
	}
	for i := range n.g.Nodes {
		errs = append(errs, n.g.Resume(i))
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

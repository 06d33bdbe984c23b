package faults

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

const (
	// Kill SIGKILLs a node (the leader more often) and restarts it on its data after a while.
	Kill Kind = "kill"
	// Pause SIGSTOPs a node (the leader more often) for longer than an election takes, then
	// SIGCONTs it: a deposed leader waking up.
	Pause Kind = "pause"
	// PartitionMinority cuts a random minority of the nodes off from the majority.
	PartitionMinority Kind = "partition-minority"
	// PartitionLeader cuts the leader off from every other node.
	PartitionLeader Kind = "partition-leader"
	// PartitionBridge splits the other nodes in two halves that cannot reach each other while
	// one node (the bridge) reaches both.
	PartitionBridge Kind = "partition-bridge"
	// DiskFull fills the file system a node's data directory lives on (a tmpfs of its own, see
	// GroupOptions.DiskSize), the leader about half the time, holds it full, then frees it; a
	// node that ended on the full disk meanwhile is restarted on its data, like a killed one.
	DiskFull Kind = "disk-full"
	// Membership removes a voter (the leader about four times in ten) with RemoveServer, keeps
	// it out for a while, then adds it back with AddVoter and waits until it is a voter again
	// and caught up. A node that cannot take part as it is (a removed leader shuts its Raft
	// down) is restarted on its data with --join; with Fresh it is always restarted, empty,
	// with --rejoin.
	Membership Kind = "membership"
)

// AllKinds lists every kind of fault, process faults first.
var AllKinds = []Kind{Kill, Pause, PartitionMinority, PartitionLeader, PartitionBridge, DiskFull, Membership}

// NeedsNetns says whether the kind needs network namespaces.
func (k Kind) NeedsNetns() bool { return strings.HasPrefix(string(k), "partition-") }

// NeedsTmpfs says whether the kind needs the nodes' data on a tmpfs of their own.
func (k Kind) NeedsTmpfs() bool { return k == DiskFull }

// Fault is one planned fault: injected at At (or as soon after as the previous one has been
// healed), held for Hold, then healed.
type Fault struct {
	At   time.Duration
	Kind Kind
	Hold time.Duration
	// Leader targets whichever node leads when the fault is injected (Kill, Pause, DiskFull,
	// Membership); Nodes[0] is the node hit when it is false or no leader is known.
	Leader bool
	// Nodes: Kill, Pause, DiskFull, Membership: the target; PartitionMinority: the minority;
	// PartitionBridge: the bridge first, then the others, the first half of which cannot reach
	// the second.
	Nodes []int
	// Fresh (Membership): the removed node comes back empty (fleet-controller --rejoin), not
	// on its data.
	Fresh bool
}

func (f Fault) String() string {
	target := fmt.Sprint(f.Nodes)
	if f.Leader {
		target = "leader"
	}
	if f.Fresh {
		target += " fresh"
	}
	return fmt.Sprintf("%s@%s %s for %s", f.Kind, f.At.Round(time.Millisecond), target, f.Hold.Round(time.Millisecond))
}

// Schedule plans the faults of a run of length d on n nodes from seed: the same seed, n, d,
// kinds and election timeout give the same plan. Kinds come in a shuffled round robin, so a
// run of a few faults already sees every kind; each fault is followed by a quiet spell
// (0.5-1.5 election timeouts) in which the group recovers.
func Schedule(seed int64, n int, d time.Duration, kinds []Kind, election time.Duration) []Fault {
	if len(kinds) == 0 || n < 3 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	span := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(election))
	}
	var out []Fault
	var round []Kind
	at := span(1, 2)
	for at < d {
		if len(round) == 0 {
			round = append([]Kind(nil), kinds...)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		f := Fault{At: at, Kind: round[0]}
		round = round[1:]
		perm := rng.Perm(n)
		switch f.Kind {
		case Kill:
			f.Hold, f.Leader, f.Nodes = span(0.5, 2), rng.IntN(10) < 6, perm[:1]
		case Pause:
			// Longer than the randomised election timeout (up to twice it), so the others
			// elect a new leader while this one sleeps.
			f.Hold, f.Leader, f.Nodes = span(2.5, 4), rng.IntN(10) < 6, perm[:1]
		case PartitionMinority:
			f.Hold, f.Nodes = span(2.5, 4.5), perm[:1+rng.IntN((n-1)/2)]
		case PartitionLeader:
			f.Hold, f.Leader = span(2.5, 4.5), true
		case PartitionBridge:
			f.Hold, f.Nodes = span(2.5, 4.5), perm
		case DiskFull:
			// Long enough for an election, should the full leader lose its leadership.
			f.Hold, f.Leader, f.Nodes = span(2.5, 4), rng.IntN(10) < 5, perm[:1]
		case Membership:
			f.Hold, f.Leader, f.Nodes, f.Fresh = span(1, 3), rng.IntN(10) < 4, perm[:1], rng.IntN(3) == 0
		}
		out = append(out, f)
		at += f.Hold + span(0.5, 1.5)
	}
	return out
}

// Injected is a fault as it was injected: when (on the history's clock), on which nodes and
// what came of it.
type Injected struct {
	Fault
	// Targets name the nodes hit: the killed, paused, full or removed node, the minority, the
	// isolated leader, or "bridge | half | half".
	Targets    string
	Start, End int64
	// Observed is what the group did meanwhile (DiskFull, Membership): whether the node hit
	// ended, who led, how long the node took to catch up.
	Observed string
	// Restarted: the harness restarted the node hit to heal the fault (DiskFull: it ended on
	// the full disk; Membership: it had to be restarted to come back).
	Restarted bool
	// Err is what went wrong injecting or healing it; empty when nothing did.
	Err string
}

// Describe is a line for logs and the visualisation.
func (a Injected) Describe() string {
	s := fmt.Sprintf("%s %s for %s", a.Kind, a.Targets, a.Hold.Round(time.Millisecond))
	if a.Observed != "" {
		s += ": " + a.Observed
	}
	if a.Err != "" {
		s += " (" + a.Err + ")"
	}
	return s
}

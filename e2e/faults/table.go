package faults

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anishathalye/porcupine"
)

// Summary adds up runs.
type Summary struct {
	Runs int
	// Faults counts the faults injected by kind; RunsWith the runs that injected at least
	// one of the kind.
	Faults, RunsWith map[Kind]int
	// Restarted counts the faults after which the harness restarted the node hit: DiskFull,
	// a node that ended on its full disk; Membership, a removed node that had to be restarted
	// to come back.
	Restarted map[Kind]int
	// LeaderHit counts the DiskFull and Membership faults that hit the leader.
	LeaderHit           map[Kind]int
	Ops, Acked, Unknown int
	// Violations are runs porcupine found not linearizable; Undecided runs it could not
	// decide in time.
	Violations, Undecided              int
	Lost, Phantom, Divergent, Problems int
	// KnownBug counts the runs that show RerunAfterLeadershipLost.
	KnownBug int
	// Failed counts the runs that could not be carried out.
	Failed int
	Wall   time.Duration
}

// Summarize adds up rs; errs[i] is why rs[i] could not be carried out (nil when it was).
func Summarize(rs []*Result, errs []error, wall time.Duration) Summary {
	s := Summary{Runs: len(rs), Faults: map[Kind]int{}, RunsWith: map[Kind]int{}, Restarted: map[Kind]int{}, LeaderHit: map[Kind]int{}, Wall: wall}
	for i, r := range rs {
		if errs[i] != nil {
			s.Failed++
			continue
		}
		for k, n := range r.Faults {
			s.Faults[k] += n
			if n > 0 {
				s.RunsWith[k]++
			}
		}
		for _, a := range r.Injected {
			if a.Restarted {
				s.Restarted[a.Kind]++
			}
			if strings.HasPrefix(a.Targets, "ctl-") && strings.HasSuffix(a.Targets, "*") {
				s.LeaderHit[a.Kind]++
			}
		}
		s.Ops += r.TotalOps()
		s.Acked += r.Ops["write ok"] + r.Ops["cas ok"]
		s.Unknown += r.Ops["write unknown"] + r.Ops["cas unknown"]
		switch r.Check {
		case porcupine.Ok:
		case porcupine.Illegal:
			s.Violations++
		default:
			s.Undecided++
		}
		s.Lost += len(r.Lost)
		s.Phantom += len(r.Phantom)
		s.Divergent += len(r.Divergent)
		s.Problems += len(r.Problems)
		if len(r.KnownBug) > 0 {
			s.KnownBug++
		}
	}
	return s
}

// WriteRuns prints one line per run.
func WriteRuns(w io.Writer, rs []*Result, errs []error) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seed\tfaults\tops\tacked\tunknown\tcheck\tlost\tphantom\tdivergent\tknown bug\twall\t")
	for i, r := range rs {
		if errs[i] != nil {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\tnot run: %.60s\t-\t-\t-\t-\t-\t\n", r.Seed, errs[i])
			continue
		}
		restarted := map[Kind]int{}
		for _, a := range r.Injected {
			if a.Restarted {
				restarted[a.Kind]++
			}
		}
		var kinds []string
		for _, k := range AllKinds {
			if n := r.Faults[k]; n > 0 {
				s := fmt.Sprintf("%s:%d", shortKind(k), n)
				if m := restarted[k]; m > 0 {
					s += fmt.Sprintf("(%d restarted)", m)
				}
				kinds = append(kinds, s)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t\n", r.Seed, strings.Join(kinds, " "), r.TotalOps(),
			r.Ops["write ok"]+r.Ops["cas ok"], r.Ops["write unknown"]+r.Ops["cas unknown"], r.Check,
			len(r.Lost), len(r.Phantom), len(r.Divergent), len(r.KnownBug), r.Wall.Round(time.Second))
	}
	return tw.Flush()
}

// WriteSummary prints the summary table.
func (s Summary) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "runs\t%d (%d not carried out)\n", s.Runs, s.Failed)
	for _, k := range AllKinds {
		fmt.Fprintf(tw, "faults: %s\t%d in %d runs%s\n", k, s.Faults[k], s.RunsWith[k], s.detail(k))
	}
	fmt.Fprintf(tw, "operations\t%d (%d writes acknowledged, %d unknown)\n", s.Ops, s.Acked, s.Unknown)
	fmt.Fprintf(tw, "linearizability violations\t%d runs (%d undecided)\n", s.Violations, s.Undecided)
	fmt.Fprintf(tw, "lost acknowledged writes\t%d\n", s.Lost)
	fmt.Fprintf(tw, "failed writes seen\t%d\n", s.Phantom)
	fmt.Fprintf(tw, "divergent replicas\t%d\n", s.Divergent)
	fmt.Fprintf(tw, "other problems\t%d\n", s.Problems)
	fmt.Fprintf(tw, "runs showing the known bug\t%d (%s)\n", s.KnownBug, RerunAfterLeadershipLost)
	fmt.Fprintf(tw, "wall time\t%s\n", s.Wall.Round(time.Second))
	return tw.Flush()
}

// detail says, for DiskFull and Membership, how many hit the leader and how many needed the
// node restarted.
func (s Summary) detail(k Kind) string {
	switch k {
	case DiskFull:
		return fmt.Sprintf(" (%d on the leader; %d nodes ended on the full disk and were restarted)", s.LeaderHit[k], s.Restarted[k])
	case Membership:
		return fmt.Sprintf(" (%d removed the leader; %d nodes restarted to come back)", s.LeaderHit[k], s.Restarted[k])
	}
	return ""
}

func shortKind(k Kind) string {
	return map[Kind]string{Kill: "kill", Pause: "pause", PartitionMinority: "minority", PartitionLeader: "leader", PartitionBridge: "bridge",
		DiskFull: "disk", Membership: "member"}[k]
}

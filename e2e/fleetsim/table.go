package fleetsim

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// unit says how a figure prints.
type unit int

const (
	count unit = iota
	bytesUnit
	seconds
	percent
	share
	perSecond
	micros
	ratio
)

// row is one line of the table: a figure read from each run.
type row struct {
	label string
	unit  unit
	get   func(*Result) float64
}

func at(xs []float64, i int) float64 {
	if i < len(xs) {
		return xs[i]
	}
	return nan
}

var rows = []row{
	{"agents (N)", count, func(r *Result) float64 { return float64(r.N) }},
	{"regressing clusters (K)", count, func(r *Result) float64 { return float64(r.Regress) }},
	{"agents registered", count, func(r *Result) float64 { return float64(r.Registered) }},
	{"agents connected (assignment stream)", count, func(r *Result) float64 { return float64(r.Connected) }},
	{"all agents connected after", seconds, func(r *Result) float64 { return r.ConnectSeconds }},
	{"idle: RSS per agent, 3 nodes", bytesUnit, func(r *Result) float64 { return r.RSSPerAgent }},
	{"idle: RSS per agent, ctl-1", bytesUnit, func(r *Result) float64 { return at(r.RSSPerAgentNode, 0) }},
	{"idle: RSS per agent, ctl-2", bytesUnit, func(r *Result) float64 { return at(r.RSSPerAgentNode, 1) }},
	{"idle: RSS per agent, ctl-3", bytesUnit, func(r *Result) float64 { return at(r.RSSPerAgentNode, 2) }},
	{"idle: Go heap per agent, 3 nodes", bytesUnit, func(r *Result) float64 { return r.HeapPerAgent }},
	{"idle: Go heap per agent, ctl-1", bytesUnit, func(r *Result) float64 { return at(r.HeapPerAgentNode, 0) }},
	{"idle: Go heap per agent, ctl-2", bytesUnit, func(r *Result) float64 { return at(r.HeapPerAgentNode, 1) }},
	{"idle: Go heap per agent, ctl-3", bytesUnit, func(r *Result) float64 { return at(r.HeapPerAgentNode, 2) }},
	{"idle: RSS of 3 nodes, before agents", bytesUnit, func(r *Result) float64 { return sum(r.RSSBefore) }},
	{"idle: RSS of 3 nodes, with agents", bytesUnit, func(r *Result) float64 { return sum(r.RSSIdle) }},
	{"idle: controller CPU, 3 nodes", percent, func(r *Result) float64 { return r.CPUIdleAll }},
	{"idle: controller CPU, leader", percent, func(r *Result) float64 { return r.CPUIdleLeader }},
	{"idle: simulator CPU (same machine)", percent, func(r *Result) float64 { return r.CPUIdleSim }},
	{"idle: heartbeats answered", perSecond, func(r *Result) float64 { return r.HeartbeatRate }},
	{"idle: heartbeat CPU (leader CPU / heartbeat)", micros, func(r *Result) float64 { return r.HeartbeatCPU }},
	{"idle: leader CPU per agent, per second", micros, func(r *Result) float64 { return r.LeaderCPUPerAgent }},
	{"wave: CreateRollout latency", seconds, func(r *Result) float64 { return r.CreateRolloutSeconds }},
	{"wave: agents given a first assignment", count, func(r *Result) float64 { return waveCount(r, r.FirstAssigned) }},
	{"wave: first assignment p50", seconds, func(r *Result) float64 { return r.FirstP50 }},
	{"wave: first assignment p99", seconds, func(r *Result) float64 { return r.FirstP99 }},
	{"wave: first assignment max", seconds, func(r *Result) float64 { return r.FirstMax }},
	{"wave: first assignment within 2 s", share, func(r *Result) float64 { return r.FirstIn2s }},
	{"wave: first assignment p99, from the call", seconds, func(r *Result) float64 { return r.FirstCallP99 }},
	{"wave: next-phase turn-around p50", seconds, func(r *Result) float64 { return r.TurnP50 }},
	{"wave: next-phase turn-around p99", seconds, func(r *Result) float64 { return r.TurnP99 }},
	{"wave/rollback: assignment before the report's ack", share, func(r *Result) float64 { return r.BeforeAck }},
	{"wave: reports accepted", count, func(r *Result) float64 { return r.ReportsAccepted }},
	{"wave: reports rejected / failed", count, func(r *Result) float64 { return r.ReportsRejected + r.ReportErrors }},
	{"wave: reports accepted per second", perSecond, func(r *Result) float64 { return r.ReportsPerSecond }},
	{"wave: Raft bytes per report", bytesUnit, func(r *Result) float64 { return r.RaftBytesPerReport }},
	{"wave: Raft bytes per report entry", bytesUnit, func(r *Result) float64 { return r.RaftBytesPerEntry }},
	{"wave: reports per report entry", ratio, func(r *Result) float64 { return r.ReportsPerEntry }},
	{"wave: Raft entries per accepted report", ratio, func(r *Result) float64 { return r.RaftEntriesPerReport }},
	{"wave: rollout size at the end", bytesUnit, func(r *Result) float64 { return r.RolloutBytes }},
	{"wave: rollout end (from CreateRollout)", seconds, func(r *Result) float64 { return r.EndSeconds }},
	{"rollback: regressions rolled back", count, func(r *Result) float64 { return waveCount(r, r.Rollbacks) }},
	{"rollback: regression -> rollback p50", seconds, func(r *Result) float64 { return r.RollbackP50 }},
	{"rollback: regression -> rollback p99", seconds, func(r *Result) float64 { return r.RollbackP99 }},
	{"agents live at the end (leader)", count, func(r *Result) float64 { return r.Live }},
	{"Raft elections during the run", count, func(r *Result) float64 { return r.Elections }},
	{"wave: goroutine waits over 10 ms (worst node)", share, func(r *Result) float64 { return r.SchedOver10ms }},
	{"wave: goroutine waits over 117 ms (worst node)", count, func(r *Result) float64 { return r.SchedOver117ms }},
}

// waveCount is n, or NaN when no rollout ran.
func waveCount(r *Result, n int) float64 {
	if math.IsNaN(r.CreateRolloutSeconds) {
		return nan
	}
	return float64(n)
}

func sum(xs []float64) float64 {
	if len(xs) == 0 {
		return nan
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// Table prints the figures of the new runs (the median over rounds), and with reference runs
// those too and the ratio new/ref, then each run's end state and notes.
func Table(w io.Writer, news, refs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "figure\tnew"
	if len(refs) > 0 {
		head = "figure\tref\tnew\tnew/ref"
	}
	if len(news) > 1 || len(refs) > 1 {
		head += fmt.Sprintf("\t(median of %d rounds)", max(len(news), len(refs)))
	}
	fmt.Fprintln(tw, head+"\t")
	for _, rw := range rows {
		nv := median(news, rw.get)
		line := rw.label + "\t"
		if len(refs) > 0 {
			rv := median(refs, rw.get)
			line += format(rw.unit, rv) + "\t" + format(rw.unit, nv) + "\t" + formatRatio(nv, rv)
		} else {
			line += format(rw.unit, nv)
		}
		fmt.Fprintln(tw, line+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range append(slices.Clone(refs), news...) {
		fmt.Fprintf(w, "%s: %s\n", r.Label, r.Summary())
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	return nil
}

// Summary is the run's rollout end, in a line.
func (r *Result) Summary() string {
	if r.EndState == 0 && len(r.ClusterEnds) == 0 {
		return fmt.Sprintf("no rollout (leader %s)", r.Leader)
	}
	counts := map[string]int{}
	for _, st := range r.ClusterEnds {
		counts[strings.TrimPrefix(st.String(), "CLUSTER_ROLLOUT_STATE_")]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], strings.ToLower(k)))
	}
	state := strings.TrimPrefix(r.EndState.String(), "ROLLOUT_STATE_")
	if r.TimedOut {
		state = "TIMED OUT while " + state
	}
	return fmt.Sprintf("rollout %s after %s (%s); raft bytes from %s; %s", state, format(seconds, r.EndSeconds),
		strings.Join(parts, ", "), r.RaftBytesKinds, r.EndMessage)
}

func median(rs []*Result, get func(*Result) float64) float64 {
	var xs []float64
	for _, r := range rs {
		if v := get(r); !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	return quantiles(xs, 0.5)
}

func format(u unit, v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch u {
	case bytesUnit:
		a := math.Abs(v)
		switch {
		case a >= 1<<30:
			return fmt.Sprintf("%.2f GiB", v/(1<<30))
		case a >= 1<<20:
			return fmt.Sprintf("%.1f MiB", v/(1<<20))
		case a >= 1<<10:
			return fmt.Sprintf("%.1f KiB", v/(1<<10))
		}
		return fmt.Sprintf("%.0f B", v)
	case seconds:
		switch a := math.Abs(v); {
		case a >= 10:
			return fmt.Sprintf("%.1f s", v)
		case a >= 1:
			return fmt.Sprintf("%.2f s", v)
		}
		return fmt.Sprintf("%.1f ms", v*1000)
	case percent:
		return fmt.Sprintf("%.1f%% of a core", v)
	case share:
		return fmt.Sprintf("%.1f%%", v*100)
	case perSecond:
		return fmt.Sprintf("%.1f/s", v)
	case micros:
		return fmt.Sprintf("%.1f µs", v*1e6)
	case ratio:
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func formatRatio(nv, rv float64) string {
	if math.IsNaN(nv) || math.IsNaN(rv) || rv == 0 {
		return "n/a"
	}
	if q := nv / rv; q >= 0.01 && q < 1000 {
		return fmt.Sprintf("%.2fx", q)
	}
	return fmt.Sprintf("%.3gx", nv/rv)
}

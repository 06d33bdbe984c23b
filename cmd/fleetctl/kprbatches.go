package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// The node batches of a node-by-node kpr phase, in rollout status and rollout plan: one line per
// batch, "kpr batch 2/3: n-02, n-04, n-05 (1 moved before)", and one per node left out.

// maxBatchNodes is how many node names a batch line shows; -o yaml has them all.
const maxBatchNodes = 8

// kprBatchLine renders a batch: its number, its nodes and how many earlier batches moved.
func kprBatchLine(b *ebbflowv1.KprBatchStatus) string {
	s := fmt.Sprintf("kpr batch %d/%d: ", b.GetBatch(), b.GetBatches())
	nodes := b.GetNodes()
	if len(nodes) == 0 {
		return s + "not started"
	}
	more := ""
	if len(nodes) > maxBatchNodes {
		more = fmt.Sprintf(" and %d more", len(nodes)-maxBatchNodes)
		nodes = nodes[:maxBatchNodes]
	}
	return s + fmt.Sprintf("%s%s (%d moved before)", strings.Join(nodes, ", "), more, b.GetNodesMovedBefore())
}

// kprSkippedLines are "<cluster> kpr skips n-03: <reason>", one per node a batch left out.
func kprSkippedLines(cluster string, b *ebbflowv1.KprBatchStatus) []string {
	var out []string
	for _, s := range b.GetSkipped() {
		out = append(out, fmt.Sprintf("  %s kpr skips %s", cluster, s))
	}
	return out
}

// clusterKprBatches lists a rollout cluster's node batches: each batch result with its verdict
// ("in progress" for the one the cluster works on), then the nodes left out.
func clusterKprBatches(c *ebbflowv1.RolloutCluster) []string {
	var out, skipped []string
	for _, res := range c.GetResults() {
		b := res.GetKprBatch()
		if res.GetPhase() != ebbflowv1.Phase_PHASE_KPR || b == nil {
			continue
		}
		line := fmt.Sprintf("  %s %s", c.GetCluster(), kprBatchLine(b))
		switch {
		case res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED:
			line += ": " + enumName(res.GetVerdict().String(), "VERDICT_")
		case len(b.GetNodes()) > 0:
			line += ": " + enumName(c.GetState().String(), "CLUSTER_ROLLOUT_STATE_")
		}
		out = append(out, line)
		skipped = append(skipped, kprSkippedLines(c.GetCluster(), b)...)
	}
	return append(out, skipped...)
}

// clusterPhase is the PHASE column of rollout status: the phase, with the node batch in a
// node-by-node kpr phase ("kpr 2/3").
func clusterPhase(c *ebbflowv1.RolloutCluster) string {
	name := phaseName(c.GetPhase())
	if c.GetPhase() != ebbflowv1.Phase_PHASE_KPR || c.GetKprBatch() == 0 {
		return name
	}
	for i := len(c.GetResults()) - 1; i >= 0; i-- {
		if n := c.GetResults()[i].GetKprBatch().GetBatches(); n > 0 {
			return fmt.Sprintf("%s %d/%d", name, c.GetKprBatch(), n)
		}
	}
	return fmt.Sprintf("%s %d", name, c.GetKprBatch())
}

// resultPhase names a result's phase, with its node batch when it has one ("kpr batch 2/3").
func resultPhase(res *ebbflowv1.PhaseResult) string {
	if b := res.GetKprBatch(); b != nil {
		return fmt.Sprintf("%s batch %d/%d", phaseName(res.GetPhase()), b.GetBatch(), b.GetBatches())
	}
	return phaseName(res.GetPhase())
}

// planKprBatches lists the node batches of each planned cluster, then the nodes left out.
func planKprBatches(p *ebbflowv1.PlanRolloutResponse) []string {
	var out []string
	for _, wv := range p.GetWaves() {
		for _, c := range wv.GetClusters() {
			var skipped []string
			for _, b := range c.GetKprBatches() {
				out = append(out, fmt.Sprintf("  %s %s", c.GetCluster(), kprBatchLine(b)))
				skipped = append(skipped, kprSkippedLines(c.GetCluster(), b)...)
			}
			out = append(out, skipped...)
		}
	}
	return out
}

// section flushes the table written to w so far, then prints a titled list under it; nothing
// when lines is empty.
func section(w io.Writer, title string, lines []string) {
	flushTable(w)
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, title)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// flushTable writes out the rows a table writer holds, so lines after it are not aligned with
// them.
func flushTable(w io.Writer) {
	if tw, ok := w.(*table); ok {
		_ = tw.Flush()
	} else if tw, ok := w.(*tabwriter.Writer); ok {
		_ = tw.Flush()
	}
}

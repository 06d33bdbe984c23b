package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (a *app) rolloutStatus() *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status ID [--watch]",
		Short: "Show a rollout: waves, per-cluster phase, state, latency deltas, verdicts and reasons",
		Long: `Show a rollout. With --watch, redraw as the controller streams changes and exit when the
rollout ends: 0 if it succeeded, 10 if it failed or was rolled back, 11 if it was aborted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !watch {
				ctx, cancel := a.call(cmd)
				defer cancel()
				res, err := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: args[0]}))
				if err != nil {
					return err
				}
				return a.printMsg(res.Msg.GetRollout(), func(w io.Writer) { rolloutView(w, res.Msg.GetRollout()) })
			}
			stream, err := a.clients.rollouts.WatchRollout(cmd.Context(), connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: args[0]}))
			if err != nil {
				return err
			}
			defer stream.Close()
			var last *ebbflowv1.Rollout
			for stream.Receive() {
				last = stream.Msg().GetRollout()
				if a.output == "table" && isTerminal(a.out) {
					fmt.Fprint(a.out, "\033[H\033[2J") // redraw in place on a terminal
				}
				if err := a.printMsg(last, func(w io.Writer) { rolloutView(w, last) }); err != nil {
					return err
				}
				if a.output == "table" && !isTerminal(a.out) {
					fmt.Fprintln(a.out, "---")
				}
			}
			if err := stream.Err(); err != nil {
				return err
			}
			if last == nil {
				return errors.New("the watch ended before the controller sent the rollout")
			}
			return watchOutcome(last)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "stream changes until the rollout ends; the exit code tells how it ended")
	return cmd
}

// watchOutcome turns a rollout's final state into fleetctl's exit code.
func watchOutcome(r *ebbflowv1.Rollout) error {
	st := r.GetState()
	switch st {
	case ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED:
		return nil
	case ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED:
		return &exitErr{code: exitRolloutAborted, err: fmt.Errorf("rollout %s was aborted: %s", r.GetId(), r.GetMessage())}
	case ebbflowv1.RolloutState_ROLLOUT_STATE_FAILED, ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK:
		return &exitErr{code: exitRolloutFailed, err: fmt.Errorf("rollout %s %s: %s", r.GetId(), enumName(st.String(), "ROLLOUT_STATE_"), r.GetMessage())}
	}
	return &exitErr{code: exitUnavailable, err: fmt.Errorf("the watch of rollout %s ended while it was %s", r.GetId(), enumName(st.String(), "ROLLOUT_STATE_"))}
}

func isTerminal(w io.Writer) bool {
	type fder interface{ Fd() uintptr }
	f, ok := w.(fder)
	if !ok {
		return false
	}
	return isatty(f.Fd())
}

// rolloutView prints the rollout header, its waves, and one row per cluster.
func rolloutView(w io.Writer, r *ebbflowv1.Rollout) {
	fmt.Fprintf(w, "Rollout %s\tprofile %s@%d\tstate %s\n", r.GetId(), r.GetSpec().GetProfile(), r.GetProfileRevision(),
		strings.ToUpper(enumName(r.GetState().String(), "ROLLOUT_STATE_")))
	if r.GetMessage() != "" {
		fmt.Fprintf(w, "  %s\n", r.GetMessage())
	}
	fmt.Fprintln(w)
	row(w, "WAVE", "CLUSTER", "PHASE", "STATE", "P50 Δ", "P99 Δ", "VERDICT", "REASON")
	for _, wv := range r.GetWaves() {
		label := fmt.Sprintf("%d %s", wv.GetIndex(), enumName(wv.GetState().String(), "WAVE_STATE_"))
		if wv.GetName() != "" {
			label = fmt.Sprintf("%d %s (%s)", wv.GetIndex(), wv.GetName(), enumName(wv.GetState().String(), "WAVE_STATE_"))
		}
		for _, c := range wv.GetClusters() {
			p50, p99, verdict := "-", "-", "-"
			if res := lastResult(c); res != nil && res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
				p50 = fmt.Sprintf("%+.1f%%", res.GetP50DeltaPercent())
				p99 = fmt.Sprintf("%+.1f%%", res.GetP99DeltaPercent())
				verdict = enumName(res.GetVerdict().String(), "VERDICT_")
			}
			reason := c.GetReason()
			if reason == "" && len(c.GetHeldPhases()) > 0 {
				reason = "held " + phaseList(c.GetHeldPhases()) + " by preflight: " + c.GetHeldReason()
			}
			row(w, label, c.GetCluster(), phaseName(c.GetPhase()), enumName(c.GetState().String(), "CLUSTER_ROLLOUT_STATE_"),
				p50, p99, verdict, orDash(shorten(reason, 160)))
		}
	}
	for _, s := range r.GetSkipped() {
		row(w, "skipped", s.GetCluster(), "-", "skipped", "-", "-", "-", s.GetReason())
	}
	if tw, ok := w.(*tabwriter.Writer); ok {
		_ = tw.Flush()
	}
}

// lastResult is the result of the cluster's latest judged phase.
func lastResult(c *ebbflowv1.RolloutCluster) *ebbflowv1.PhaseResult {
	rs := c.GetResults()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
			return rs[i]
		}
	}
	return nil
}

// shorten cuts a long reason for the table; -o yaml shows it whole.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

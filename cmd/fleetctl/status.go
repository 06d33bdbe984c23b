package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/rollout"
)

func (a *app) rolloutStatus() *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status ID [--watch [--timeout 30m]]",
		Short: "Show a rollout: waves, per-cluster phase, state, latency deltas, verdicts and reasons",
		Long: `Show a rollout: waves, each cluster's phase and state, the latency deltas and verdict of its
latest judged phase, and the judge's test of each percentile against its budget.

With --watch, redraw as the controller streams changes and exit when the rollout ends: 0 if it
succeeded, 10 if it failed or was rolled back, 11 if it was aborted. --timeout bounds the whole
watch (unbounded unless given): when it passes first, exit 13.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindRollout),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !watch {
				ctx, cancel := a.call(cmd)
				defer cancel()
				res, err := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: args[0], OmitMeasurements: a.isTable()}))
				if err != nil {
					return err
				}
				return a.printMsg(res.Msg.GetRollout(), func(w io.Writer) { rolloutView(w, res.Msg.GetRollout()) })
			}
			ctx := cmd.Context()
			if f := cmd.Flag("timeout"); f != nil && f.Changed {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, a.timeout)
				defer cancel()
			}
			err := a.watchRollout(ctx, args[0])
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && cmd.Context().Err() == nil {
				return &exitErr{code: exitWatchTimeout, err: fmt.Errorf("rollout %s had not ended after %s", args[0], a.timeout)}
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "stream changes until the rollout ends; the exit code tells how it ended")
	return cmd
}

// watchGiveUp is how long a --watch keeps trying to reach a controller once none answers.
const watchGiveUp = time.Minute

// watchRollout prints the rollout as the controller streams it, until it ends. When the stream
// breaks first (its controller restarted or went away), it reconnects with backoff, moving
// through the --server list, for as long as a controller answers within watchGiveUp.
func (a *app) watchRollout(ctx context.Context, id string) error {
	var last *ebbflowv1.Rollout
	next, lastHeard := 0, time.Now()
	delay := reconnectBackoff(100*time.Millisecond, 2*time.Second)
	for {
		client := ebbflowv1connect.NewRolloutServiceClient(a.httpClient, a.servers[next%len(a.servers)], a.clientOpts...)
		got, err := a.watchOnce(ctx, client, id, &last)
		if last != nil && rollout.Terminal(last.GetState()) {
			return watchOutcome(last)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeInternal, connect.CodeAborted, connect.CodeDeadlineExceeded:
		default:
			if err != nil {
				return err
			}
		}
		if got > 0 {
			lastHeard = time.Now()
			delay.Reset()
		}
		if time.Since(lastHeard) > watchGiveUp {
			if err == nil {
				return watchOutcome(last)
			}
			return err
		}
		next++
		fmt.Fprintf(a.errOut, "watch: the stream from %s ended (%v); reconnecting to %s\n",
			a.servers[(next-1)%len(a.servers)], err, a.servers[next%len(a.servers)])
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay.NextBackOff()):
		}
	}
}

// reconnectBackoff doubles from initial to max with 20% jitter, and never stops by itself.
func reconnectBackoff(initial, max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier, b.RandomizationFactor = initial, max, 2, 0.2
	b.Reset()
	return b
}

// watchOnce follows one stream until it ends, printing every message; it returns how many
// messages came and the stream's error.
func (a *app) watchOnce(ctx context.Context, client ebbflowv1connect.RolloutServiceClient, id string, last **ebbflowv1.Rollout) (int, error) {
	// The table shows no measurements: leave them out of every message (JSON and YAML keep them).
	stream, err := client.WatchRollout(ctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: id, OmitMeasurements: a.isTable()}))
	if err != nil {
		return 0, err
	}
	defer func() { _ = stream.Close() }() // the stream's own error is the one returned
	n := 0
	for stream.Receive() {
		n++
		r := stream.Msg().GetRollout()
		*last = r
		if a.isTable() && isTerminal(a.out) {
			fmt.Fprint(a.out, "\033[H\033[2J") // redraw in place on a terminal
		}
		if err := a.printMsg(r, func(w io.Writer) { rolloutView(w, r) }); err != nil {
			return n, err
		}
		if a.isTable() && !isTerminal(a.out) {
			fmt.Fprintln(a.out, "---")
		}
		if rollout.Terminal(r.GetState()) {
			return n, nil
		}
	}
	if err := stream.Err(); err != nil {
		return n, err
	}
	if n == 0 && *last == nil {
		return 0, connect.NewError(connect.CodeUnavailable, errors.New("the watch ended before the controller sent the rollout"))
	}
	return n, nil
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

// rolloutView prints the rollout header, its waves, one row per cluster, and the judge's
// per-percentile verdicts of each cluster's latest judged phase.
func rolloutView(w io.Writer, r *ebbflowv1.Rollout) {
	fmt.Fprintf(w, "Rollout %s\tprofile %s@%d\tstate %s\n", r.GetId(), r.GetSpec().GetProfile(), r.GetProfileRevision(),
		strings.ToUpper(enumName(r.GetState().String(), "ROLLOUT_STATE_")))
	if r.GetMessage() != "" {
		fmt.Fprintf(w, "  %s\n", r.GetMessage())
	}
	fmt.Fprintln(w)
	wavesView(w, r)
}

// wavesView is the status view without its header: the waves table and the percentiles.
func wavesView(w io.Writer, r *ebbflowv1.Rollout) {
	header(w, "WAVE", "CLUSTER", "PHASE", "STATE", "P50 Δ", "P99 Δ", "VERDICT", "REASON")
	var verdicts, batches []string
	for _, wv := range r.GetWaves() {
		state := waveState(r, wv)
		label := fmt.Sprintf("%d %s", wv.GetIndex(), state)
		if wv.GetName() != "" {
			label = fmt.Sprintf("%d %s (%s)", wv.GetIndex(), wv.GetName(), state)
		}
		for _, c := range wv.GetClusters() {
			p50, p99, verdict := "-", "-", "-"
			res := lastResult(c)
			if res != nil {
				p50 = fmt.Sprintf("%+.1f%%", res.GetP50DeltaPercent())
				p99 = fmt.Sprintf("%+.1f%%", res.GetP99DeltaPercent())
				verdict = enumName(res.GetVerdict().String(), "VERDICT_")
				if ps := percentileVerdicts(res); ps != "" {
					verdicts = append(verdicts, fmt.Sprintf("  %s %s: %s", c.GetCluster(), resultPhase(res), ps))
				}
			}
			reason := c.GetReason()
			if reason == "" && len(c.GetHeldPhases()) > 0 {
				reason = "held " + phaseList(c.GetHeldPhases()) + " by preflight: " + c.GetHeldReason()
			}
			switch m := measuringWindow(c); {
			case c.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING && strings.HasPrefix(reason, "measuring window"):
				reason = "" // left over from the phase's measuring: not what the cluster does now
			case m != "" && !strings.Contains(reason, "measuring window"):
				reason = strings.TrimPrefix(reason+"; "+m, "; ")
			}
			row(w, label, c.GetCluster(), clusterPhase(c), enumName(c.GetState().String(), "CLUSTER_ROLLOUT_STATE_"),
				p50, p99, verdict, orDash(shorten(reason, 160)))
			batches = append(batches, clusterKprBatches(c)...)
		}
	}
	for _, s := range r.GetSkipped() {
		row(w, "skipped", s.GetCluster(), "-", "skipped", "-", "-", "-", s.GetReason())
	}
	section(w, "Node batches (kpr node by node):", batches)
	section(w, "Percentiles (change against the baseline [interval] against the budget):", verdicts)
}

// waveState is a wave's state as the table shows it: once the rollout is aborted, a wave the
// controller left progressing, soaking or waiting shows as aborted, and one that never started
// as "not started", not as if it were still moving.
func waveState(r *ebbflowv1.Rollout, wv *ebbflowv1.Wave) string {
	st := enumName(wv.GetState().String(), "WAVE_STATE_")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED {
		return st
	}
	switch wv.GetState() {
	case ebbflowv1.WaveState_WAVE_STATE_PROGRESSING, ebbflowv1.WaveState_WAVE_STATE_SOAKING, ebbflowv1.WaveState_WAVE_STATE_WAITING_FOR_APPROVAL:
		return "aborted"
	case ebbflowv1.WaveState_WAVE_STATE_PENDING:
		return "not started"
	}
	return st
}

// percentileVerdicts renders a result's per-percentile tests:
// "p50 +1.0% [-2.0%, +4.1%] <= budget 10% pass; p99 +12.1% [+4.0%, +20.9%] > budget 10% regression".
// "" for a result without them (the baseline, or one judged before they were recorded).
func percentileVerdicts(res *ebbflowv1.PhaseResult) string {
	var out []string
	for _, p := range res.GetPercentiles() {
		cmp := "~"
		switch p.GetVerdict() {
		case ebbflowv1.Verdict_VERDICT_PASS:
			cmp = "<="
		case ebbflowv1.Verdict_VERDICT_REGRESSION:
			cmp = ">"
		case ebbflowv1.Verdict_VERDICT_INCONCLUSIVE:
			cmp = "spans"
		}
		out = append(out, fmt.Sprintf("%s %s [%s, %s] %s budget %s%% %s", p.GetName(), pct(p.GetDeltaPercent()),
			pct(p.GetLowerPercent()), pct(p.GetUpperPercent()), cmp, strconv.FormatFloat(p.GetBudgetPercent(), 'g', -1, 64),
			enumName(p.GetVerdict().String(), "VERDICT_")))
	}
	return strings.Join(out, "; ")
}

// pct writes a signed percentage with one decimal; an unbounded end is +inf or -inf.
func pct(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "?"
	}
	return fmt.Sprintf("%+.1f%%", f)
}

// measuringWindow is "measuring window 2/3" for a cluster the judge asked for another window
// of; "" otherwise, and for results recorded before windows were (window 0).
func measuringWindow(c *ebbflowv1.RolloutCluster) string {
	if c.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING {
		return ""
	}
	rs := c.GetResults()
	if len(rs) == 0 {
		return ""
	}
	res := rs[len(rs)-1]
	if res.GetPhase() != c.GetPhase() || res.GetWindow() <= 0 || res.GetWindow() >= res.GetMaxWindows() {
		return ""
	}
	return fmt.Sprintf("measuring window %d/%d", res.GetWindow()+1, res.GetMaxWindows())
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

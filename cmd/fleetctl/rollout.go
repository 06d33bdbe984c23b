package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
)

func (a *app) rolloutCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Aliases: []string{"rollouts"}, Short: "Rollouts: plan, create, status --watch, steer, history"}
	cmd.AddCommand(a.rolloutPlan(), a.rolloutCreate(), a.rolloutApply(), a.rolloutList(), a.rolloutGet(), a.rolloutDescribe(), a.rolloutStatus(), a.rolloutHistory())
	for _, v := range []struct{ use, short string }{
		{"pause ID", "Stop starting new phases until resumed"},
		{"resume ID", "Resume a paused rollout"},
		{"approve ID [--wave N | --cluster NAME]", "Open a wave's approval gate or accept a cluster's inconclusive result"},
		{"skip ID --cluster NAME", "Take a cluster out of the rollout (recorded as skipped)"},
		{"abort ID", "Stop issuing new phases; clusters keep what they have"},
		{"rollback ID [--cluster NAME | --wave N | --all]", "Roll back a cluster, a wave, or the whole rollout"},
	} {
		cmd.AddCommand(a.rolloutSteer(v.use, v.short))
	}
	return cmd
}

// oneRollout reads the -f sources of a command that takes one rollout.
func (a *app) oneRollout(ff fileFlags) (*manifest, error) {
	ms, err := a.readManifests(ff.files, ff.recursive)
	if err != nil {
		return nil, err
	}
	var found *manifest
	for _, m := range ms {
		if m.kind != kindRollout {
			continue
		}
		if found != nil {
			return nil, usageErr("%s and %s: give one rollout", found.pos, m.pos)
		}
		found = m
	}
	if found == nil {
		return nil, usageErr("%s: no rollout in the file", strings.Join(ff.files, ", "))
	}
	return found, nil
}

func (a *app) rolloutPlan() *cobra.Command {
	var ff fileFlags
	var prof, selector string
	var rev uint64
	var canary, waveSize, wavePercent int32
	cmd := &cobra.Command{
		Use:   "plan (-f FILE | --profile P [--selector S] [--canary N] [--wave-size N | --wave-percent P])",
		Short: "Dry run: which clusters a rollout would hit, in which wave, and each phase's preflight",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var spec *ebbflowv1.RolloutSpec
			switch {
			case len(ff.files) > 0:
				m, err := a.oneRollout(ff)
				if err != nil {
					return err
				}
				spec = m.rollout
			case prof != "":
				auto := &ebbflowv1.AutomaticWaves{CanaryCount: canary}
				switch {
				case wavePercent > 0:
					auto.Size = &ebbflowv1.AutomaticWaves_WavePercent{WavePercent: wavePercent}
				default:
					auto.Size = &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: waveSize}
				}
				spec = &ebbflowv1.RolloutSpec{Profile: prof, ProfileRevision: rev, ClusterSelector: selector,
					Waves: &ebbflowv1.RolloutSpec_Automatic{Automatic: auto}}
			default:
				return usageErr("give -f FILE or --profile")
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.rollouts.PlanRollout(ctx, connect.NewRequest(&ebbflowv1.PlanRolloutRequest{Spec: spec}))
			if err != nil {
				return err
			}
			a.printWarnings(res.Msg.GetWarnings())
			return a.printMsg(res.Msg, func(w io.Writer) { planTable(w, res.Msg) })
		},
	}
	f := cmd.Flags()
	ff.add(cmd, "rollout file")
	f.StringVar(&prof, "profile", "", "profile name")
	f.Uint64Var(&rev, "revision", 0, "profile revision (default latest)")
	f.StringVarP(&selector, "selector", "l", "", "cluster label selector")
	f.Int32Var(&canary, "canary", 1, "clusters in the canary wave")
	f.Int32Var(&waveSize, "wave-size", 10, "clusters per wave after the canary")
	f.Int32Var(&wavePercent, "wave-percent", 0, "clusters per wave after the canary, as a percentage of the rest")
	return cmd
}

func phaseName(p ebbflowv1.Phase) string {
	if p == ebbflowv1.Phase_PHASE_UNSPECIFIED {
		return "-"
	}
	return enumName(p.String(), "PHASE_")
}

func phaseList(ps []ebbflowv1.Phase) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = phaseName(p)
	}
	return strings.Join(s, ",")
}

func planTable(w io.Writer, p *ebbflowv1.PlanRolloutResponse) {
	fmt.Fprintf(w, "profile revision %d\n\n", p.GetProfileRevision())
	header(w, "WAVE", "CLUSTER", "PHASES", "HELD", "WHY HELD")
	for _, wv := range p.GetWaves() {
		name := fmt.Sprintf("%d", wv.GetIndex())
		if wv.GetName() != "" {
			name += " " + wv.GetName()
		}
		for _, c := range wv.GetClusters() {
			row(w, name, c.GetCluster(), phaseList(c.GetPhases()), phaseList(c.GetHeldPhases()), heldReasons(c))
		}
	}
	for _, s := range p.GetSkipped() {
		row(w, "skipped", s.GetCluster(), "-", "-", s.GetReason())
	}
	section(w, "Node batches (kpr node by node):", planKprBatches(p))
}

// heldReasons summarises the failing or unknown preflight checks of a cluster.
func heldReasons(c *ebbflowv1.ClusterPlan) string {
	var out []string
	seen := map[string]bool{}
	for _, ch := range c.GetChecks() {
		if ch.GetResult() == ebbflowv1.PreflightResult_PREFLIGHT_RESULT_PASS {
			continue
		}
		s := phaseName(ch.GetPhase()) + ": " + ch.GetFeature()
		if ch.GetNode() != "" {
			s += " on " + ch.GetNode()
		}
		s += ": " + ch.GetReason()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	if len(out) > 3 {
		out = append(out[:3], fmt.Sprintf("(+%d more; -o yaml for all)", len(out)-3))
	}
	return strings.Join(out, "; ")
}

func (a *app) rolloutCreate() *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "create -f FILE|DIR|- [-f ...] [-R]",
		Short: "Start the rollouts of files (one that exists already is an error: see rollout apply)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.readManifests(ff.files, ff.recursive)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.kind != kindRollout {
					return &exitErr{code: exitUsage, err: fmt.Errorf("%s: %s is a %s; rollout create starts rollouts (fleetctl apply takes both)", m.pos, m.ref(), m.kind)}
				}
			}
			return a.applyAll(cmd, ms, true)
		},
	}
	ff.add(cmd, "rollout files")
	a.addAllowEmpty(cmd)
	return cmd
}

func (a *app) rolloutApply() *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...] [-R]",
		Short: "Start the rollouts of files that are not running yet (as fleetctl apply)",
		Long:  applyLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.readManifests(ff.files, ff.recursive)
			if err != nil {
				return err
			}
			return a.applyAll(cmd, ms, false)
		},
	}
	ff.add(cmd, "rollout files")
	a.addDryRun(cmd)
	a.addAllowEmpty(cmd)
	return cmd
}

func (a *app) rolloutList() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List rollouts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.get(cmd, kindRollout, nil, "", stale)
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
}

func (a *app) rolloutGet() *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one rollout's summary row (-o yaml for all of it)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindRollout),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.get(cmd, kindRollout, args, "", false)
		},
	}
}

func (a *app) rolloutDescribe() *cobra.Command {
	return &cobra.Command{
		Use:               "describe ID",
		Short:             "Show a rollout in detail: spec, waves, each cluster's verdicts per percentile, history",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindRollout),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.describe(cmd, kindRollout, args[0])
		},
	}
}

func (a *app) rolloutHistory() *cobra.Command {
	return &cobra.Command{
		Use:               "history ID",
		Short:             "Every decision and manual action of a rollout, with time and actor",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindRollout),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.rollouts.GetRolloutHistory(ctx, connect.NewRequest(&ebbflowv1.GetRolloutHistoryRequest{Id: args[0]}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) { historyTable(w, res.Msg.GetEvents()) })
		},
	}
}

// historyTable lists a rollout's events; WAVE is "-" for an event of no wave.
func historyTable(w io.Writer, events []*ebbflowv1.RolloutEvent) {
	header(w, "TIME", "ACTOR", "KIND", "WAVE", "CLUSTER", "PHASE", "MESSAGE")
	for _, e := range events {
		wave := "-"
		if e.GetWave() >= 0 {
			wave = strconv.Itoa(int(e.GetWave()))
		}
		row(w, e.GetTime().AsTime().Format("2006-01-02T15:04:05Z07:00"), e.GetActor(), e.GetKind(), wave,
			orDash(e.GetCluster()), phaseName(e.GetPhase()), e.GetMessage())
	}
}

// steerAttempts bounds sendAgain.
const steerAttempts = 3

// sendAgain sends pause, resume or abort again after an UNKNOWN answer (the leader changed while
// the control committed: applied or not). That is safe for these three: a repeat of one that took
// effect changes nothing (a pause or resume is answered with the rollout as it is; an abort is
// refused, and alreadyThere reads the rollout and says it is already aborted).
func sendAgain[T any](a *app, what string, call func() (*connect.Response[T], error)) (*connect.Response[T], error) {
	for attempt := 1; ; attempt++ {
		res, err := call()
		if err == nil || connect.CodeOf(err) != connect.CodeUnknown || attempt == steerAttempts {
			return res, err
		}
		fmt.Fprintf(a.errOut, "fleetctl: %s: %v; sending it again (a repeat of one that took effect changes nothing)\n", what, err)
	}
}

// alreadyThere makes a repeated pause, resume or abort a no-op success, as kubectl's are: when the
// controller refuses the change as a conflict and the rollout is already where the verb would
// take it (there says), it prints so and exits 0; any other refusal stands.
func (a *app) alreadyThere(cmd *cobra.Command, id, verb string, err error, there func(ebbflowv1.RolloutState) bool) error {
	if connect.CodeOf(err) != connect.CodeFailedPrecondition && connect.CodeOf(err) != connect.CodeAborted {
		return err
	}
	ctx, cancel := a.call(cmd)
	defer cancel()
	cur, gerr := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: id}))
	if gerr != nil || !there(cur.Msg.GetRollout().GetState()) {
		return err
	}
	r := cur.Msg.GetRollout()
	return a.printMsg(r, func(w io.Writer) {
		fmt.Fprintf(w, "rollout/%s %s: already %s\n", id, verb, enumName(r.GetState().String(), "ROLLOUT_STATE_"))
	})
}

// rolloutSteer builds pause/resume/approve/skip/abort/rollback.
func (a *app) rolloutSteer(use, short string) *cobra.Command {
	verb := strings.Fields(use)[0]
	var reason, cluster string
	var wave int32
	var all bool
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindRollout),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			id := args[0]
			rc := a.clients.rollouts
			var r *ebbflowv1.Rollout
			var err error
			switch verb {
			case "pause":
				var res *connect.Response[ebbflowv1.PauseRolloutResponse]
				res, err = sendAgain(a, "rollout/"+id+" "+verb, func() (*connect.Response[ebbflowv1.PauseRolloutResponse], error) {
					return rc.PauseRollout(ctx, connect.NewRequest(&ebbflowv1.PauseRolloutRequest{Id: id, Reason: reason}))
				})
				if err != nil {
					return a.alreadyThere(cmd, id, verb, err, func(st ebbflowv1.RolloutState) bool {
						return st == ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED
					})
				}
				r = res.Msg.GetRollout()
			case "resume":
				var res *connect.Response[ebbflowv1.ResumeRolloutResponse]
				res, err = sendAgain(a, "rollout/"+id+" "+verb, func() (*connect.Response[ebbflowv1.ResumeRolloutResponse], error) {
					return rc.ResumeRollout(ctx, connect.NewRequest(&ebbflowv1.ResumeRolloutRequest{Id: id}))
				})
				if err != nil {
					return a.alreadyThere(cmd, id, verb, err, func(st ebbflowv1.RolloutState) bool {
						return st != ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED && !rollout.Terminal(st)
					})
				}
				r = res.Msg.GetRollout()
			case "approve":
				if !cmd.Flags().Changed("wave") {
					wave = -1
				}
				if (wave < 0) == (cluster == "") {
					return usageErr("approve: give exactly one of --wave N or --cluster NAME")
				}
				var res *connect.Response[ebbflowv1.ApproveRolloutResponse]
				res, err = rc.ApproveRollout(ctx, connect.NewRequest(&ebbflowv1.ApproveRolloutRequest{Id: id, Wave: wave, Cluster: cluster}))
				if err != nil {
					return err
				}
				r = res.Msg.GetRollout()
			case "skip":
				if cluster == "" {
					return usageErr("skip: --cluster is required")
				}
				var res *connect.Response[ebbflowv1.SkipClusterResponse]
				res, err = rc.SkipCluster(ctx, connect.NewRequest(&ebbflowv1.SkipClusterRequest{Id: id, Cluster: cluster, Reason: reason}))
				if err != nil {
					return err
				}
				r = res.Msg.GetRollout()
			case "abort":
				var res *connect.Response[ebbflowv1.AbortRolloutResponse]
				res, err = sendAgain(a, "rollout/"+id+" "+verb, func() (*connect.Response[ebbflowv1.AbortRolloutResponse], error) {
					return rc.AbortRollout(ctx, connect.NewRequest(&ebbflowv1.AbortRolloutRequest{Id: id, Reason: reason}))
				})
				if err != nil {
					return a.alreadyThere(cmd, id, verb, err, func(st ebbflowv1.RolloutState) bool {
						return st == ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED
					})
				}
				r = res.Msg.GetRollout()
			case "rollback":
				req := &ebbflowv1.RollbackRolloutRequest{Id: id, Reason: reason}
				n := 0
				if cluster != "" {
					req.Target, n = &ebbflowv1.RollbackRolloutRequest_Cluster{Cluster: cluster}, n+1
				}
				if cmd.Flags().Changed("wave") {
					req.Target, n = &ebbflowv1.RollbackRolloutRequest_Wave{Wave: wave}, n+1
				}
				if all {
					req.Target, n = &ebbflowv1.RollbackRolloutRequest_All{All: true}, n+1
				}
				if n != 1 {
					return usageErr("rollback: give exactly one of --cluster, --wave or --all")
				}
				var res *connect.Response[ebbflowv1.RollbackRolloutResponse]
				res, err = rc.RollbackRollout(ctx, connect.NewRequest(req))
				if err != nil {
					return err
				}
				r = res.Msg.GetRollout()
			default:
				return errors.New("unknown verb " + verb)
			}
			return a.printMsg(r, func(w io.Writer) {
				fmt.Fprintf(w, "rollout/%s %s: now %s\n", id, verb, enumName(r.GetState().String(), "ROLLOUT_STATE_"))
			})
		},
	}
	f := cmd.Flags()
	switch verb {
	case "pause", "skip", "abort", "rollback":
		f.StringVar(&reason, "reason", "", "why (recorded in the history)")
	}
	switch verb {
	case "approve", "skip", "rollback":
		f.StringVar(&cluster, "cluster", "", "cluster")
	}
	switch verb {
	case "approve", "rollback":
		f.Int32Var(&wave, "wave", 0, "wave index")
	}
	if verb == "rollback" {
		f.BoolVar(&all, "all", false, "the whole rollout")
	}
	return cmd
}

package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// resources are the kinds get and describe take, by every name they answer to.
var resources = map[string]string{
	"profile": kindProfile, "profiles": kindProfile, "prof": kindProfile,
	"cluster": "Cluster", "clusters": "Cluster", "cl": "Cluster",
	"rollout": kindRollout, "rollouts": kindRollout, "ro": kindRollout,
}

// resourceArgs reads "KIND [NAME...]" or "KIND/NAME ...".
func resourceArgs(args []string) (kind string, names []string, err error) {
	if len(args) == 0 {
		return "", nil, usageErr("give a resource: profiles, clusters or rollouts")
	}
	first, name, slash := strings.Cut(args[0], "/")
	kind, ok := resources[strings.ToLower(first)]
	if !ok {
		msg := fmt.Sprintf("unknown resource %q; want profiles, clusters or rollouts", first)
		if s := closest(first, []string{"profiles", "clusters", "rollouts"}); s != "" {
			msg += s
		}
		return "", nil, usageErr("%s", msg)
	}
	if slash {
		names = append(names, name)
		for _, a := range args[1:] {
			k, n, ok := strings.Cut(a, "/")
			if !ok || resources[strings.ToLower(k)] != kind {
				return "", nil, usageErr("%q: give every object as %s/NAME", a, strings.ToLower(kind))
			}
			names = append(names, n)
		}
		return kind, names, nil
	}
	return kind, args[1:], nil
}

func (a *app) getCmd() *cobra.Command {
	var selector string
	var stale bool
	cmd := &cobra.Command{
		Use:   "get (profiles|clusters|rollouts) [NAME ...] [-l SELECTOR]",
		Short: "List profiles, clusters or rollouts, or show the named ones",
		Example: `  fleetctl get rollouts
  fleetctl get rollout tune-eu -o yaml
  fleetctl get clusters -l env=prod -o name
  fleetctl get profiles -o jsonpath='{.profiles[*].name}'`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeResource,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, names, err := resourceArgs(args)
			if err != nil {
				return err
			}
			if selector != "" && kind != "Cluster" {
				return usageErr("-l: only clusters have labels")
			}
			return a.get(cmd, kind, names, selector, stale)
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector (clusters)")
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
}

// get prints the named objects of a kind, or all of them: one object as itself (its -o yaml
// is a file to apply, for a profile), several as a list.
func (a *app) get(cmd *cobra.Command, kind string, names []string, selector string, stale bool) error {
	ctx, cancel := a.call(cmd)
	defer cancel()
	switch kind {
	case kindProfile:
		all := &ebbflowv1.ListProfilesResponse{}
		if len(names) == 0 {
			var err error
			if all, err = a.listProfiles(ctx, stale); err != nil {
				return err
			}
		}
		for _, n := range names {
			res, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: n, Read: readOpts(stale)}))
			if err != nil {
				return err
			}
			all.Profiles = append(all.Profiles, res.Msg.GetProfile())
		}
		if len(names) == 1 {
			return a.printProfile(all.GetProfiles()[0])
		}
		return a.printMsg(all, func(w io.Writer) { profileTable(w, all.GetProfiles()) })
	case "Cluster":
		all := &ebbflowv1.ListClustersResponse{}
		if len(names) == 0 {
			var err error
			if all, err = a.listClusters(ctx, selector, stale); err != nil {
				return err
			}
		}
		for _, n := range names {
			res, err := a.clients.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: n, Read: readOpts(stale)}))
			if err != nil {
				return err
			}
			all.Clusters = append(all.Clusters, res.Msg.GetCluster())
		}
		if len(names) == 1 {
			return a.printMsg(all.GetClusters()[0], func(w io.Writer) { clusterTable(w, all.GetClusters()) })
		}
		return a.printMsg(all, func(w io.Writer) { clusterTable(w, all.GetClusters()) })
	}
	all := &ebbflowv1.ListRolloutsResponse{}
	if len(names) == 0 {
		var err error
		if all, err = a.listRollouts(ctx, stale); err != nil {
			return err
		}
	}
	for _, n := range names {
		res, err := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: n}))
		if err != nil {
			return err
		}
		all.Rollouts = append(all.Rollouts, res.Msg.GetRollout())
	}
	if len(names) == 1 {
		return a.printMsg(all.GetRollouts()[0], func(w io.Writer) { rolloutTable(w, all.GetRollouts()) })
	}
	return a.printMsg(all, func(w io.Writer) { rolloutTable(w, all.GetRollouts()) })
}

// printProfile prints one profile; its -o yaml is the file format apply reads.
func (a *app) printProfile(p *ebbflowv1.Profile) error {
	if a.outputKind() == "yaml" {
		b, err := profile.EncodeYAML(p)
		if err != nil {
			return err
		}
		_, err = a.out.Write(b)
		return err
	}
	return a.printMsg(p, func(w io.Writer) { profileTable(w, []*ebbflowv1.Profile{p}) })
}

// allPages calls page with each next_page_token in turn, from the first page, and returns
// every item.
func allPages[T any](page func(token string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	tok := ""
	for {
		items, next, err := page(tok)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if tok = next; tok == "" {
			return all, nil
		}
	}
}

func (a *app) listProfiles(ctx context.Context, stale bool) (*ebbflowv1.ListProfilesResponse, error) {
	ps, err := allPages(func(tok string) ([]*ebbflowv1.Profile, string, error) {
		res, err := a.clients.profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{
			Read: readOpts(stale), PageSize: 500, PageToken: tok,
		}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetProfiles(), res.Msg.GetNextPageToken(), nil
	})
	return &ebbflowv1.ListProfilesResponse{Profiles: ps}, err
}

func (a *app) listClusters(ctx context.Context, selector string, stale bool) (*ebbflowv1.ListClustersResponse, error) {
	cs, err := allPages(func(tok string) ([]*ebbflowv1.Cluster, string, error) {
		res, err := a.clients.clusters.ListClusters(ctx, connect.NewRequest(&ebbflowv1.ListClustersRequest{
			Selector: selector, Read: readOpts(stale), PageSize: 1000, PageToken: tok,
		}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetClusters(), res.Msg.GetNextPageToken(), nil
	})
	return &ebbflowv1.ListClustersResponse{Clusters: cs}, err
}

func (a *app) listRollouts(ctx context.Context, stale bool) (*ebbflowv1.ListRolloutsResponse, error) {
	rs, err := allPages(func(tok string) ([]*ebbflowv1.Rollout, string, error) {
		res, err := a.clients.rollouts.ListRollouts(ctx, connect.NewRequest(&ebbflowv1.ListRolloutsRequest{
			Read: readOpts(stale), PageSize: 500, PageToken: tok, OmitMeasurements: a.isTable(),
		}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetRollouts(), res.Msg.GetNextPageToken(), nil
	})
	return &ebbflowv1.ListRolloutsResponse{Rollouts: rs}, err
}

func profileTable(w io.Writer, ps []*ebbflowv1.Profile) {
	if wide(w) {
		header(w, "NAME", "REVISION", "CHART", "PHASES", "UPDATED", "BY", "DESCRIPTION")
	} else {
		header(w, "NAME", "REVISION", "CHART", "UPDATED", "DESCRIPTION")
	}
	for _, p := range ps {
		if wide(w) {
			row(w, p.GetName(), p.GetRevision(), chartOf(p.GetSpec()), profilePhases(p.GetSpec()), age(p.GetUpdateTime()),
				orDash(p.GetUpdatedBy()), orDash(p.GetSpec().GetDescription()))
			continue
		}
		row(w, p.GetName(), p.GetRevision(), chartOf(p.GetSpec()), age(p.GetUpdateTime()), orDash(p.GetSpec().GetDescription()))
	}
}

// profilePhases lists the phases a profile sets values for.
func profilePhases(s *ebbflowv1.ProfileSpec) string {
	var ps []ebbflowv1.Phase
	for _, x := range []struct {
		p   ebbflowv1.Phase
		set bool
	}{
		{ebbflowv1.Phase_PHASE_BASELINE, s.GetBaseline() != nil},
		{ebbflowv1.Phase_PHASE_L7, s.GetL7() != nil},
		{ebbflowv1.Phase_PHASE_KPR, s.GetKpr() != nil},
		{ebbflowv1.Phase_PHASE_XDP, s.GetXdp() != nil},
	} {
		if x.set {
			ps = append(ps, x.p)
		}
	}
	return phaseList(ps)
}

func rolloutTable(w io.Writer, rs []*ebbflowv1.Rollout) {
	if wide(w) {
		header(w, "ID", "PROFILE", "STATE", "WAVES", "CLUSTERS", "SELECTOR", "POLICY", "CREATED", "BY", "MESSAGE")
	} else {
		header(w, "ID", "PROFILE", "STATE", "WAVES", "CREATED", "BY")
	}
	for _, r := range rs {
		prof := fmt.Sprintf("%s@%d", r.GetSpec().GetProfile(), r.GetProfileRevision())
		state := enumName(r.GetState().String(), "ROLLOUT_STATE_")
		if wide(w) {
			n := 0
			for _, wv := range r.GetWaves() {
				n += len(wv.GetClusters())
			}
			row(w, r.GetId(), prof, state, len(r.GetWaves()), n, orDash(r.GetSpec().GetClusterSelector()),
				shortEnum(r.GetSpec().GetFailurePolicy()), age(r.GetCreateTime()), orDash(r.GetCreatedBy()), orDash(shorten(r.GetMessage(), 80)))
			continue
		}
		row(w, r.GetId(), prof, state, len(r.GetWaves()), age(r.GetCreateTime()), orDash(r.GetCreatedBy()))
	}
}

// shortEnum is an enum value's short spelling, as files take it: rollbackFailedClusters.
func shortEnum(e protoreflect.Enum) string {
	ev := e.Descriptor().Values().ByNumber(e.Number())
	if ev == nil || ev.Number() == 0 {
		return "-"
	}
	return enumShort(e.Descriptor(), ev)
}

func (a *app) describeCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "describe (profile|cluster|rollout) NAME",
		Short:             "Show one profile, cluster or rollout in detail",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeResource,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, names, err := resourceArgs(args)
			if err != nil {
				return err
			}
			if len(names) != 1 {
				return usageErr("describe: give one %s name", strings.ToLower(kind))
			}
			return a.describe(cmd, kind, names[0])
		},
	}
}

func (a *app) describe(cmd *cobra.Command, kind, name string) error {
	ctx, cancel := a.call(cmd)
	defer cancel()
	switch kind {
	case kindProfile:
		res, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: name}))
		if err != nil {
			return err
		}
		p := res.Msg.GetProfile()
		revs, err := a.clients.profiles.ListProfileRevisions(ctx, connect.NewRequest(&ebbflowv1.ListProfileRevisionsRequest{Name: name}))
		if err != nil {
			return err
		}
		return a.printMsg(p, func(w io.Writer) { describeProfile(w, p, revs.Msg.GetRevisions()) })
	case "Cluster":
		res, err := a.clients.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: name}))
		if err != nil {
			return err
		}
		c := res.Msg.GetCluster()
		return a.printMsg(c, func(w io.Writer) { describeCluster(w, c) })
	}
	res, err := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: name}))
	if err != nil {
		return err
	}
	r := res.Msg.GetRollout()
	hist, err := a.clients.rollouts.GetRolloutHistory(ctx, connect.NewRequest(&ebbflowv1.GetRolloutHistoryRequest{Id: name}))
	if err != nil {
		return err
	}
	return a.printMsg(r, func(w io.Writer) { describeRollout(w, r, hist.Msg.GetEvents()) })
}

// field writes a "Name:  value" line of a describe.
func field(w io.Writer, name string, v any) {
	fmt.Fprintf(w, "%s:\t%v\n", name, v)
}

func describeProfile(w io.Writer, p *ebbflowv1.Profile, revs []*ebbflowv1.Profile) {
	field(w, "Name", p.GetName())
	field(w, "Revision", p.GetRevision())
	field(w, "Chart", chartOf(p.GetSpec()))
	field(w, "Phases", profilePhases(p.GetSpec()))
	field(w, "Description", orDash(p.GetSpec().GetDescription()))
	field(w, "Updated", fmt.Sprintf("%s ago by %s", age(p.GetUpdateTime()), orDash(p.GetUpdatedBy())))
	fmt.Fprintln(w, "Revisions:")
	header(w, "  REVISION", "UPDATED", "BY")
	for _, r := range revs {
		row(w, fmt.Sprintf("  %d", r.GetRevision()), age(r.GetUpdateTime()), orDash(r.GetUpdatedBy()))
	}
}

func describeCluster(w io.Writer, c *ebbflowv1.Cluster) {
	inv := c.GetInventory()
	field(w, "Name", c.GetName())
	field(w, "Liveness", enumName(c.GetLiveness().String(), "LIVENESS_"))
	cordoned := "no"
	if c.GetCordoned() {
		cordoned = "yes"
		if c.GetCordonReason() != "" {
			cordoned += " (" + c.GetCordonReason() + ")"
		}
	}
	field(w, "Cordoned", cordoned)
	field(w, "Labels", labelString(c.GetLabels()))
	field(w, "Generation", c.GetGeneration())
	field(w, "Kubernetes", orDash(inv.GetKubernetesVersion()))
	field(w, "Cilium", orDash(inv.GetCiliumImageVersion()))
	field(w, "Kube-proxy", map[bool]string{true: "present", false: "absent"}[inv.GetKubeProxyPresent()])
	if nodes := inv.GetNodes(); len(nodes) > 0 {
		fmt.Fprintln(w, "Nodes:")
		header(w, "  NODE", "READY", "KERNEL", "OS", "NIC DRIVER", "CLOUD")
		for _, n := range nodes {
			row(w, "  "+n.GetName(), n.GetReady(), orDash(n.GetKernelVersion()), orDash(n.GetOsImage()), orDash(n.GetNicDriver()), orDash(n.GetCloudProvider()))
		}
	}
}

// describeRollout is the rollout's spec in brief, its status view with each judged phase's
// percentiles, and its history.
func describeRollout(w io.Writer, r *ebbflowv1.Rollout, events []*ebbflowv1.RolloutEvent) {
	s := r.GetSpec()
	field(w, "Id", r.GetId())
	field(w, "Profile", fmt.Sprintf("%s@%d", s.GetProfile(), r.GetProfileRevision()))
	field(w, "State", enumName(r.GetState().String(), "ROLLOUT_STATE_"))
	if r.GetMessage() != "" {
		field(w, "Message", r.GetMessage())
	}
	field(w, "Selector", orDash(s.GetClusterSelector()))
	field(w, "Failure policy", shortEnum(s.GetFailurePolicy()))
	field(w, "Created", fmt.Sprintf("%s ago by %s", age(r.GetCreateTime()), orDash(r.GetCreatedBy())))
	if r.GetEndTime() != nil {
		field(w, "Ended", age(r.GetEndTime())+" ago")
	}
	fmt.Fprintln(w)
	wavesView(w, r)
	if len(events) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Events:")
		historyTable(w, events)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (a *app) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Aliases: []string{"clusters"}, Short: "Member clusters: register, list, label, cordon"}
	cmd.AddCommand(a.clusterRegister(), a.clusterList(), a.clusterGet(), a.clusterDescribe(), a.clusterLabel(), a.clusterCordon(), a.clusterUncordon(), a.clusterDelete(), a.clusterRevoke())
	return cmd
}

// parseLabelArgs reads k=v pairs (and k- removals when allowRemove).
func parseLabelArgs(args []string, allowRemove bool) (set map[string]string, remove []string, err error) {
	set = map[string]string{}
	for _, arg := range args {
		for _, kv := range strings.Split(arg, ",") {
			if kv == "" {
				continue
			}
			if allowRemove && strings.HasSuffix(kv, "-") && !strings.Contains(kv, "=") {
				remove = append(remove, strings.TrimSuffix(kv, "-"))
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, nil, usageErr("label %q: want key=value", kv)
			}
			set[k] = v
		}
	}
	return set, remove, nil
}

func labelString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func clusterTable(w io.Writer, cs []*ebbflowv1.Cluster) {
	if wide(w) {
		header(w, "NAME", "LIVENESS", "CORDONED", "K8S", "CILIUM", "NODES", "KERNELS", "KUBE-PROXY", "CLOUD", "GENERATION", "LABELS")
	} else {
		header(w, "NAME", "LIVENESS", "CORDONED", "K8S", "CILIUM", "NODES", "KERNELS", "LABELS")
	}
	for _, c := range cs {
		cordoned := "no"
		if c.GetCordoned() {
			cordoned = "yes"
			if c.GetCordonReason() != "" {
				cordoned += " (" + c.GetCordonReason() + ")"
			}
		}
		inv := c.GetInventory()
		if wide(w) {
			row(w, c.GetName(), enumName(c.GetLiveness().String(), "LIVENESS_"), cordoned, orDash(inv.GetKubernetesVersion()),
				orDash(inv.GetCiliumImageVersion()), len(inv.GetNodes()), kernels(inv), map[bool]string{true: "yes", false: "no"}[inv.GetKubeProxyPresent()],
				orDash(inv.GetCloudProvider()), c.GetGeneration(), labelString(c.GetLabels()))
			continue
		}
		row(w, c.GetName(), enumName(c.GetLiveness().String(), "LIVENESS_"), cordoned, orDash(inv.GetKubernetesVersion()),
			orDash(inv.GetCiliumImageVersion()), len(inv.GetNodes()), kernels(inv), labelString(c.GetLabels()))
	}
}

// kernels summarises the nodes' kernel versions, oldest first.
func kernels(inv *ebbflowv1.Inventory) string {
	seen := map[string]bool{}
	for _, n := range inv.GetNodes() {
		seen[n.GetKernelVersion()] = true
	}
	if len(seen) == 0 {
		return "-"
	}
	ks := slices.Sorted(maps.Keys(seen))
	if len(ks) > 3 {
		ks = append(ks[:3], fmt.Sprintf("+%d", len(seen)-3))
	}
	return strings.Join(ks, ",")
}

func (a *app) clusterRegister() *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "register NAME [--label k=v ...]",
		Short: "Register a cluster ahead of its agent (or replace its labels)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, _, err := parseLabelArgs(labels, false)
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: args[0], Labels: set}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg.GetCluster(), func(w io.Writer) {
				fmt.Fprintf(w, "cluster/%s registered (generation %d)\n", args[0], res.Msg.GetCluster().GetGeneration())
			})
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label key=value (repeatable, or comma-separated)")
	return cmd
}

func (a *app) clusterList() *cobra.Command {
	var selector string
	var stale bool
	cmd := &cobra.Command{
		Use:   "list [-l SELECTOR]",
		Short: "List clusters, optionally by label selector (env=prod,region in (eu,us))",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.get(cmd, "Cluster", nil, selector, stale)
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector")
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node (cheap for big fleets)")
	return cmd
}

func (a *app) clusterDescribe() *cobra.Command {
	return &cobra.Command{
		Use:               "describe NAME",
		Short:             "Show a cluster in detail: labels, inventory, nodes",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames("Cluster"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.describe(cmd, "Cluster", args[0])
		},
	}
}

func (a *app) clusterGet() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show one cluster with its inventory",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames("Cluster"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: args[0], Read: readOpts(stale)}))
			if err != nil {
				return err
			}
			c := res.Msg.GetCluster()
			return a.printMsg(c, func(w io.Writer) {
				clusterTable(w, []*ebbflowv1.Cluster{c})
				if nodes := c.GetInventory().GetNodes(); len(nodes) > 0 {
					fmt.Fprintln(w)
					header(w, "NODE", "READY", "KERNEL", "OS", "NIC DRIVER", "CLOUD")
					for _, n := range nodes {
						row(w, n.GetName(), n.GetReady(), orDash(n.GetKernelVersion()), orDash(n.GetOsImage()), orDash(n.GetNicDriver()), orDash(n.GetCloudProvider()))
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
}

func (a *app) clusterLabel() *cobra.Command {
	return &cobra.Command{
		Use:               "label NAME key=value ... [key- ...]",
		Short:             "Add, change (key=value) or remove (key-) labels",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: a.completeNames("Cluster"),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, remove, err := parseLabelArgs(args[1:], true)
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			c, err := a.labelCluster(ctx, args[0], set, remove)
			if err != nil {
				return err
			}
			return a.printMsg(c, func(w io.Writer) {
				fmt.Fprintf(w, "cluster/%s labels: %s\n", args[0], labelString(c.GetLabels()))
			})
		},
	}
}

// labelAttempts bounds labelCluster's rounds of read and write.
const labelAttempts = 5

// labelCluster sets and removes labels of cluster name: it reads the cluster, changes its labels
// and writes them with the generation it read, so a change someone made in between is never
// overwritten. Two answers are not final:
//   - ABORTED: another change came first; the labels are read again and the command's change
//     is made on top of it;
//   - UNKNOWN: the leader changed while the write committed, so it may or may not have been
//     applied; the labels are read again and, unless they already are what the command asked
//     for, written again with the new generation (a write the first one already made would
//     fail that generation, never apply twice).
func (a *app) labelCluster(ctx context.Context, name string, set map[string]string, remove []string) (*ebbflowv1.Cluster, error) {
	var last error
	for attempt := range labelAttempts {
		cur, err := a.clients.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: name}))
		if err != nil {
			return nil, err
		}
		c := cur.Msg.GetCluster()
		labels := maps.Clone(c.GetLabels())
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, set)
		for _, k := range remove {
			delete(labels, k)
		}
		if attempt > 0 && maps.Equal(labels, c.GetLabels()) {
			fmt.Fprintf(a.errOut, "fleetctl: cluster/%s already has the labels asked for (read again after: %v)\n", name, last)
			return c, nil
		}
		res, err := a.clients.clusters.SetClusterLabels(ctx, connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{
			Name: name, Labels: labels, ExpectedGeneration: c.GetGeneration(),
		}))
		if err == nil {
			return res.Msg.GetCluster(), nil
		}
		if code := connect.CodeOf(err); code != connect.CodeUnknown && code != connect.CodeAborted {
			return nil, err
		}
		last = err
		fmt.Fprintf(a.errOut, "fleetctl: cluster/%s: %v; reading it again\n", name, err)
	}
	return nil, fmt.Errorf("cluster/%s: labels not set after %d attempts: %w", name, labelAttempts, last)
}

func (a *app) clusterCordon() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:               "cordon NAME [--reason TEXT]",
		Short:             "Make rollouts skip the cluster (shown as skipped with the reason)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames("Cluster"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			if _, err := a.clients.clusters.CordonCluster(ctx, connect.NewRequest(&ebbflowv1.CordonClusterRequest{Name: args[0], Reason: reason})); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "cluster/%s cordoned\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown in plans and status)")
	return cmd
}

func (a *app) clusterUncordon() *cobra.Command {
	return &cobra.Command{
		Use:               "uncordon NAME",
		Short:             "Let rollouts include the cluster again",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames("Cluster"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			if _, err := a.clients.clusters.UncordonCluster(ctx, connect.NewRequest(&ebbflowv1.UncordonClusterRequest{Name: args[0]})); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "cluster/%s uncordoned\n", args[0])
			return nil
		},
	}
}

func (a *app) clusterDelete() *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Remove a cluster from the fleet",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames("Cluster"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			if _, err := a.clients.clusters.DeleteCluster(ctx, connect.NewRequest(&ebbflowv1.DeleteClusterRequest{Name: args[0]})); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "cluster/%s deleted\n", args[0])
			return nil
		},
	}
}

package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion: cobra completes commands and flags; these complete what only the controller
// knows (profile, cluster and rollout names) and the values of -o and --context.

// completeNames completes the first argument with the names of kind's objects.
func (a *app) completeNames(kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.namesFromServer(cmd, kind, prefix), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeResource completes get and describe: the resource, then its names.
func (a *app) completeResource(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		var out []cobra.Completion
		for _, r := range []string{"profiles", "clusters", "rollouts"} {
			if strings.HasPrefix(r, prefix) {
				out = append(out, r)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	kind, ok := resources[strings.ToLower(args[0])]
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.namesFromServer(cmd, kind, prefix), cobra.ShellCompDirectiveNoFileComp
}

// namesFromServer lists kind's names starting with prefix; nothing when the controller does not
// answer within a few seconds (completion must not hang the shell).
func (a *app) namesFromServer(cmd *cobra.Command, kind, prefix string) []cobra.Completion {
	// The flags of the command being completed are parsed only now: set up the clients again.
	if err := a.setup(cmd); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var names []string
	switch kind {
	case kindProfile:
		res, err := a.listProfiles(ctx, true)
		if err != nil {
			return nil
		}
		for _, p := range res.GetProfiles() {
			names = append(names, p.GetName())
		}
	case "Cluster":
		res, err := a.listClusters(ctx, "", true)
		if err != nil {
			return nil
		}
		for _, c := range res.GetClusters() {
			names = append(names, c.GetName())
		}
	case kindRollout:
		res, err := a.listRollouts(ctx, true)
		if err != nil {
			return nil
		}
		for _, r := range res.GetRollouts() {
			names = append(names, r.GetId())
		}
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// completeOutput completes -o's values.
func completeOutput(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return outputFormats, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeContexts completes --context and the config commands' NAME from the config file.
func (a *app) completeContexts(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := loadConfig(a.configFile())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, c := range cfg.Contexts {
		out = append(out, c.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

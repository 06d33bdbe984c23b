package main

import (
	"fmt"
	"io"
	"strconv"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

func (a *app) profileCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Aliases: []string{"profiles"}, Short: "Tuning profiles: apply, get, list, diff, validate, delete"}
	cmd.AddCommand(a.profileApply(), a.profileGet(), a.profileDescribe(), a.profileList(), a.profileHistory(), a.profileDiff(), a.profileValidate(), a.profileDelete())
	return cmd
}

func (a *app) printWarnings(ws []*ebbflowv1.ValidationIssue) {
	for _, w := range ws {
		fmt.Fprintf(a.errOut, "warning: %s: %s (%s)\n", w.GetField(), w.GetMessage(), w.GetRule())
	}
}

func (a *app) profileApply() *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...] [-R]",
		Short: "Create profiles, or store a new revision of those that changed (as fleetctl apply)",
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
	ff.add(cmd, "profile files")
	a.addDryRun(cmd)
	return cmd
}

func (a *app) profileGet() *cobra.Command {
	var rev uint64
	var stale bool
	cmd := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a profile (the latest revision unless --revision); -o yaml prints an applyable file",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindProfile),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{
				Name: args[0], Revision: rev, Read: readOpts(stale),
			}))
			if err != nil {
				return err
			}
			return a.printProfile(res.Msg.GetProfile())
		},
	}
	cmd.Flags().Uint64Var(&rev, "revision", 0, "revision to show (default latest)")
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
}

func (a *app) profileDescribe() *cobra.Command {
	return &cobra.Command{
		Use:               "describe NAME",
		Short:             "Show a profile in detail, with its revisions",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindProfile),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.describe(cmd, kindProfile, args[0])
		},
	}
}

func chartOf(s *ebbflowv1.ProfileSpec) string {
	c := s.GetChart()
	n := c.GetName()
	if n == "" {
		n = "cilium"
	}
	if c.GetVersion() != "" {
		return n + " " + c.GetVersion()
	}
	return n
}

func readOpts(stale bool) *ebbflowv1.ReadOptions {
	if stale {
		return &ebbflowv1.ReadOptions{Consistency: ebbflowv1.Consistency_CONSISTENCY_STALE}
	}
	return nil
}

func (a *app) profileList() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List profiles (latest revision of each)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.get(cmd, kindProfile, nil, "", stale)
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
}

func (a *app) profileHistory() *cobra.Command {
	return &cobra.Command{
		Use:               "history NAME",
		Short:             "List every stored revision of a profile",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindProfile),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.profiles.ListProfileRevisions(ctx, connect.NewRequest(&ebbflowv1.ListProfileRevisionsRequest{Name: args[0]}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) {
				header(w, "REVISION", "UPDATED", "BY", "CHART")
				for _, p := range res.Msg.GetRevisions() {
					row(w, p.GetRevision(), age(p.GetUpdateTime()), orDash(p.GetUpdatedBy()), chartOf(p.GetSpec()))
				}
			})
		},
	}
}

func (a *app) profileDiff() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "diff NAME [FROM [TO]]",
		Short:             "Show what changed between two revisions (default: the previous and the latest); fleetctl diff -f compares a file",
		Args:              cobra.RangeArgs(1, 3),
		ValidArgsFunction: a.completeNames(kindProfile),
		RunE: func(cmd *cobra.Command, args []string) error {
			var revs [2]uint64
			for i, s := range args[1:] {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil || n == 0 {
					return usageErr("revision %q: want a positive number", s)
				}
				revs[i] = n
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			get := func(rev uint64) (*ebbflowv1.Profile, error) {
				res, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: args[0], Revision: rev}))
				if err != nil {
					return nil, err
				}
				return res.Msg.GetProfile(), nil
			}
			to, err := get(revs[1])
			if err != nil {
				return err
			}
			if revs[0] == 0 {
				if to.GetRevision() < 2 {
					return usageErr("profile %s has one revision: nothing to diff", args[0])
				}
				revs[0] = to.GetRevision() - 1
			}
			from, err := get(revs[0])
			if err != nil {
				return err
			}
			lines := profile.Diff(from, to)
			fmt.Fprintf(a.out, "--- %s revision %d\n+++ %s revision %d\n", args[0], from.GetRevision(), args[0], to.GetRevision())
			if len(lines) == 0 {
				fmt.Fprintln(a.out, "(no differences)")
			}
			for _, l := range lines {
				fmt.Fprintln(a.out, l.String())
			}
			return nil
		},
	}
	return cmd
}

func (a *app) profileValidate() *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|- [-R]",
		Short: "Validate profile files with the controller's rules without storing them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.readManifests(ff.files, ff.recursive)
			if err != nil {
				return err
			}
			invalid := 0
			for _, m := range ms {
				if m.kind != kindProfile {
					return &exitErr{code: exitUsage, err: fmt.Errorf("%s: %s is a %s; profile validate reads profiles (rollout plan -f checks a rollout)", m.pos, m.ref(), m.kind)}
				}
				ok, err := a.validateProfile(cmd, m.name, m.profile)
				if err != nil {
					return err
				}
				if !ok {
					invalid++
				}
			}
			if invalid > 0 {
				return &exitErr{code: exitUsage, err: fmt.Errorf("%d of %d profiles are not valid", invalid, len(ms))}
			}
			return nil
		},
	}
	ff.add(cmd, "profile files")
	return cmd
}

func (a *app) validateProfile(cmd *cobra.Command, name string, spec *ebbflowv1.ProfileSpec) (bool, error) {
	ctx, cancel := a.call(cmd)
	defer cancel()
	res, err := a.clients.profiles.ValidateProfile(ctx, connect.NewRequest(&ebbflowv1.ValidateProfileRequest{Name: name, Spec: spec}))
	if err != nil {
		return false, err
	}
	m := res.Msg
	if len(m.GetErrors())+len(m.GetWarnings())+len(m.GetUnvalidatedKeys()) > 0 || !a.isTable() {
		if err := a.printMsg(m, func(w io.Writer) {
			header(w, "SEVERITY", "FIELD", "RULE", "MESSAGE")
			for _, e := range m.GetErrors() {
				row(w, "error", e.GetField(), e.GetRule(), e.GetMessage())
			}
			for _, e := range m.GetWarnings() {
				row(w, "warning", e.GetField(), e.GetRule(), e.GetMessage())
			}
			for _, k := range m.GetUnvalidatedKeys() {
				row(w, "note", k, "unvalidated", "passed through to Helm without validation")
			}
		}); err != nil {
			return false, err
		}
	}
	if !m.GetValid() {
		fmt.Fprintf(a.errOut, "profile %s is not valid: %d error(s)\n", name, len(m.GetErrors()))
		return false, nil
	}
	if a.isTable() {
		fmt.Fprintf(a.out, "profile %s is valid\n", name)
	}
	return true, nil
}

func (a *app) profileDelete() *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete a profile and its revisions (refused while an active rollout pins it)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(kindProfile),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.profiles.DeleteProfile(ctx, connect.NewRequest(&ebbflowv1.DeleteProfileRequest{Name: args[0]}))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "profile/%s deleted (was revision %d)\n", args[0], res.Msg.GetRevision())
			return nil
		},
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

func (a *app) profileCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Aliases: []string{"profiles"}, Short: "Tuning profiles: apply, get, list, diff, validate, delete"}
	cmd.AddCommand(a.profileApply(), a.profileGet(), a.profileList(), a.profileHistory(), a.profileDiff(), a.profileValidate(), a.profileDelete())
	return cmd
}

// readFile reads -f FILE, or standard input for "-".
func (a *app) readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, usageErr("-f FILE is required")
	}
	if path == "-" {
		return io.ReadAll(io.LimitReader(a.in, 4<<20))
	}
	return os.ReadFile(path)
}

func (a *app) decodeProfile(path string) (string, *ebbflowv1.ProfileSpec, error) {
	b, err := a.readFile(path)
	if err != nil {
		return "", nil, err
	}
	name, spec, err := profile.DecodeYAML(b)
	if err != nil {
		return "", nil, &exitErr{code: exitUsage, err: fmt.Errorf("%s: %w", path, err)}
	}
	return name, spec, nil
}

func (a *app) printWarnings(ws []*ebbflowv1.ValidationIssue) {
	for _, w := range ws {
		fmt.Fprintf(a.errOut, "warning: %s: %s (%s)\n", w.GetField(), w.GetMessage(), w.GetRule())
	}
}

func (a *app) profileApply() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create the profile, or store a new revision of it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, spec, err := a.decodeProfile(file)
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			var p *ebbflowv1.Profile
			var warnings []*ebbflowv1.ValidationIssue
			cur, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: name}))
			switch {
			case connect.CodeOf(err) == connect.CodeNotFound:
				res, err := a.clients.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: name, Spec: spec}))
				if err != nil {
					return err
				}
				p, warnings = res.Msg.GetProfile(), res.Msg.GetWarnings()
			case err != nil:
				return err
			default:
				res, err := a.clients.profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{
					Name: name, Spec: spec, ExpectedRevision: cur.Msg.GetProfile().GetRevision(),
				}))
				if err != nil {
					return err
				}
				p, warnings = res.Msg.GetProfile(), res.Msg.GetWarnings()
			}
			a.printWarnings(warnings)
			return a.printMsg(p, func(w io.Writer) {
				fmt.Fprintf(w, "profile/%s revision %d applied\n", p.GetName(), p.GetRevision())
			})
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "profile YAML file (- for standard input)")
	return cmd
}

func (a *app) profileGet() *cobra.Command {
	var rev uint64
	var stale bool
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a profile (the latest revision unless --revision); -o yaml prints an applyable file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{
				Name: args[0], Revision: rev, Read: readOpts(stale),
			}))
			if err != nil {
				return err
			}
			p := res.Msg.GetProfile()
			if a.output == "yaml" {
				b, err := profile.EncodeYAML(p)
				if err != nil {
					return err
				}
				_, err = a.out.Write(b)
				return err
			}
			return a.printMsg(p, func(w io.Writer) {
				row(w, "NAME", "REVISION", "CHART", "UPDATED", "BY", "DESCRIPTION")
				row(w, p.GetName(), p.GetRevision(), chartOf(p.GetSpec()), age(p.GetUpdateTime()), orDash(p.GetUpdatedBy()), orDash(p.GetSpec().GetDescription()))
			})
		},
	}
	cmd.Flags().Uint64Var(&rev, "revision", 0, "revision to show (default latest)")
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
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
			ctx, cancel := a.call(cmd)
			defer cancel()
			all := &ebbflowv1.ListProfilesResponse{}
			tok := ""
			for {
				res, err := a.clients.profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{
					Read: readOpts(stale), PageSize: 500, PageToken: tok,
				}))
				if err != nil {
					return err
				}
				all.Profiles = append(all.Profiles, res.Msg.GetProfiles()...)
				if tok = res.Msg.GetNextPageToken(); tok == "" {
					break
				}
			}
			return a.printMsg(all, func(w io.Writer) {
				row(w, "NAME", "REVISION", "CHART", "UPDATED", "DESCRIPTION")
				for _, p := range all.GetProfiles() {
					row(w, p.GetName(), p.GetRevision(), chartOf(p.GetSpec()), age(p.GetUpdateTime()), orDash(p.GetSpec().GetDescription()))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read from any controller node")
	return cmd
}

func (a *app) profileHistory() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List every stored revision of a profile",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.profiles.ListProfileRevisions(ctx, connect.NewRequest(&ebbflowv1.ListProfileRevisionsRequest{Name: args[0]}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) {
				row(w, "REVISION", "UPDATED", "BY", "CHART")
				for _, p := range res.Msg.GetRevisions() {
					row(w, p.GetRevision(), age(p.GetUpdateTime()), orDash(p.GetUpdatedBy()), chartOf(p.GetSpec()))
				}
			})
		},
	}
}

func (a *app) profileDiff() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff NAME [FROM [TO]]",
		Short: "Show what changed between two revisions (default: the previous and the latest)",
		Args:  cobra.RangeArgs(1, 3),
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
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Validate a profile file with the controller's rules without storing it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, spec, err := a.decodeProfile(file)
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.profiles.ValidateProfile(ctx, connect.NewRequest(&ebbflowv1.ValidateProfileRequest{Name: name, Spec: spec}))
			if err != nil {
				return err
			}
			m := res.Msg
			if err := a.printMsg(m, func(w io.Writer) {
				row(w, "SEVERITY", "FIELD", "RULE", "MESSAGE")
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
				return err
			}
			if !m.GetValid() {
				return &exitErr{code: exitUsage, err: fmt.Errorf("profile %s is not valid: %d error(s)", name, len(m.GetErrors()))}
			}
			if a.output == "table" {
				fmt.Fprintf(a.out, "profile %s is valid\n", name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "profile YAML file (- for standard input)")
	return cmd
}

func (a *app) profileDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a profile and its revisions (refused while an active rollout pins it)",
		Args:  cobra.ExactArgs(1),
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

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// fileFlags are -f (repeatable: files, directories, - for standard input) and -R.
type fileFlags struct {
	files     []string
	recursive bool
}

// The values of apply's --dry-run, as kubectl's.
const (
	dryRunNone   = "none"
	dryRunClient = "client"
	dryRunServer = "server"
)

func (f *fileFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringSliceVarP(&f.files, "filename", "f", nil, what+": a file, a directory of .yaml/.yml/.json files, or - for standard input (repeatable)")
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "read the directories given with -f recursively")
}

const applyLong = `Apply profiles and rollouts from files, like kubectl apply: -f takes a file, a directory
(-R for its subdirectories) or - for standard input, and may be repeated; a file may hold any
number of documents separated by "---", profiles and rollouts mixed (by kind). Every document is
read and checked first: if one is not valid, nothing is sent and each error names its file,
document and line.

A profile whose spec equals its latest revision is left alone ("profile/eks unchanged", no new
revision); otherwise a new revision is stored. A rollout is created if its id is new and left
alone if the same spec exists already; a rollout cannot be changed once created (exit 4).
Profiles are applied before rollouts, so a rollout may name a profile of the same files.`

// addAllowEmpty adds --allow-empty, for the commands that create rollouts.
func (a *app) addAllowEmpty(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&a.allowEmpty, "allow-empty", false, "create a rollout even when its plan changes nothing (every cluster skipped or every phase held); refused otherwise")
}

// addDryRun adds apply's --dry-run flag.
func (a *app) addDryRun(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.dryRun, "dry-run", dryRunNone, `"client": read and check the files only; "server": also have the controller validate each object (a profile with its rules, a rollout by planning it) without storing anything`)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = dryRunClient
	_ = cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{dryRunNone, dryRunClient, dryRunServer}, cobra.ShellCompDirectiveNoFileComp))
}

func (a *app) applyCmd() *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:     "apply -f FILE|DIR|- [-f ...] [-R]",
		Short:   "Create or update the profiles and rollouts of files (idempotent)",
		Long:    applyLong,
		Example: "  fleetctl apply -f deploy/profiles/\n  fleetctl apply -f eks.yaml -f tune-eu.yaml\n  cat all.yaml | fleetctl apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.readManifests(ff.files, ff.recursive)
			if err != nil {
				return err
			}
			return a.applyAll(cmd, ms, false)
		},
	}
	ff.add(cmd, "profile and rollout files")
	a.addDryRun(cmd)
	a.addAllowEmpty(cmd)
	return cmd
}

// applyResult is what applying one document did.
type applyResult struct {
	m       *manifest
	action  string        // "created", "configured", "unchanged"
	obj     proto.Message // the stored profile or rollout
	profile *ebbflowv1.Profile
}

// applyAll applies the documents, profiles first, and carries on past a failed one; the exit
// code is the first failure's.
func (a *app) applyAll(cmd *cobra.Command, ms []*manifest, createOnly bool) error {
	switch a.dryRun {
	case "", dryRunNone, dryRunClient, dryRunServer:
	default:
		return usageErr("--dry-run: want none, client or server, got %q", a.dryRun)
	}
	ordered := slices.Clone(ms)
	slices.SortStableFunc(ordered, func(x, y *manifest) int {
		return kindOrder(x.kind) - kindOrder(y.kind)
	})
	var results []applyResult
	var first error
	failed := 0
	for _, m := range ordered {
		r, err := a.applyOne(cmd, m, createOnly)
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
			fmt.Fprintf(a.errOut, "error: %s (%s): %s\n", m.ref(), m.pos.source, describe(err))
			continue
		}
		results = append(results, r)
	}
	if err := a.printApplied(results); err != nil {
		return err
	}
	if first != nil {
		if failed == 1 && len(ordered) == 1 {
			return first
		}
		return &exitErr{code: codeOf(first), err: fmt.Errorf("%d of %d documents failed", failed, len(ordered))}
	}
	return nil
}

func kindOrder(k string) int {
	if k == kindProfile {
		return 0
	}
	return 1
}

func (a *app) applyOne(cmd *cobra.Command, m *manifest, createOnly bool) (applyResult, error) {
	ctx, cancel := a.call(cmd)
	defer cancel()
	switch m.kind {
	case kindProfile:
		return a.applyProfile(ctx, m)
	case kindRollout:
		return a.applyRollout(ctx, m, createOnly)
	}
	return applyResult{}, fmt.Errorf("kind %s", m.kind)
}

// applyProfile creates the profile, or updates it conditional on the revision it read: the
// controller leaves it alone when the spec equals the latest revision's ("unchanged") and stores
// a new revision otherwise.
func (a *app) applyProfile(ctx context.Context, m *manifest) (applyResult, error) {
	r := applyResult{m: m}
	cur, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: m.name}))
	if a.dryRunning() {
		return a.dryRunProfile(ctx, m, cur, err)
	}
	switch {
	case connect.CodeOf(err) == connect.CodeNotFound:
		res, err := a.clients.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: m.name, Spec: m.profile}))
		if err != nil {
			return r, err
		}
		a.printWarnings(res.Msg.GetWarnings())
		r.action, r.profile = "created", res.Msg.GetProfile()
	case err != nil:
		return r, err
	default:
		res, err := a.clients.profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{
			Name: m.name, Spec: m.profile, ExpectedRevision: cur.Msg.GetProfile().GetRevision(),
		}))
		if err != nil {
			return r, err
		}
		a.printWarnings(res.Msg.GetWarnings())
		r.action, r.profile = "configured", res.Msg.GetProfile()
		if res.Msg.GetUnchanged() {
			r.action = "unchanged"
		}
	}
	r.obj = r.profile
	return r, nil
}

// applyRollout creates the rollout; one that exists is left alone when its spec is the file's
// (unless createOnly, as rollout create), and refused otherwise: a rollout is immutable.
func (a *app) applyRollout(ctx context.Context, m *manifest, createOnly bool) (applyResult, error) {
	r := applyResult{m: m}
	if m.name == "" && !createOnly {
		return r, &exitErr{code: exitUsage, err: fmt.Errorf("%s: metadata.name: required to apply a rollout (rollout create has the controller name it)", m.pos)}
	}
	if !createOnly {
		cur, err := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: m.name}))
		switch {
		case connect.CodeOf(err) == connect.CodeNotFound:
		case err != nil:
			return r, err
		case proto.Equal(cur.Msg.GetRollout().GetSpec(), m.rollout):
			r.action, r.obj = "unchanged", cur.Msg.GetRollout()
			return r, nil
		default:
			return r, &exitErr{code: exitConflict, err: fmt.Errorf(
				"rollout %s exists with another spec, and a rollout cannot be changed: abort it and create one with a new name (fleetctl diff -f shows the difference)", m.name)}
		}
	}
	if a.dryRunning() {
		r.action, r.obj = "created", &ebbflowv1.Rollout{Id: m.name, Spec: m.rollout}
		if a.dryRun == dryRunServer {
			res, err := a.clients.rollouts.PlanRollout(ctx, connect.NewRequest(&ebbflowv1.PlanRolloutRequest{Spec: m.rollout}))
			if err != nil {
				return r, err
			}
			a.printWarnings(res.Msg.GetWarnings())
		}
		return r, nil
	}
	res, err := a.clients.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: m.name, Spec: m.rollout, AllowEmpty: a.allowEmpty}))
	if err != nil {
		return r, err
	}
	r.action, r.obj = "created", res.Msg.GetRollout()
	if m.name == "" {
		m.name = res.Msg.GetRollout().GetId()
	}
	return r, nil
}

func (a *app) dryRunning() bool { return a.dryRun == dryRunClient || a.dryRun == dryRunServer }

// dryRunProfile says what apply would do to a profile without doing it; with --dry-run=server
// the controller validates the spec as CreateProfile would.
func (a *app) dryRunProfile(ctx context.Context, m *manifest, cur *connect.Response[ebbflowv1.GetProfileResponse], getErr error) (applyResult, error) {
	r := applyResult{m: m, profile: &ebbflowv1.Profile{Name: m.name, Spec: m.profile}}
	r.obj = r.profile
	switch {
	case connect.CodeOf(getErr) == connect.CodeNotFound:
		r.action, r.profile.Revision = "created", 1
	case getErr != nil:
		return r, getErr
	case proto.Equal(cur.Msg.GetProfile().GetSpec(), m.profile):
		r.action, r.profile = "unchanged", cur.Msg.GetProfile()
		r.obj = r.profile
		return r, nil
	default:
		r.action, r.profile.Revision = "configured", cur.Msg.GetProfile().GetRevision()+1
	}
	if a.dryRun == dryRunServer {
		res, err := a.clients.profiles.ValidateProfile(ctx, connect.NewRequest(&ebbflowv1.ValidateProfileRequest{Name: m.name, Spec: m.profile}))
		if err != nil {
			return r, err
		}
		a.printWarnings(res.Msg.GetWarnings())
		if !res.Msg.GetValid() {
			var msgs []string
			for _, e := range res.Msg.GetErrors() {
				msgs = append(msgs, e.GetField()+": "+e.GetMessage())
			}
			return r, &exitErr{code: exitUsage, err: fmt.Errorf("not valid: %s", strings.Join(msgs, "; "))}
		}
	}
	return r, nil
}

// printApplied prints one line per document, as kubectl does (profile/eks revision 2
// configured, profile/eks unchanged, rollout/tune-eu created), the names
// with -o name, or the stored objects with -o json|yaml.
func (a *app) printApplied(results []applyResult) error {
	switch a.outputKind() {
	case "name":
		for _, r := range results {
			fmt.Fprintln(a.out, r.m.ref())
		}
		return nil
	case "json", "yaml", "jsonpath":
		for i, r := range results {
			if i > 0 && a.outputKind() == "yaml" {
				fmt.Fprintln(a.out, "---")
			}
			if err := a.printMsg(r.obj, nil); err != nil {
				return err
			}
		}
		return nil
	}
	suffix := ""
	if a.dryRunning() {
		suffix = " (" + a.dryRun + " dry run)"
	}
	for _, r := range results {
		switch {
		case r.profile != nil && r.action != "unchanged":
			fmt.Fprintf(a.out, "%s revision %d %s%s\n", r.m.ref(), r.profile.GetRevision(), r.action, suffix)
		default:
			fmt.Fprintf(a.out, "%s %s%s\n", r.m.ref(), r.action, suffix)
		}
	}
	return nil
}

func (a *app) diffCmd() *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "diff -f FILE|DIR|- [-R]",
		Short: "Show what apply -f would change on the controller, as a unified diff",
		Long: `Show what apply -f would change, as a unified diff of each object's YAML: the controller's
latest revision against the file's. Exit 0 when nothing would change, 1 when something would (as
kubectl diff and diff(1) do), and 2 or more for an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := a.readManifests(ff.files, ff.recursive)
			if err != nil {
				return err
			}
			changed := false
			for _, m := range ms {
				live, desired, liveLabel, err := a.diffSides(cmd, m)
				if err != nil {
					if codeOf(err) == exitError {
						return &exitErr{code: exitUsage, err: err} // 1 means "differs"
					}
					return err
				}
				d := unifiedDiff(liveLabel, m.ref()+" ("+m.pos.source+")", live, desired)
				if d != "" {
					changed = true
					fmt.Fprint(a.out, d)
				}
			}
			if changed {
				return &exitErr{code: exitError, err: errDiffers}
			}
			return nil
		},
	}
	ff.add(cmd, "profile and rollout files")
	return cmd
}

// errDiffers is diff's exit 1: not a failure, so nothing is printed for it.
var errDiffers = errors.New("differences found")

// diffSides renders the stored object and the file's in the same YAML form.
func (a *app) diffSides(cmd *cobra.Command, m *manifest) (live, desired, liveLabel string, err error) {
	ctx, cancel := a.call(cmd)
	defer cancel()
	liveLabel = m.ref() + " (not on the controller)"
	switch m.kind {
	case kindProfile:
		d, err := profile.EncodeYAML(&ebbflowv1.Profile{Name: m.name, Spec: m.profile})
		if err != nil {
			return "", "", "", err
		}
		desired = string(d)
		res, err := a.clients.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: m.name}))
		if connect.CodeOf(err) == connect.CodeNotFound {
			return "", desired, liveLabel, nil
		}
		if err != nil {
			return "", "", "", err
		}
		p := res.Msg.GetProfile()
		l, err := profile.EncodeYAML(&ebbflowv1.Profile{Name: p.GetName(), Spec: p.GetSpec()})
		if err != nil {
			return "", "", "", err
		}
		return string(l), desired, fmt.Sprintf("%s (controller, revision %d)", m.ref(), p.GetRevision()), nil
	default:
		d, err := encodeRolloutYAML(m.name, m.rollout)
		if err != nil {
			return "", "", "", err
		}
		desired = string(d)
		res, err := a.clients.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: m.name}))
		if connect.CodeOf(err) == connect.CodeNotFound {
			return "", desired, liveLabel, nil
		}
		if err != nil {
			return "", "", "", err
		}
		l, err := encodeRolloutYAML(m.name, res.Msg.GetRollout().GetSpec())
		if err != nil {
			return "", "", "", err
		}
		return string(l), desired, m.ref() + " (controller)", nil
	}
}

// unifiedDiff is a unified diff of two texts with three lines of context; "" when equal.
func unifiedDiff(fromLabel, toLabel, from, to string) string {
	if from == to {
		return ""
	}
	a, b := splitLines(from), splitLines(to)
	// Longest common subsequence, from the end.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int // line index in a (for ' ' and '-'), in b for '+'
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i, j})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', b[j], i, j})
			j++
		}
	}
	const context = 3
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", fromLabel, toLabel)
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// A hunk: from context lines before this change to context lines after the last change
		// that is at most 2*context lines from the previous one.
		start := max(0, k-context)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*context {
				end = min(len(ops), end+context)
				break
			}
			end = run
		}
		aStart, bStart, aLen, bLen := ops[start].ai, ops[start].bi, 0, 0
		for _, o := range ops[start:end] {
			switch o.kind {
			case ' ':
				aLen, bLen = aLen+1, bLen+1
			case '-':
				aLen++
			case '+':
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, o := range ops[start:end] {
			sb.WriteByte(o.kind)
			sb.WriteString(o.text)
			sb.WriteByte('\n')
		}
		k = end
	}
	return sb.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

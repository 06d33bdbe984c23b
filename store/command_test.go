package store

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// fsmHarness drives an FSM directly with log entries, without Raft.
type fsmHarness struct {
	t       testing.TB
	f       *fsm
	index   uint64
	changes []Change
}

func newFSMHarness(t testing.TB) *fsmHarness {
	t.Helper()
	h := &fsmHarness{t: t}
	f, err := openFSM(filepath.Join(t.TempDir(), "fsm.db"), testLogger(), false, func(c []Change) { h.changes = append(h.changes, c...) }, func([]string, bool) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.close() })
	h.f = f
	return h
}

func (h *fsmHarness) entry(cmd *storev1.Command) *raft.Log {
	h.t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: b}
}

// apply applies one command as the next log entry and returns the FSM's response.
func (h *fsmHarness) apply(cmd *storev1.Command) any {
	return h.f.Apply(h.entry(cmd))
}

func (h *fsmHarness) view(fn func(tx *Tx) error) {
	h.t.Helper()
	if err := h.f.view(func(tx *bbolt.Tx) error { return fn(&Tx{tx: tx}) }); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fsmHarness) dump() []string {
	var out []string
	h.view(func(tx *Tx) error {
		return tx.tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out = append(out, fmt.Sprintf("%s/%q=%x", name, k, v))
				return nil
			})
		})
	})
	return out
}

// TestCommands applies every command, in sequence, to two FSMs: each step's result is
// checked, and both replicas must end byte for byte identical.
func TestCommands(t *testing.T) {
	type step struct {
		name    string
		cmd     *storev1.Command
		wantErr error
		check   func(t *testing.T, m proto.Message)
	}
	var steps []step
	// when is the time of the named step's command: step i runs at at(i).
	when := func(name string) *timestamppb.Timestamp {
		for i, st := range steps {
			if st.name == name {
				return at(i)
			}
		}
		panic("no step " + name)
	}
	profile := func(rev uint64, desc string) func(t *testing.T, m proto.Message) {
		return func(t *testing.T, m proto.Message) {
			p := m.(*ebbflowv1.Profile)
			if p.GetRevision() != rev || p.GetSpec().GetDescription() != desc || p.GetName() != "p1" {
				t.Fatalf("got %v, want revision %d %q", p, rev, desc)
			}
			if !proto.Equal(p.GetCreateTime(), when("create profile")) {
				t.Fatalf("create_time %v, want %v", p.GetCreateTime(), when("create profile"))
			}
		}
	}
	clusterGen := func(gen uint64, labels map[string]string) func(t *testing.T, m proto.Message) {
		return func(t *testing.T, m proto.Message) {
			c := m.(*ebbflowv1.Cluster)
			if c.GetGeneration() != gen || !maps.Equal(c.GetLabels(), labels) {
				t.Fatalf("got %v, want generation %d labels %v", c, gen, labels)
			}
		}
	}
	rolloutGen := func(gen uint64) func(t *testing.T, m proto.Message) {
		return func(t *testing.T, m proto.Message) {
			r := m.(*ebbflowv1.Rollout)
			if r.GetGeneration() != gen || !proto.Equal(r.GetCreateTime(), when("create rollout")) || r.GetCreatedBy() != "engine" {
				t.Fatalf("got %v, want generation %d created at %v by engine", r, gen, when("create rollout"))
			}
		}
	}
	isNil := func(t *testing.T, m proto.Message) {
		if m != nil {
			t.Fatalf("got %v, want nil", m)
		}
	}
	inventory := &ebbflowv1.Inventory{KubernetesVersion: "v1.33.1", KubeProxyPresent: true}
	running := ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING

	steps = []step{
		{"create profile", createProfile("p1", "v1"), nil, func(t *testing.T, m proto.Message) {
			profile(1, "v1")(t, m)
			if p := m.(*ebbflowv1.Profile); p.GetUpdatedBy() != "alice" || !proto.Equal(p.GetUpdateTime(), when("create profile")) {
				t.Fatalf("got %v", p)
			}
		}},
		{"create existing profile", createProfile("p1", "dup"), ErrAlreadyExists, nil},
		{"create profile with empty name", createProfile("", "x"), ErrInvalid, nil},
		{"create profile with NUL in name", createProfile("a\x00b", "x"), ErrInvalid, nil},
		{"create profile with a name too long", createProfile(strings.Repeat("a", maxNameLen+1), "x"), ErrInvalid, nil},
		{"update profile", updateProfile("p1", "v2", 1), nil, func(t *testing.T, m proto.Message) {
			profile(2, "v2")(t, m)
			if p := m.(*ebbflowv1.Profile); p.GetUpdatedBy() != "bob" || !proto.Equal(p.GetUpdateTime(), when("update profile")) {
				t.Fatalf("got %v", p)
			}
		}},
		{"update profile at a stale revision", updateProfile("p1", "v3", 1), ErrConflict, nil},
		{"update profile at any revision", updateProfile("p1", "v3", 0), nil, profile(3, "v3")},
		{"update missing profile", updateProfile("nope", "v1", 0), ErrNotFound, nil},
		{"register cluster", registerCluster("c1", map[string]string{"env": "prod"}, false), nil, func(t *testing.T, m proto.Message) {
			clusterGen(1, map[string]string{"env": "prod"})(t, m)
			if c := m.(*ebbflowv1.Cluster); !proto.Equal(c.GetRegisterTime(), when("register cluster")) {
				t.Fatalf("register_time %v", c.GetRegisterTime())
			}
		}},
		{"register cluster again, unchanged", registerCluster("c1", map[string]string{"env": "prod"}, false), nil, clusterGen(1, map[string]string{"env": "prod"})},
		{"register cluster merging labels", registerCluster("c1", map[string]string{"region": "eu"}, true), nil, clusterGen(2, map[string]string{"env": "prod", "region": "eu"})},
		{"register cluster with inventory", &storev1.Command{Body: &storev1.Command_RegisterCluster{RegisterCluster: &storev1.RegisterCluster{
			Name: "c1", Labels: map[string]string{"env": "prod", "region": "eu"}, Inventory: inventory, AgentVersion: "v0.1.0",
		}}}, nil, func(t *testing.T, m proto.Message) {
			clusterGen(3, map[string]string{"env": "prod", "region": "eu"})(t, m)
			if c := m.(*ebbflowv1.Cluster); !proto.Equal(c.GetInventory(), inventory) || c.GetAgentVersion() != "v0.1.0" || !proto.Equal(c.GetRegisterTime(), when("register cluster")) {
				t.Fatalf("got %v", c)
			}
		}},
		{"set labels at a stale generation", &storev1.Command{Body: &storev1.Command_SetClusterLabels{SetClusterLabels: &storev1.SetClusterLabels{
			Name: "c1", Labels: map[string]string{"env": "dev"}, ExpectedGeneration: 2,
		}}}, ErrConflict, nil},
		{"set labels", &storev1.Command{Body: &storev1.Command_SetClusterLabels{SetClusterLabels: &storev1.SetClusterLabels{
			Name: "c1", Labels: map[string]string{"env": "dev"}, ExpectedGeneration: 3,
		}}}, nil, clusterGen(4, map[string]string{"env": "dev"})},
		{"set the same labels", &storev1.Command{Body: &storev1.Command_SetClusterLabels{SetClusterLabels: &storev1.SetClusterLabels{
			Name: "c1", Labels: map[string]string{"env": "dev"},
		}}}, nil, clusterGen(4, map[string]string{"env": "dev"})},
		{"set labels of a missing cluster", &storev1.Command{Body: &storev1.Command_SetClusterLabels{SetClusterLabels: &storev1.SetClusterLabels{Name: "nope"}}}, ErrNotFound, nil},
		{"cordon", &storev1.Command{Body: &storev1.Command_SetClusterCordon{SetClusterCordon: &storev1.SetClusterCordon{
			Name: "c1", Cordoned: true, Reason: "maintenance",
		}}}, nil, func(t *testing.T, m proto.Message) {
			if c := m.(*ebbflowv1.Cluster); !c.GetCordoned() || c.GetCordonReason() != "maintenance" || c.GetGeneration() != 5 {
				t.Fatalf("got %v", c)
			}
		}},
		{"uncordon", &storev1.Command{Body: &storev1.Command_SetClusterCordon{SetClusterCordon: &storev1.SetClusterCordon{Name: "c1"}}}, nil, func(t *testing.T, m proto.Message) {
			if c := m.(*ebbflowv1.Cluster); c.GetCordoned() || c.GetCordonReason() != "" || c.GetGeneration() != 6 {
				t.Fatalf("got %v", c)
			}
		}},
		{"cordon a missing cluster", &storev1.Command{Body: &storev1.Command_SetClusterCordon{SetClusterCordon: &storev1.SetClusterCordon{Name: "nope"}}}, ErrNotFound, nil},
		{"update inventory", &storev1.Command{Body: &storev1.Command_UpdateInventory{UpdateInventory: &storev1.UpdateInventory{
			Name: "c1", Inventory: &ebbflowv1.Inventory{KubernetesVersion: "v1.34.0"},
		}}}, nil, func(t *testing.T, m proto.Message) {
			if c := m.(*ebbflowv1.Cluster); c.GetInventory().GetKubernetesVersion() != "v1.34.0" || c.GetGeneration() != 7 {
				t.Fatalf("got %v", c)
			}
		}},
		{"update inventory of a missing cluster", &storev1.Command{Body: &storev1.Command_UpdateInventory{UpdateInventory: &storev1.UpdateInventory{Name: "nope"}}}, ErrNotFound, nil},
		{"create rollout", putRollout(rollout("r1", "p1", running), 0, event("create")), nil, rolloutGen(1)},
		{"create existing rollout", putRollout(rollout("r1", "p1", running), 0), ErrAlreadyExists, nil},
		{"put rollout at a stale generation", putRollout(rollout("r1", "p1", running), 7), ErrConflict, nil},
		{"put missing rollout", putRollout(rollout("r9", "p1", running), 1), ErrNotFound, nil},
		{"put rollout without a rollout", &storev1.Command{Body: &storev1.Command_PutRollout{PutRollout: &storev1.PutRollout{}}}, ErrInvalid, nil},
		{"advance rollout", putRollout(rollout("r1", "p1", running), 1, event("assign"), event("verdict")), nil, func(t *testing.T, m proto.Message) {
			rolloutGen(2)(t, m)
			if r := m.(*ebbflowv1.Rollout); !proto.Equal(r.GetUpdateTime(), when("advance rollout")) {
				t.Fatalf("update_time %v, want %v", r.GetUpdateTime(), when("advance rollout"))
			}
		}},
		{"append events", &storev1.Command{Body: &storev1.Command_AppendRolloutEvents{AppendRolloutEvents: &storev1.AppendRolloutEvents{
			RolloutId: "r1", Events: []*ebbflowv1.RolloutEvent{event("pause")},
		}}}, nil, isNil},
		{"append events to a missing rollout", &storev1.Command{Body: &storev1.Command_AppendRolloutEvents{AppendRolloutEvents: &storev1.AppendRolloutEvents{
			RolloutId: "r9", Events: []*ebbflowv1.RolloutEvent{event("pause")},
		}}}, ErrNotFound, nil},
		{"delete a profile an active rollout pins", deleteProfile("p1", 0), ErrInUse, nil},
		{"finish rollout", putRollout(rollout("r1", "p1", ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED), 2), nil, rolloutGen(3)},
		{"delete profile at a stale revision", deleteProfile("p1", 1), ErrConflict, nil},
		{"delete profile", deleteProfile("p1", 3), nil, isNil},
		{"delete missing profile", deleteProfile("p1", 0), ErrNotFound, nil},
		{"delete cluster", &storev1.Command{Body: &storev1.Command_DeleteCluster{DeleteCluster: &storev1.DeleteCluster{Name: "c1"}}}, nil, isNil},
		{"delete missing cluster", &storev1.Command{Body: &storev1.Command_DeleteCluster{DeleteCluster: &storev1.DeleteCluster{Name: "c1"}}}, ErrNotFound, nil},
		{"put node meta", putNodeMeta("n1", "10.0.0.1:8443"), nil, isNil},
		{"put node meta without a node", putNodeMeta("", "10.0.0.1:8443"), ErrInvalid, nil},
	}

	a, b := newFSMHarness(t), newFSMHarness(t)
	for i, st := range steps {
		st.cmd.Time = at(i)
		var res [2]*applyResult
		for j, h := range []*fsmHarness{a, b} {
			r, ok := h.apply(proto.Clone(st.cmd).(*storev1.Command)).(*applyResult)
			if !ok {
				t.Fatalf("step %d %s: result is not an *applyResult", i, st.name)
			}
			res[j] = r
		}
		t.Run(fmt.Sprintf("%02d %s", i, st.name), func(t *testing.T) {
			r := res[0]
			if !errors.Is(r.err, st.wantErr) || (st.wantErr == nil) != (r.err == nil) {
				t.Fatalf("error %v, want %v", r.err, st.wantErr)
			}
			if (r.err == nil) != (res[1].err == nil) || (r.msg == nil) != (res[1].msg == nil) || (r.msg != nil && !proto.Equal(r.msg, res[1].msg)) {
				t.Fatalf("replicas disagree: %v/%v vs %v/%v", r.msg, r.err, res[1].msg, res[1].err)
			}
			if st.wantErr != nil && r.msg != nil {
				t.Fatalf("error %v with a result %v", r.err, r.msg)
			}
			if st.check != nil {
				st.check(t, r.msg)
			}
		})
	}
	if err := sameDump(a.dump(), b.dump()); err != nil {
		t.Fatalf("replicas diverged: %v", err)
	}

	// The final state, read back.
	a.view(func(tx *Tx) error {
		if _, err := tx.Profile("p1", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted profile: %v", err)
		}
		if _, err := tx.Profile("p1", 2); !errors.Is(err, ErrNotFound) {
			t.Errorf("revision of a deleted profile: %v", err)
		}
		if _, err := tx.ProfileRevisions("p1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revisions of a deleted profile: %v", err)
		}
		if _, err := tx.Cluster("c1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted cluster: %v", err)
		}
		r, err := tx.Rollout("r1")
		if err != nil || r.GetGeneration() != 3 || r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
			t.Errorf("rollout: %v, %v", r, err)
		}
		evs, err := tx.RolloutEvents("r1")
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.GetKind())
			if e.GetTime() == nil {
				t.Errorf("event %v has no time", e)
			}
		}
		if err != nil || strings.Join(kinds, ",") != "create,assign,verdict,pause" {
			t.Errorf("events: %v, %v", kinds, err)
		}
		if addr, ok := tx.NodeAPIAddress("n1"); !ok || addr != "10.0.0.1:8443" {
			t.Errorf("NodeAPIAddress = %q, %v", addr, ok)
		}
		if tx.AppliedIndex() != uint64(len(steps)) {
			t.Errorf("AppliedIndex = %d, want %d", tx.AppliedIndex(), len(steps))
		}
		return nil
	})
}

func TestCommandChanges(t *testing.T) {
	h := newFSMHarness(t)
	h.apply(createProfile("p1", ""))
	h.apply(createProfile("p1", "")) // fails: no change
	h.apply(registerCluster("c1", nil, false))
	h.apply(registerCluster("c1", nil, false)) // no-op: no change
	h.apply(putRollout(rollout("r1", "p1", 0), 0))
	h.apply(putNodeMeta("n1", "a:1"))
	want := []Change{
		{Kind: KindProfile, Key: "p1", Index: 1},
		{Kind: KindCluster, Key: "c1", Index: 3},
		{Kind: KindRollout, Key: "r1", Index: 5},
		{Kind: KindNode, Key: "n1", Index: 6},
	}
	if fmt.Sprint(h.changes) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", h.changes, want)
	}
}

func TestBatch(t *testing.T) {
	h := newFSMHarness(t)
	sub := createProfile("p2", "v1")
	sub.Time = at(5)
	batch := &storev1.Command{Time: at(9), Actor: "batcher", Body: &storev1.Command_Batch{Batch: &storev1.Batch{Commands: []*storev1.Command{
		sub,
		createProfile("p2", "dup"),
		{Body: &storev1.Command_UpdateProfile{UpdateProfile: &storev1.UpdateProfile{Name: "p2", Spec: spec("v2")}}},
		{Body: &storev1.Command_Batch{Batch: &storev1.Batch{}}},
		deleteProfile("missing", 0),
		registerCluster("c1", nil, false),
	}}}}
	rs, ok := h.apply(batch).([]Result)
	if !ok || len(rs) != 6 {
		t.Fatalf("batch result %v", rs)
	}
	wantErrs := []error{nil, ErrAlreadyExists, nil, ErrInvalid, ErrNotFound, nil}
	for i, r := range rs {
		if !errors.Is(r.Err, wantErrs[i]) || (wantErrs[i] == nil) != (r.Err == nil) {
			t.Errorf("result %d: error %v, want %v", i, r.Err, wantErrs[i])
		}
	}
	if p := rs[0].Msg.(*ebbflowv1.Profile); p.GetRevision() != 1 || !proto.Equal(p.GetCreateTime(), at(5)) {
		t.Errorf("result 0: %v", p)
	}
	// A sub-command without time or actor gets the batch's.
	if p := rs[2].Msg.(*ebbflowv1.Profile); p.GetRevision() != 2 || !proto.Equal(p.GetUpdateTime(), at(9)) || p.GetUpdatedBy() != "batcher" {
		t.Errorf("result 2: %v", p)
	}
	h.view(func(tx *Tx) error {
		revs, err := tx.ProfileRevisions("p2")
		if err != nil || len(revs) != 2 || revs[0].GetRevision() != 2 || revs[1].GetRevision() != 1 {
			t.Errorf("revisions %v, %v", revs, err)
		}
		if _, err := tx.Cluster("c1"); err != nil {
			t.Errorf("cluster of the batch: %v", err)
		}
		return nil
	})
}

// TestApplySkipsApplied: an entry at or below the recorded index is not applied again.
func TestApplySkipsApplied(t *testing.T) {
	h := newFSMHarness(t)
	h.apply(createProfile("p1", ""))         // index 1
	e := h.entry(updateProfile("p1", "", 0)) // index 2
	if r := h.f.Apply(e).(*applyResult); r.err != nil {
		t.Fatal(r.err)
	}
	if r := h.f.Apply(e); r != nil {
		t.Fatalf("re-applied entry returned %v", r)
	}
	h.f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: []byte("never decoded")}, e})
	h.view(func(tx *Tx) error {
		if revs, _ := tx.ProfileRevisions("p1"); len(revs) != 2 {
			t.Errorf("%d revisions after re-applying old entries, want 2", len(revs))
		}
		if tx.AppliedIndex() != 2 {
			t.Errorf("applied index %d, want 2", tx.AppliedIndex())
		}
		return nil
	})
}

// TestUnhandledCommandPanics: an entry whose body this version does not know stops the node
// rather than being skipped.
func TestUnhandledCommandPanics(t *testing.T) {
	newer, err := proto.Marshal(&storev1.Command{Time: at(1)})
	if err != nil {
		t.Fatal(err)
	}
	// A body field from a newer version: field 99, a message.
	newer = protowire.AppendTag(newer, 99, protowire.BytesType)
	newer = protowire.AppendBytes(newer, []byte{0x0a, 0x01, 'x'})

	nilInBatch, _ := proto.Marshal(&storev1.Command{Body: &storev1.Command_Batch{Batch: &storev1.Batch{Commands: []*storev1.Command{
		createProfile("p1", ""), {Actor: "nobody"},
	}}}})
	empty, _ := proto.Marshal(&storev1.Command{Actor: "x"})

	for name, data := range map[string][]byte{
		"nil body":              empty,
		"unknown body":          newer,
		"nil body inside batch": nilInBatch,
		"undecodable log entry": []byte{0xff, 0xff, 0xff},
	} {
		t.Run(name, func(t *testing.T) {
			h := newFSMHarness(t)
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("no panic")
				}
				if name != "undecodable log entry" && !strings.Contains(fmt.Sprint(p), "unhandled command") {
					t.Fatalf("panic %v, want unhandled command", p)
				}
				// Nothing of the entry was stored, not even by the batch's first command.
				h.view(func(tx *Tx) error {
					if tx.AppliedIndex() != 0 {
						t.Errorf("applied index %d after a panic", tx.AppliedIndex())
					}
					if _, err := tx.Profile("p1", 0); !errors.Is(err, ErrNotFound) {
						t.Errorf("profile stored by a panicking batch: %v", err)
					}
					return nil
				})
			}()
			h.f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		})
	}
}

func TestTxLists(t *testing.T) {
	h := newFSMHarness(t)
	for _, n := range []string{"b", "a", "d", "c"} {
		h.apply(createProfile(n, ""))
		h.apply(registerCluster(n, nil, false))
		h.apply(putRollout(rollout(n, n, 0), 0))
	}
	h.apply(updateProfile("b", "v2", 0))
	h.apply(updateProfile("b", "v3", 0))
	// A name that is a prefix of another must not see its revisions or events.
	h.apply(createProfile("bb", ""))
	h.apply(putRollout(rollout("bb", "", 0), 0, event("x")))

	names := func(ms any) string {
		var out []string
		switch ms := ms.(type) {
		case []*ebbflowv1.Profile:
			for _, m := range ms {
				out = append(out, fmt.Sprintf("%s@%d", m.GetName(), m.GetRevision()))
			}
		case []*ebbflowv1.Cluster:
			for _, m := range ms {
				out = append(out, m.GetName())
			}
		case []*ebbflowv1.Rollout:
			for _, m := range ms {
				out = append(out, m.GetId())
			}
		}
		return strings.Join(out, ",")
	}
	h.view(func(tx *Tx) error {
		for _, c := range []struct {
			got  func() (any, error)
			want string
		}{
			{func() (any, error) { return tx.Profiles("", 0) }, "a@1,b@3,bb@1,c@1,d@1"},
			{func() (any, error) { return tx.Profiles("b", 2) }, "bb@1,c@1"},
			{func() (any, error) { return tx.Profiles("bz", 0) }, "c@1,d@1"},
			{func() (any, error) { return tx.Profiles("e", 0) }, ""},
			{func() (any, error) { return tx.ProfileRevisions("b") }, "b@3,b@2,b@1"},
			{func() (any, error) { return tx.ProfileRevisions("a") }, "a@1"},
			{func() (any, error) { return tx.Clusters("", 3) }, "a,b,c"},
			{func() (any, error) { return tx.Clusters("c", 0) }, "d"},
			{func() (any, error) { return tx.Rollouts("a", 0, false) }, "b,bb,c,d"},
		} {
			got, err := c.got()
			if err != nil || names(got) != c.want {
				t.Errorf("got %s, %v; want %s", names(got), err, c.want)
			}
		}
		if p, err := tx.Profile("b", 2); err != nil || p.GetSpec().GetDescription() != "v2" {
			t.Errorf("Profile(b, 2) = %v, %v", p, err)
		}
		if _, err := tx.Profile("b", 4); !errors.Is(err, ErrNotFound) {
			t.Errorf("Profile(b, 4): %v", err)
		}
		if evs, err := tx.RolloutEvents("b"); err != nil || len(evs) != 0 {
			t.Errorf("RolloutEvents(b) = %v, %v", evs, err)
		}
		return nil
	})
}

// TestStoredClusterHasNoLiveness: the leader's in-memory liveness is never stored.
func TestStoredClusterHasNoLiveness(t *testing.T) {
	h := newFSMHarness(t)
	err := h.f.db.Update(func(tx *bbolt.Tx) error {
		w := &writer{tx: tx}
		w.putCluster(&ebbflowv1.Cluster{Name: "c1", Liveness: ebbflowv1.Liveness_LIVENESS_ALIVE, LastHeartbeatTime: at(1)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.view(func(tx *Tx) error {
		c, err := tx.Cluster("c1")
		if err != nil || c.GetLiveness() != ebbflowv1.Liveness_LIVENESS_UNSPECIFIED || c.GetLastHeartbeatTime() != nil {
			t.Errorf("stored cluster %v, %v", c, err)
		}
		return nil
	})
}

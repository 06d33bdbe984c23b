package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Set STORE_TEST_LOG=1 to see the store's and Raft's logs.
func testLogger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig is a loopback node with fast Raft timing in its own temporary directory.
func testConfig(t testing.TB, id string, bootstrap bool) Config {
	t.Helper()
	return Config{
		NodeID:     id,
		DataDir:    t.TempDir(),
		RaftBind:   "127.0.0.1:0",
		APIAddress: apiAddress(id),
		Bootstrap:  bootstrap,
		Logger:     testLogger(),
		Fast:       true,
	}
}

// apiAddress is the API address a test node records (nothing listens there).
func apiAddress(id string) string {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "node"))
	if err != nil {
		n = 999
	}
	return fmt.Sprintf("127.0.0.1:%d", 18000+n)
}

// mustOpen opens a store that is closed when the test ends.
func mustOpen(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%s): %v", cfg.NodeID, err)
		}
	})
	return s
}

// mustNewStore opens a single-node cluster and waits until it serves linearizable reads.
func mustNewStore(t testing.TB) *Store {
	t.Helper()
	s := mustOpen(t, testConfig(t, "node1", true))
	waitEstablished(t, s)
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEstablished waits until s leads, serves linearizable reads and has recorded its API
// address.
func waitEstablished(t testing.TB, s *Store) {
	t.Helper()
	waitFor(t, 10*time.Second, s.cfg.NodeID+" to lead", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if s.View(ctx, Linearizable, func(*Tx) error { return nil }) != nil {
			return false
		}
		addr, err := s.LeaderAPIAddress()
		return err == nil && addr == s.cfg.APIAddress
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cluster is a set of nodes in one process.
type cluster []*Store

// newCluster starts n nodes: the first bootstraps, the others join through AddVoter on
// whichever node leads (on a loaded machine leadership may move while the cluster forms).
func newCluster(t testing.TB, n int, tweak func(*Config)) cluster {
	t.Helper()
	var c cluster
	for i := range n {
		cfg := testConfig(t, fmt.Sprintf("node%d", i+1), i == 0)
		if tweak != nil {
			tweak(&cfg)
		}
		c = append(c, mustOpen(t, cfg))
	}
	waitEstablished(t, c[0])
	for _, s := range c[1:] {
		waitFor(t, 20*time.Second, s.cfg.NodeID+" to join", func() bool {
			l := c.Leader()
			if l == nil {
				return false
			}
			err := l.AddVoter(ctxT(t), s.cfg.NodeID, s.RaftAddress(), s.cfg.APIAddress)
			if err != nil && !errors.Is(err, ErrNotLeader) {
				t.Fatalf("AddVoter(%s): %v", s.cfg.NodeID, err)
			}
			return err == nil
		})
	}
	waitFor(t, 20*time.Second, "every node to see the same leader", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		for _, s := range c {
			if s.LeaderID() != l.cfg.NodeID {
				return false
			}
		}
		return true
	})
	return c
}

// Leader returns the open node that leads, or nil.
func (c cluster) Leader() *Store {
	for _, s := range c {
		if !s.closed() && s.IsLeader() {
			return s
		}
	}
	return nil
}

// waitForNewLeader waits until an open node other than old (nil: any) leads, serves
// linearizable reads and has recorded its API address.
func (c cluster) waitForNewLeader(t testing.TB, old *Store) *Store {
	t.Helper()
	var l *Store
	waitFor(t, 20*time.Second, "a new leader", func() bool {
		l = c.Leader()
		if l == nil || l == old {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if l.View(ctx, Linearizable, func(*Tx) error { return nil }) != nil {
			return false
		}
		addr, err := l.LeaderAPIAddress()
		return err == nil && addr == l.cfg.APIAddress
	})
	return l
}

// Command helpers. Times are fixed so results are comparable.

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) *timestamppb.Timestamp {
	return timestamppb.New(t0.Add(time.Duration(sec) * time.Second))
}

func spec(desc string) *ebbflowv1.ProfileSpec { return &ebbflowv1.ProfileSpec{Description: desc} }

func createProfile(name, desc string) *storev1.Command {
	return &storev1.Command{Actor: "alice", Body: &storev1.Command_CreateProfile{
		CreateProfile: &storev1.CreateProfile{Name: name, Spec: spec(desc)},
	}}
}

func updateProfile(name, desc string, expected uint64) *storev1.Command {
	return &storev1.Command{Actor: "bob", Body: &storev1.Command_UpdateProfile{
		UpdateProfile: &storev1.UpdateProfile{Name: name, Spec: spec(desc), ExpectedRevision: expected},
	}}
}

func deleteProfile(name string, expected uint64) *storev1.Command {
	return &storev1.Command{Body: &storev1.Command_DeleteProfile{
		DeleteProfile: &storev1.DeleteProfile{Name: name, ExpectedRevision: expected},
	}}
}

func registerCluster(name string, labels map[string]string, merge bool) *storev1.Command {
	return &storev1.Command{Body: &storev1.Command_RegisterCluster{
		RegisterCluster: &storev1.RegisterCluster{Name: name, Labels: labels, MergeLabels: merge},
	}}
}

func putRollout(r *ebbflowv1.Rollout, expected uint64, events ...*ebbflowv1.RolloutEvent) *storev1.Command {
	return &storev1.Command{Actor: "engine", Body: &storev1.Command_PutRollout{
		PutRollout: &storev1.PutRollout{Rollout: r, ExpectedGeneration: expected, Events: events},
	}}
}

func rollout(id, profile string, state ebbflowv1.RolloutState) *ebbflowv1.Rollout {
	return &ebbflowv1.Rollout{Id: id, Spec: &ebbflowv1.RolloutSpec{Profile: profile}, State: state}
}

func event(kind string) *ebbflowv1.RolloutEvent {
	return &ebbflowv1.RolloutEvent{Actor: "controller", Kind: kind}
}

func putNodeMeta(id, addr string) *storev1.Command {
	return &storev1.Command{Body: &storev1.Command_PutNodeMeta{PutNodeMeta: &storev1.PutNodeMeta{NodeId: id, ApiAddress: addr}}}
}

// mustApply applies cmd on s and fails the test on error.
func mustApply(t testing.TB, s *Store, cmd *storev1.Command) proto.Message {
	t.Helper()
	m, err := s.Apply(ctxT(t), cmd)
	if err != nil {
		t.Fatalf("Apply(%v): %v", cmd, err)
	}
	return m
}

// seed writes a little of everything through s.
func seed(t testing.TB, s *Store) {
	t.Helper()
	mustApply(t, s, createProfile("p1", "one"))
	mustApply(t, s, updateProfile("p1", "one, again", 1))
	mustApply(t, s, createProfile("p2", "two"))
	mustApply(t, s, registerCluster("c1", map[string]string{"env": "prod"}, false))
	mustApply(t, s, registerCluster("c2", map[string]string{"env": "dev"}, false))
	mustApply(t, s, putRollout(rollout("r1", "p1", ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING), 0, event("create"), event("assign")))
	mustApply(t, s, putNodeMeta("elsewhere", "127.0.0.1:1"))
}

// dump returns every bucket's keys and values of a state database except the applied
// index, as a sorted list of lines.
func dump(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	err := s.fsm.view(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if string(name) == string(bucketMeta) {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				out = append(out, fmt.Sprintf("%s/%q=%x", name, k, v))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	sort.Strings(out)
	return out
}

func sameDump(a, b []string) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d entries vs %d:\n%s\n---\n%s", len(a), len(b), strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("entry %d differs: %s vs %s", i, a[i], b[i])
		}
	}
	return nil
}

// stale reads fn on s's local replica.
func stale[T any](t testing.TB, s *Store, fn func(tx *Tx) (T, error)) (T, error) {
	t.Helper()
	var out T
	err := s.View(ctxT(t), Stale, func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

func TestOpenValidatesConfig(t *testing.T) {
	if _, err := Open(Config{DataDir: t.TempDir()}); err == nil {
		t.Error("Open without NodeID succeeded")
	}
	if _, err := Open(Config{NodeID: "n"}); err == nil {
		t.Error("Open without DataDir succeeded")
	}
}

func TestCheckRaftTimeouts(t *testing.T) {
	if err := CheckRaftTimeouts(DefaultHeartbeatTimeout, DefaultElectionTimeout, DefaultLeaderLeaseTimeout, DefaultCommitTimeout); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, tc := range []struct {
		hb, el, lease, commit time.Duration
		want                  string
	}{
		{time.Second, 500 * time.Millisecond, 500 * time.Millisecond, DefaultCommitTimeout, "--raft-election-timeout (500ms) must be at least --raft-heartbeat-timeout (1s)"},
		{time.Second, time.Second, 2 * time.Second, DefaultCommitTimeout, "--raft-leader-lease-timeout (2s) must be at most --raft-heartbeat-timeout (1s)"},
		{time.Millisecond, time.Second, time.Millisecond, DefaultCommitTimeout, "must each be at least 10ms"},
		{time.Second, time.Second, time.Second, 0, "--raft-commit-timeout (0s) must be between 1ms and --raft-heartbeat-timeout (1s)"},
		{time.Second, time.Second, time.Second, 2 * time.Second, "--raft-commit-timeout (2s) must be between"},
	} {
		err := CheckRaftTimeouts(tc.hb, tc.el, tc.lease, tc.commit)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckRaftTimeouts(%s, %s, %s, %s) = %v; want %q", tc.hb, tc.el, tc.lease, tc.commit, err, tc.want)
		}
	}
}

func TestSingleNode(t *testing.T) {
	s := mustNewStore(t)
	if !s.IsLeader() || s.LeaderID() != "node1" {
		t.Fatalf("IsLeader=%v LeaderID=%q", s.IsLeader(), s.LeaderID())
	}
	if err := s.WaitForLeader(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The leader records its own API address once it leads.
	waitFor(t, 5*time.Second, "the leader's API address", func() bool {
		addr, err := s.LeaderAPIAddress()
		return err == nil && addr == s.cfg.APIAddress
	})

	m := mustApply(t, s, createProfile("p1", "one"))
	p, ok := m.(*ebbflowv1.Profile)
	if !ok || p.GetRevision() != 1 || p.GetUpdatedBy() != "alice" || p.GetCreateTime() == nil {
		t.Fatalf("Apply(CreateProfile) = %v", m)
	}
	if _, err := s.Apply(ctxT(t), createProfile("p1", "again")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second CreateProfile: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Apply(ctxT(t), &storev1.Command{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Apply without body: %v, want ErrInvalid", err)
	}
	var got *ebbflowv1.Profile
	err := s.View(ctxT(t), Linearizable, func(tx *Tx) error {
		var err error
		got, err = tx.Profile("p1", 0)
		return err
	})
	if err != nil || !proto.Equal(got, p) {
		t.Fatalf("linearizable read = %v, %v; want %v", got, err, p)
	}

	st := s.Status()
	if st.State != "Leader" || st.LeaderID != "node1" || st.LeaderAPIAddress != s.cfg.APIAddress ||
		len(st.Members) != 1 || !st.Members[0].Leader || !st.Members[0].Voter || st.Members[0].RaftAddress != s.RaftAddress() ||
		st.CommitIndex == 0 || st.AppliedIndex == 0 || st.Term == 0 {
		t.Fatalf("Status = %+v", st)
	}
	if err := s.AddVoter(ctxT(t), "node1", s.RaftAddress(), s.cfg.APIAddress); err != nil {
		t.Fatalf("AddVoter of itself (idempotent): %v", err)
	}
	if err := s.AddVoter(ctxT(t), "other", s.RaftAddress(), ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("AddVoter with a taken raft address: %v, want ErrConflict", err)
	}
	if err := s.RemoveServer(ctxT(t), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveServer(nobody): %v, want ErrNotFound", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Apply(ctxT(t), createProfile("p2", "")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := s.View(ctxT(t), Stale, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close: %v, want ErrClosed", err)
	}
	if st := s.Status(); st.State != "Shutdown" {
		t.Fatalf("Status after Close: %+v", st)
	}
}

func TestWatchLeadership(t *testing.T) {
	s := mustNewStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := s.WatchLeadership(ctx)
	if v := <-ch; !v {
		t.Fatal("first value false on the leader")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v, ok := <-ch; !ok || v {
		t.Fatalf("after Close got %v, %v; want false, open", v, ok)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after Close")
	}
	cancel()
}

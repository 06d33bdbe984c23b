package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Join token and identity command helpers.

func secretHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func createJoinToken(id, cluster, secret string, expire *timestamppb.Timestamp) *storev1.Command {
	return &storev1.Command{Actor: "alice", Body: &storev1.Command_CreateJoinToken{CreateJoinToken: &storev1.CreateJoinToken{
		Token:      &ebbflowv1.JoinToken{Id: id, Cluster: cluster, Description: "join " + cluster, ExpireTime: expire},
		SecretHash: secretHash(secret),
	}}}
}

func consumeJoinToken(id, secret string) *storev1.Command {
	return &storev1.Command{Actor: "agent", Body: &storev1.Command_ConsumeJoinToken{ConsumeJoinToken: &storev1.ConsumeJoinToken{
		Id: id, SecretHash: secretHash(secret),
	}}}
}

func revokeJoinToken(id string) *storev1.Command {
	return &storev1.Command{Actor: "bob", Body: &storev1.Command_RevokeJoinToken{RevokeJoinToken: &storev1.RevokeJoinToken{Id: id}}}
}

func revokeClusterIdentity(cluster string) *storev1.Command {
	return &storev1.Command{Actor: "bob", Body: &storev1.Command_RevokeClusterIdentity{RevokeClusterIdentity: &storev1.RevokeClusterIdentity{Cluster: cluster}}}
}

// accessDump is the part of a dump that holds join tokens and identities.
func accessDump(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, string(bucketJoinTokens)+"/") || strings.HasPrefix(l, string(bucketIdentities)+"/") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

func readToken(t testing.TB, s *Store, id string) *storev1.JoinTokenRecord {
	t.Helper()
	rec, err := stale(t, s, func(tx *Tx) (*storev1.JoinTokenRecord, error) { return tx.JoinToken(id) })
	if err != nil {
		t.Fatalf("JoinToken(%s): %v", id, err)
	}
	return rec
}

func readIdentity(t testing.TB, s *Store, cluster string) (*storev1.ClusterIdentity, bool) {
	t.Helper()
	var (
		id *storev1.ClusterIdentity
		ok bool
	)
	err := s.View(ctxT(t), Stale, func(tx *Tx) error {
		var err error
		id, ok, err = tx.ClusterIdentity(cluster)
		return err
	})
	if err != nil {
		t.Fatalf("ClusterIdentity(%s): %v", cluster, err)
	}
	return id, ok
}

// TestJoinTokens runs the life of join tokens and cluster identities through a real
// single-node store: every step's result is checked, a step that fails leaves the state as
// it was, and an FSM fed the same commands directly ends with the same bytes.
func TestJoinTokens(t *testing.T) {
	s := mustNewStore(t)
	replica := newFSMHarness(t)

	pending := ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_PENDING
	used := ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_USED
	revoked := ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_REVOKED

	token := func(id, cluster string, state ebbflowv1.JoinTokenState, created int) func(t *testing.T, m proto.Message) {
		return func(t *testing.T, m proto.Message) {
			tok := m.(*ebbflowv1.JoinToken)
			if tok.GetId() != id || tok.GetCluster() != cluster || tok.GetState() != state || tok.GetCreatedBy() != "alice" ||
				!proto.Equal(tok.GetCreateTime(), at(created)) || tok.GetDescription() != "join "+cluster {
				t.Fatalf("got %v, want %s of %s %s created at %v by alice", tok, id, cluster, state, at(created))
			}
		}
	}
	identity := func(cluster string, epoch uint64, isRevoked bool) func(t *testing.T, m proto.Message) {
		return func(t *testing.T, m proto.Message) {
			id := m.(*storev1.ClusterIdentity)
			if id.GetCluster() != cluster || id.GetEpoch() != epoch || id.GetRevoked() != isRevoked {
				t.Fatalf("got %v, want %s epoch %d revoked %v", id, cluster, epoch, isRevoked)
			}
		}
	}
	stored := func(id string, state ebbflowv1.JoinTokenState, useTime *timestamppb.Timestamp) func(t *testing.T) {
		return func(t *testing.T) {
			rec := readToken(t, s, id)
			if rec.GetToken().GetState() != state || !proto.Equal(rec.GetToken().GetUseTime(), useTime) {
				t.Fatalf("stored %v, want %s used at %v", rec.GetToken(), state, useTime)
			}
			if !slices.Equal(rec.GetSecretHash(), secretHash("s-"+id)) {
				t.Fatalf("stored hash %x", rec.GetSecretHash())
			}
		}
	}
	noHash := createJoinToken("short", "c1", "x", at(3600))
	noHash.GetCreateJoinToken().SecretHash = noHash.GetCreateJoinToken().GetSecretHash()[:31]
	noToken := &storev1.Command{Body: &storev1.Command_CreateJoinToken{CreateJoinToken: &storev1.CreateJoinToken{SecretHash: secretHash("x")}}}

	steps := []struct {
		name    string
		sec     int // the command's time
		cmd     *storev1.Command
		wantErr error
		msg     string // the error's message contains it
		check   func(t *testing.T, m proto.Message)
		after   func(t *testing.T)
	}{
		{"create t1", 0, createJoinToken("t1", "c1", "s-t1", at(3600)), nil, "", token("t1", "c1", pending, 0), stored("t1", pending, nil)},
		{"create t1 again", 1, createJoinToken("t1", "c2", "other", at(3600)), ErrAlreadyExists, "", nil, nil},
		{"create with an empty id", 1, createJoinToken("", "c1", "x", at(3600)), ErrInvalid, "join token id is empty", nil, nil},
		{"create with NUL in the id", 1, createJoinToken("a\x00b", "c1", "x", at(3600)), ErrInvalid, "", nil, nil},
		{"create with an id too long", 1, createJoinToken(strings.Repeat("a", maxNameLen+1), "c1", "x", at(3600)), ErrInvalid, "", nil, nil},
		{"create without a cluster", 1, createJoinToken("t9", "", "x", at(3600)), ErrInvalid, "cluster name is empty", nil, nil},
		{"create with a short hash", 1, noHash, ErrInvalid, "secret hash is 31 bytes", nil, nil},
		{"create without an expire time", 1, createJoinToken("t9", "c1", "x", nil), ErrInvalid, "", nil, nil},
		{"create expiring now", 1, createJoinToken("t9", "c1", "x", at(1)), ErrInvalid, "is not after", nil, nil},
		{"create without a token", 1, noToken, ErrInvalid, "", nil, nil},
		{"consume with the wrong secret", 2, consumeJoinToken("t1", "guess"), ErrUnauthenticated, "credentials not accepted", nil, stored("t1", pending, nil)},
		{"consume a missing token", 2, consumeJoinToken("t0", "s-t0"), ErrNotFound, "", nil, nil},
		{"consume t1", 3, consumeJoinToken("t1", "s-t1"), nil, "", identity("c1", 1, false), stored("t1", used, at(3))},
		{"consume t1 again", 4, consumeJoinToken("t1", "s-t1"), ErrFailedPrecondition, `join token "t1" was already used`, nil, stored("t1", used, at(3))},
		{"revoke used t1", 4, revokeJoinToken("t1"), ErrFailedPrecondition, "revoke the cluster's identity instead", nil, stored("t1", used, at(3))},
		{"create t2", 5, createJoinToken("t2", "c1", "s-t2", at(3600)), nil, "", token("t2", "c1", pending, 5), nil},
		{"consume t2", 6, consumeJoinToken("t2", "s-t2"), nil, "", identity("c1", 2, false), stored("t2", used, at(6))},
		{"create t3", 7, createJoinToken("t3", "c1", "s-t3", at(100)), nil, "", token("t3", "c1", pending, 7), nil},
		{"consume t3 when it expires", 100, consumeJoinToken("t3", "s-t3"), ErrFailedPrecondition, `join token "t3" expired`, nil, stored("t3", pending, nil)},
		{"consume expired t3 with the wrong secret", 200, consumeJoinToken("t3", "guess"), ErrUnauthenticated, "", nil, nil},
		{"create t4", 201, createJoinToken("t4", "c2", "s-t4", at(3600)), nil, "", token("t4", "c2", pending, 201), nil},
		{"revoke t4", 202, revokeJoinToken("t4"), nil, "", token("t4", "c2", revoked, 201), stored("t4", revoked, at(202))},
		{"revoke t4 again", 203, revokeJoinToken("t4"), nil, "", token("t4", "c2", revoked, 201), stored("t4", revoked, at(202))},
		{"consume revoked t4", 204, consumeJoinToken("t4", "s-t4"), ErrFailedPrecondition, `join token "t4" was revoked`, nil, nil},
		{"revoke a missing token", 204, revokeJoinToken("t0"), ErrNotFound, "", nil, nil},
		{"revoke c1's identity", 205, revokeClusterIdentity("c1"), nil, "", identity("c1", 3, true), nil},
		{"revoke c1's identity again", 206, revokeClusterIdentity("c1"), nil, "", identity("c1", 4, true), nil},
		{"revoke the identity of a cluster that never joined", 207, revokeClusterIdentity("c2"), nil, "", identity("c2", 1, true), nil},
		{"revoke the identity of no cluster", 207, revokeClusterIdentity(""), ErrInvalid, "", nil, nil},
		{"create t5", 208, createJoinToken("t5", "c1", "s-t5", at(3600)), nil, "", token("t5", "c1", pending, 208), nil},
		{"consume t5 after the revocation", 209, consumeJoinToken("t5", "s-t5"), nil, "", func(t *testing.T, m proto.Message) {
			identity("c1", 5, false)(t, m)
			if id := m.(*storev1.ClusterIdentity); !proto.Equal(id.GetUpdateTime(), at(209)) {
				t.Fatalf("update_time %v, want %v", id.GetUpdateTime(), at(209))
			}
		}, nil},
	}
	for i, st := range steps {
		t.Run(fmt.Sprintf("%02d %s", i, st.name), func(t *testing.T) {
			st.cmd.Time = at(st.sec)
			replica.apply(proto.Clone(st.cmd).(*storev1.Command))
			before := dump(t, s)
			m, err := s.Apply(ctxT(t), st.cmd)
			if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, st.wantErr)
			}
			if err != nil {
				if m != nil {
					t.Fatalf("error %v with a result %v", err, m)
				}
				if !strings.Contains(err.Error(), st.msg) {
					t.Fatalf("error %q does not say %q", err, st.msg)
				}
				if err := sameDump(dump(t, s), before); err != nil {
					t.Fatalf("a failed command changed the state: %v", err)
				}
			}
			if st.check != nil {
				st.check(t, m)
			}
			if st.after != nil {
				st.after(t)
			}
		})
	}
	if err := sameDump(accessDump(dump(t, s)), accessDump(replica.dump())); err != nil {
		t.Fatalf("the store and a replica fed the same commands differ: %v", err)
	}

	ids := func(toks []*ebbflowv1.JoinToken) string {
		var out []string
		for _, tok := range toks {
			out = append(out, tok.GetId()+":"+strings.TrimPrefix(tok.GetState().String(), "JOIN_TOKEN_STATE_"))
		}
		return strings.Join(out, ",")
	}
	for cluster, want := range map[string]string{
		"":   "t1:USED,t2:USED,t3:PENDING,t4:REVOKED,t5:USED", // t3 stays pending: the reader has no clock
		"c1": "t1:USED,t2:USED,t3:PENDING,t5:USED",
		"c2": "t4:REVOKED",
		"c3": "",
	} {
		got, err := stale(t, s, func(tx *Tx) ([]*ebbflowv1.JoinToken, error) { return tx.JoinTokens(cluster) })
		if err != nil || ids(got) != want {
			t.Errorf("JoinTokens(%q) = %s, %v; want %s", cluster, ids(got), err, want)
		}
	}
	if _, err := stale(t, s, func(tx *Tx) (*storev1.JoinTokenRecord, error) { return tx.JoinToken("t0") }); !errors.Is(err, ErrNotFound) {
		t.Errorf("JoinToken(t0): %v, want ErrNotFound", err)
	}
	for cluster, want := range map[string]string{"c1": "5 false", "c2": "1 true"} {
		id, ok := readIdentity(t, s, cluster)
		if !ok || fmt.Sprintf("%d %v", id.GetEpoch(), id.GetRevoked()) != want {
			t.Errorf("ClusterIdentity(%s) = %v, %v; want epoch and revoked %s", cluster, id, ok, want)
		}
	}
	if id, ok := readIdentity(t, s, "c3"); ok || id.GetEpoch() != 0 {
		t.Errorf("ClusterIdentity(c3) = %v, %v; want none", id, ok)
	}
}

// TestJoinTokensSortByCreateTime: listing is by create time, then id, not by id alone.
func TestJoinTokensSortByCreateTime(t *testing.T) {
	h := newFSMHarness(t)
	for _, tc := range []struct {
		id  string
		sec int
	}{{"b", 1}, {"a", 2}, {"d", 2}, {"c", 0}} {
		cmd := createJoinToken(tc.id, "c1", "x", at(3600))
		cmd.Time = at(tc.sec)
		if r := h.apply(cmd).(*applyResult); r.err != nil {
			t.Fatal(r.err)
		}
	}
	h.view(func(tx *Tx) error {
		toks, err := tx.JoinTokens("")
		var got []string
		for _, tok := range toks {
			got = append(got, tok.GetId())
		}
		if err != nil || strings.Join(got, ",") != "c,b,a,d" {
			t.Errorf("JoinTokens = %v, %v; want c,b,a,d", got, err)
		}
		return nil
	})
}

// TestJoinTokenPruning: creating a token deletes those, whatever their state, that expired
// more than a day before the command's time, and keeps the others.
func TestJoinTokenPruning(t *testing.T) {
	day := int((24 * time.Hour).Seconds())
	for name, tc := range map[string]struct {
		expire []int // expire times of the tokens created first, at second 0
		used   []bool
		now    int // when the new token is created
		kept   string
	}{
		"nothing expired":               {[]int{100, 200}, []bool{false, false}, 50, "old0,old1,new"},
		"expired less than a day ago":   {[]int{100, 200}, []bool{false, true}, 100 + day - 1, "old0,old1,new"},
		"expired exactly a day ago":     {[]int{100}, []bool{false}, 100 + day, "old0,new"},
		"expired more than a day ago":   {[]int{100, 200}, []bool{false, false}, 100 + day + 1, "old1,new"},
		"used and pending, long gone":   {[]int{100, 200, 5 * day}, []bool{true, false, false}, 3 * day, "old2,new"},
		"every old one, a week later":   {[]int{100, 200, 300}, []bool{true, true, false}, 7 * day, "new"},
		"the failed create prunes none": {[]int{100}, []bool{false}, -1, "old0"},
	} {
		t.Run(name, func(t *testing.T) {
			s := mustNewStore(t)
			for i, exp := range tc.expire {
				id := fmt.Sprintf("old%d", i)
				cmd := createJoinToken(id, "c1", "s-"+id, at(exp))
				cmd.Time = at(0)
				mustApply(t, s, cmd)
				if tc.used[i] {
					cmd := consumeJoinToken(id, "s-"+id)
					cmd.Time = at(1)
					mustApply(t, s, cmd)
				}
			}
			if tc.now < 0 {
				// Refused (it expires before it is created): nothing is pruned either.
				cmd := createJoinToken("new", "c1", "x", at(10*day))
				cmd.Time = at(20 * day)
				if _, err := s.Apply(ctxT(t), cmd); !errors.Is(err, ErrInvalid) {
					t.Fatalf("create: %v, want ErrInvalid", err)
				}
			} else {
				cmd := createJoinToken("new", "c1", "x", at(tc.now+3600))
				cmd.Time = at(tc.now)
				mustApply(t, s, cmd)
			}
			toks, err := stale(t, s, func(tx *Tx) ([]*ebbflowv1.JoinToken, error) { return tx.JoinTokens("") })
			var got []string
			for _, tok := range toks {
				got = append(got, tok.GetId())
			}
			if err != nil || strings.Join(got, ",") != tc.kept {
				t.Fatalf("kept %v, %v; want %s", got, err, tc.kept)
			}
		})
	}
}

// TestJoinTokenChanges: subscribers hear of tokens created, used, revoked and pruned, and of
// identities, and of nothing when a command fails or changes nothing.
func TestJoinTokenChanges(t *testing.T) {
	h := newFSMHarness(t)
	apply := func(cmd *storev1.Command, sec int) {
		cmd.Time = at(sec)
		h.apply(cmd)
	}
	day := int((24 * time.Hour).Seconds())
	apply(createJoinToken("t1", "c1", "s", at(100)), 0)       // 1
	apply(createJoinToken("t2", "c1", "s", at(100)), 0)       // 2
	apply(consumeJoinToken("t1", "wrong"), 1)                 // 3: refused
	apply(consumeJoinToken("t1", "s"), 1)                     // 4
	apply(revokeJoinToken("t2"), 2)                           // 5
	apply(revokeJoinToken("t2"), 3)                           // 6: already revoked
	apply(revokeClusterIdentity("c1"), 4)                     // 7
	apply(createJoinToken("t3", "c1", "s", at(3*day)), 2*day) // 8: prunes t1 and t2
	want := []Change{
		{Kind: KindJoinToken, Key: "t1", Index: 1},
		{Kind: KindJoinToken, Key: "t2", Index: 2},
		{Kind: KindJoinToken, Key: "t1", Index: 4},
		{Kind: KindIdentity, Key: "c1", Index: 4},
		{Kind: KindJoinToken, Key: "t2", Index: 5},
		{Kind: KindIdentity, Key: "c1", Index: 7},
		{Kind: KindJoinToken, Key: "t1", Index: 8},
		{Kind: KindJoinToken, Key: "t2", Index: 8},
		{Kind: KindJoinToken, Key: "t3", Index: 8},
	}
	if fmt.Sprint(h.changes) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", h.changes, want)
	}
}

// TestJoinTokenAudit: a refused consume is recorded with the code the API answers, and the
// audit record is all it writes.
func TestJoinTokenAudit(t *testing.T) {
	h := newFSMHarness(t)
	create := createJoinToken("t1", "c1", "s", at(100))
	create.Time = at(0)
	h.apply(create)
	h.apply(audited(consumeJoinToken("t1", "wrong"), "cluster/c1", 1, 0, 0))
	h.apply(audited(consumeJoinToken("t1", "s"), "cluster/c1", 200, 0, 0))
	h.apply(audited(revokeClusterIdentity("c1"), "cluster/c1", 201, 0, 0))

	var codes []string
	for _, r := range auditLog(t, h, AuditFilter{}) {
		codes = append(codes, r.GetCode())
	}
	if want := []string{"ok", "failed_precondition", "unauthenticated"}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v (newest first)", codes, want)
	}
	h.view(func(tx *Tx) error {
		rec, err := tx.JoinToken("t1")
		if err != nil || rec.GetToken().GetState() != ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_PENDING || rec.GetToken().GetUseTime() != nil {
			t.Errorf("token after refused consumes: %v, %v", rec, err)
		}
		if id, ok, err := tx.ClusterIdentity("c1"); err != nil || !ok || id.GetEpoch() != 1 || !id.GetRevoked() {
			t.Errorf("identity: %v, %v, %v; want epoch 1 revoked", id, ok, err)
		}
		return nil
	})
}

// TestJoinTokenFSMSnapshotRestore: tokens and identities are part of an FSM snapshot.
func TestJoinTokenFSMSnapshotRestore(t *testing.T) {
	src := newFSMHarness(t)
	for i, cmd := range []*storev1.Command{
		createJoinToken("t1", "c1", "s1", at(3600)),
		consumeJoinToken("t1", "s1"),
		createJoinToken("t2", "c2", "s2", at(3600)),
		revokeClusterIdentity("c2"),
	} {
		cmd.Time = at(i)
		if r := src.apply(cmd).(*applyResult); r.err != nil {
			t.Fatal(r.err)
		}
	}
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := newFSMHarness(t)
	if err := dst.f.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if err := sameDump(dst.dump(), src.dump()); err != nil {
		t.Fatal(err)
	}
	dst.view(func(tx *Tx) error {
		if rec, err := tx.JoinToken("t1"); err != nil || rec.GetToken().GetState() != ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_USED {
			t.Errorf("t1 after restore: %v, %v", rec, err)
		}
		if id, ok, err := tx.ClusterIdentity("c2"); err != nil || !ok || id.GetEpoch() != 1 || !id.GetRevoked() {
			t.Errorf("c2 after restore: %v, %v, %v", id, ok, err)
		}
		return nil
	})
	// The restored replica goes on from there: t2 starts c2's second epoch.
	dst.index = 4
	consume := consumeJoinToken("t2", "s2")
	consume.Time = at(10)
	r := dst.apply(consume).(*applyResult)
	if r.err != nil || r.msg.(*storev1.ClusterIdentity).GetEpoch() != 2 || r.msg.(*storev1.ClusterIdentity).GetRevoked() {
		t.Fatalf("consume after restore: %v, %v", r.msg, r.err)
	}
}

// TestJoinTokensSurviveRestart: tokens and identities survive a restart of the store, from
// fsm.db as it is and rebuilt from a Raft snapshot when fsm.db is lost.
func TestJoinTokensSurviveRestart(t *testing.T) {
	for _, lose := range []bool{false, true} {
		name := "fsm.db kept"
		if lose {
			name = "fsm.db lost"
		}
		t.Run(name, func(t *testing.T) {
			s := mustNewStore(t)
			mustApply(t, s, createJoinToken("t1", "c1", "s1", timestamppb.New(time.Now().Add(time.Hour))))
			mustApply(t, s, consumeJoinToken("t1", "s1"))
			mustApply(t, s, revokeClusterIdentity("c1"))
			if err := s.Snapshot(); err != nil {
				t.Fatal(err)
			}
			mustApply(t, s, createJoinToken("t2", "c1", "s2", timestamppb.New(time.Now().Add(time.Hour))))
			want := dump(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if lose {
				if err := os.Remove(filepath.Join(s.cfg.DataDir, "fsm.db")); err != nil {
					t.Fatal(err)
				}
			}
			s = reopen(t, s)
			waitEstablished(t, s)
			if err := sameDump(dump(t, s), want); err != nil {
				t.Fatalf("state after restart: %v", err)
			}
			if id, ok := readIdentity(t, s, "c1"); !ok || id.GetEpoch() != 2 || !id.GetRevoked() {
				t.Fatalf("identity after restart: %v, %v; want epoch 2 revoked", id, ok)
			}
			if _, err := s.Apply(ctxT(t), consumeJoinToken("t1", "s1")); !errors.Is(err, ErrFailedPrecondition) {
				t.Fatalf("reusing t1 after restart: %v, want ErrFailedPrecondition", err)
			}
			id := mustApply(t, s, consumeJoinToken("t2", "s2")).(*storev1.ClusterIdentity)
			if id.GetEpoch() != 3 || id.GetRevoked() {
				t.Fatalf("consume after restart: %v, want epoch 3 not revoked", id)
			}
		})
	}
}

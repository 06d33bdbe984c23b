package store

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func audited(cmd *storev1.Command, resource string, sec int, keep uint64, age time.Duration) *storev1.Command {
	cmd.Time = at(sec)
	cmd.Audit = &storev1.AuditEntry{
		Actor: "alice", RemoteAddress: "10.0.0.7:5555", Procedure: "ebbflow.v1.Test/Call", Resource: resource,
		NodeId: "node1", MaxRecords: keep,
	}
	if age > 0 {
		cmd.Audit.MaxAge = durationpb.New(age)
	}
	return cmd
}

func refusal(resource, code, msg string, sec int) *storev1.Command {
	cmd := audited(&storev1.Command{Body: &storev1.Command_RecordAudit{RecordAudit: &storev1.RecordAudit{}}}, resource, sec, 0, 0)
	cmd.Audit.Code, cmd.Audit.Message = code, msg
	return cmd
}

func auditLog(t testing.TB, h *fsmHarness, f AuditFilter) []*ebbflowv1.AuditRecord {
	t.Helper()
	var out []*ebbflowv1.AuditRecord
	h.view(func(tx *Tx) error {
		var err error
		out, _, err = tx.AuditRecords(f, 0, 0)
		return err
	})
	return out
}

func sequences(rs []*ebbflowv1.AuditRecord) []uint64 {
	out := make([]uint64, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.GetSequence())
	}
	return out
}

// The FSM stores a command's audit record with the result it decided itself, in the same
// transaction: a failed command changes nothing but is recorded with its code and message.
func TestAuditRecordsTheFSMResult(t *testing.T) {
	h := newFSMHarness(t)
	h.apply(audited(createProfile("eks", ""), "profile/eks", 1, 0, 0))
	h.apply(audited(createProfile("eks", ""), "profile/eks", 2, 0, 0))
	h.apply(audited(deleteProfile("gke", 0), "profile/gke", 3, 0, 0))
	h.apply(refusal("profile/bad", "invalid_argument", "name: must be set", 4))
	h.apply(createProfile("unaudited", "")) // the engine's own writes carry no audit entry

	got := auditLog(t, h, AuditFilter{})
	if want := []uint64{4, 3, 2, 1}; !slices.Equal(sequences(got), want) {
		t.Fatalf("sequences %v, want %v (newest first)", sequences(got), want)
	}
	for i, want := range []struct{ code, resource string }{
		{"invalid_argument", "profile/bad"}, {"not_found", "profile/gke"}, {"already_exists", "profile/eks"}, {"ok", "profile/eks"},
	} {
		r := got[i]
		if r.GetCode() != want.code || r.GetResource() != want.resource || r.GetActor() != "alice" || r.GetRemoteAddress() != "10.0.0.7:5555" {
			t.Errorf("record %d: %v, want code %s resource %s", r.GetSequence(), r, want.code, want.resource)
		}
		if (want.code == "ok") != (r.GetMessage() == "") {
			t.Errorf("record %d: message %q with code %s", r.GetSequence(), r.GetMessage(), r.GetCode())
		}
	}
	if !got[3].GetTime().AsTime().Equal(at(1).AsTime()) {
		t.Errorf("time %v, want the command's %v", got[3].GetTime().AsTime(), at(1).AsTime())
	}
	h.view(func(tx *Tx) error {
		if n := tx.AuditCount(); n != 4 {
			t.Errorf("count %d, want 4", n)
		}
		return nil
	})

	for name, tc := range map[string]struct {
		f    AuditFilter
		want []uint64
	}{
		"failed":            {AuditFilter{Failed: true}, []uint64{4, 3, 2}},
		"ok":                {AuditFilter{OK: true}, []uint64{1}},
		"resource prefix":   {AuditFilter{Prefix: "profile/eks"}, []uint64{2, 1}},
		"procedure prefix":  {AuditFilter{Prefix: "ebbflow.v1.Test/"}, []uint64{4, 3, 2, 1}},
		"actor":             {AuditFilter{Actor: "bob"}, []uint64{}},
		"time range":        {AuditFilter{Start: at(2).AsTime(), End: at(4).AsTime()}, []uint64{3, 2}},
		"failed since time": {AuditFilter{Failed: true, Start: at(3).AsTime()}, []uint64{4, 3}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := sequences(auditLog(t, h, tc.f)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Paging: below a sequence, at most limit, and whether more remain.
	h.view(func(tx *Tx) error {
		page, more, err := tx.AuditRecords(AuditFilter{}, 4, 2)
		if err != nil || !more || !slices.Equal(sequences(page), []uint64{3, 2}) {
			t.Errorf("page below 4: %v more=%v %v", sequences(page), more, err)
		}
		page, more, err = tx.AuditRecords(AuditFilter{}, 2, 2)
		if err != nil || more || !slices.Equal(sequences(page), []uint64{1}) {
			t.Errorf("page below 2: %v more=%v %v", sequences(page), more, err)
		}
		return nil
	})
}

// Retention prunes by count and by age with the command's time, the same on every replica.
func TestAuditRetention(t *testing.T) {
	hour := time.Hour
	for name, tc := range map[string]struct {
		keep uint64
		age  time.Duration
		// commands at these seconds; retention is carried by each
		secs []int
		want []uint64
	}{
		"no limits":           {0, 0, []int{1, 2, 3, 4}, []uint64{4, 3, 2, 1}},
		"count":               {2, 0, []int{1, 2, 3, 4, 5}, []uint64{5, 4}},
		"count of one":        {1, 0, []int{1, 2, 3}, []uint64{3}},
		"age":                 {0, hour, []int{0, 1800, 3600, 5400, 7300}, []uint64{5, 4}},
		"age keeps the edge":  {0, hour, []int{0, 3600}, []uint64{2, 1}},
		"count and age":       {2, hour, []int{0, 10, 20, 7200}, []uint64{4}},
		"age then many fresh": {3, hour, []int{0, 4000, 4001, 4002, 4003}, []uint64{5, 4, 3}},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := newFSMHarness(t), newFSMHarness(t)
			for i, sec := range tc.secs {
				cmd := audited(createProfile(fmt.Sprintf("p%d", i), ""), fmt.Sprintf("profile/p%d", i), sec, tc.keep, tc.age)
				a.apply(cmd)
				b.apply(cmd)
			}
			if got := sequences(auditLog(t, a, AuditFilter{})); !slices.Equal(got, tc.want) {
				t.Fatalf("kept %v, want %v", got, tc.want)
			}
			a.view(func(tx *Tx) error {
				if n := tx.AuditCount(); n != uint64(len(tc.want)) {
					t.Errorf("count %d, want %d", n, len(tc.want))
				}
				return nil
			})
			if err := sameDump(a.dump(), b.dump()); err != nil {
				t.Fatalf("replicas differ: %v", err)
			}
		})
	}
}

// The audit log is part of a snapshot: a restored FSM holds the same records and continues
// the sequence after them.
func TestAuditSnapshotRestore(t *testing.T) {
	src := newFSMHarness(t)
	for i := range 3 {
		src.apply(audited(createProfile(fmt.Sprintf("p%d", i), ""), "profile/x", i, 0, 0))
	}
	src.apply(refusal("profile/y", "not_found", "gone", 9))
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	want := auditLog(t, src, AuditFilter{})

	dst := newFSMHarness(t)
	dst.apply(refusal("profile/before-restore", "ok", "", 1))
	if err := dst.f.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	got := auditLog(t, dst, AuditFilter{})
	if len(got) != len(want) || !slices.Equal(sequences(got), sequences(want)) || got[0].GetCode() != "not_found" {
		t.Fatalf("restored audit %v, want %v", got, want)
	}
	dst.index = 10
	dst.apply(refusal("profile/after", "ok", "", 10))
	if got := sequences(auditLog(t, dst, AuditFilter{})); got[0] != 5 {
		t.Fatalf("sequence after restore %v, want 5 first", got)
	}
}

// A RecordAudit without its entry is refused like any malformed command.
func TestRecordAuditWithoutEntry(t *testing.T) {
	h := newFSMHarness(t)
	res := h.apply(&storev1.Command{Body: &storev1.Command_RecordAudit{RecordAudit: &storev1.RecordAudit{}}}).(*applyResult)
	if !errors.Is(res.err, ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", res.err)
	}
}

// Through real Raft: every node of a 3-node group prunes the same records.
func TestAuditRetentionOnEveryNode(t *testing.T) {
	c := newCluster(t, 3, nil)
	for i := range 6 {
		cmd := audited(createProfile(fmt.Sprintf("p%d", i), ""), fmt.Sprintf("profile/p%d", i), i*1000, 4, time.Hour)
		c.apply(t, cmd)
	}
	want := dump(t, c.Leader())
	for _, s := range c {
		waitFor(t, 10*time.Second, s.cfg.NodeID+" to hold the same audit log", func() bool { return sameDump(dump(t, s), want) == nil })
		recs, err := stale(t, s, func(tx *Tx) ([]*ebbflowv1.AuditRecord, error) {
			rs, _, err := tx.AuditRecords(AuditFilter{}, 0, 0)
			return rs, err
		})
		// At 5000 s with an hour's retention and four at most: 6 (5000) 5 (4000) 4 (3000) 3 (2000).
		if err != nil || !slices.Equal(sequences(recs), []uint64{6, 5, 4, 3}) {
			t.Fatalf("%s: %v %v", s.cfg.NodeID, sequences(recs), err)
		}
	}
}

// A node that joins after the log was compacted gets the audit log from the snapshot, and
// the records that follow continue its sequence.
func TestAuditInSnapshotInstall(t *testing.T) {
	small := func(c *Config) { c.TrailingLogs = 2; c.SnapshotThreshold = 4 }
	cfg := testConfig(t, "node1", true)
	small(&cfg)
	leader := mustOpen(t, cfg)
	waitEstablished(t, leader)
	for i := range 6 {
		mustApply(t, leader, audited(createProfile(fmt.Sprintf("p%d", i), ""), fmt.Sprintf("profile/p%d", i), i, 0, 0))
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	cfg2 := testConfig(t, "node2", false)
	small(&cfg2)
	joiner := mustOpen(t, cfg2)
	if err := leader.AddVoter(ctxT(t), "node2", joiner.RaftAddress(), joiner.cfg.APIAddress); err != nil {
		t.Fatal(err)
	}
	mustApply(t, leader, audited(createProfile("after", ""), "profile/after", 10, 0, 0))
	want := dump(t, leader)
	waitFor(t, 10*time.Second, "the joiner to catch up", func() bool { return sameDump(dump(t, joiner), want) == nil })
	recs, err := stale(t, joiner, func(tx *Tx) ([]*ebbflowv1.AuditRecord, error) {
		rs, _, err := tx.AuditRecords(AuditFilter{}, 0, 0)
		return rs, err
	})
	if err != nil || !slices.Equal(sequences(recs), []uint64{7, 6, 5, 4, 3, 2, 1}) || recs[0].GetResource() != "profile/after" {
		t.Fatalf("joiner's audit log: %v %v", sequences(recs), err)
	}
}

package store

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// FuzzApplyCommand feeds fuzz bytes to a fresh FSM as a log entry. A command that decodes is
// applied without a panic and the entry counts as applied; one that does not decode is an
// error (decodeCommand) and the FSM refuses it loudly, leaving nothing stored: never skipped.
func FuzzApplyCommand(f *testing.F) {
	seeds := []*storev1.Command{
		createProfile("p1", "one"),
		updateProfile("p1", "two", 1),
		deleteProfile("p1", 0),
		registerCluster("c1", map[string]string{"env": "prod"}, true),
		putRollout(rollout("r1", "p1", ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING), 0, event("create")),
		putNodeMeta("n1", "127.0.0.1:1"),
		audited(createProfile("p2", ""), "profile/p2", 5, 2, 3600e9),
		refusal("cluster/x", "not_found", "gone", 6),
		{Time: at(1), Body: &storev1.Command_Batch{Batch: &storev1.Batch{Commands: []*storev1.Command{
			createProfile("b1", ""), registerCluster("b2", nil, false),
			{Body: &storev1.Command_Batch{Batch: &storev1.Batch{}}},
		}}}},
		{Body: &storev1.Command_SetClusterCordon{SetClusterCordon: &storev1.SetClusterCordon{Name: "c1", Cordoned: true}}},
		{Body: &storev1.Command_AppendRolloutEvents{AppendRolloutEvents: &storev1.AppendRolloutEvents{RolloutId: "r1"}}},
		{Body: &storev1.Command_UpdateInventory{UpdateInventory: &storev1.UpdateInventory{Name: "c1"}}},
		{Body: &storev1.Command_DeleteCluster{DeleteCluster: &storev1.DeleteCluster{Name: "\x00"}}},
		{Body: &storev1.Command_RecordAudit{RecordAudit: &storev1.RecordAudit{}}},
		joinTokenSeed(createJoinToken("t1", "c1", "s1", at(3600)), 0),
		joinTokenSeed(createJoinToken("t2", "c1", "s2", at(5)), 10),
		joinTokenSeed(consumeJoinToken("t1", "s1"), 1),
		revokeJoinToken("t1"),
		revokeClusterIdentity("c1"),
		{Body: &storev1.Command_CreateJoinToken{CreateJoinToken: &storev1.CreateJoinToken{}}},
		{Body: &storev1.Command_ConsumeJoinToken{ConsumeJoinToken: &storev1.ConsumeJoinToken{Id: "\x00"}}},
		{Time: at(1), Body: &storev1.Command_Batch{Batch: &storev1.Batch{Commands: []*storev1.Command{
			createJoinToken("b1", "c1", "s", at(3600)), consumeJoinToken("b1", "wrong"),
			consumeJoinToken("b1", "s"), consumeJoinToken("b1", "s"), revokeJoinToken("b1"),
		}}}},
		{Actor: "nobody"},
	}
	for _, c := range seeds {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte{0x0a, 0x01, 'x'}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, decErr := decodeCommand(data)
		h := newFSMHarness(t)
		var res any
		panicked := func() (p any) {
			defer func() { p = recover() }()
			res = h.f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data})
			return nil
		}()
		var applied uint64
		h.view(func(tx *Tx) error { applied = tx.AppliedIndex(); return nil })
		if decErr != nil {
			if panicked == nil || applied != 0 {
				t.Fatalf("undecodable command (%v) was not refused: panic %v, applied index %d", decErr, panicked, applied)
			}
			return
		}
		if panicked != nil {
			t.Fatalf("applying %v panicked: %v", cmd, panicked)
		}
		if applied != 1 {
			t.Fatalf("applied index %d after applying %v", applied, cmd)
		}
		switch r := res.(type) {
		case *applyResult:
		case []Result:
			if len(r) != len(cmd.GetBatch().GetCommands()) {
				t.Fatalf("%d results for %d commands", len(r), len(cmd.GetBatch().GetCommands()))
			}
		default:
			t.Fatalf("result %s", fmt.Sprintf("%T", res))
		}
	})
}

// joinTokenSeed sets a seed command's time.
func joinTokenSeed(cmd *storev1.Command, sec int) *storev1.Command {
	cmd.Time = at(sec)
	return cmd
}

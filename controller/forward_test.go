package controller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func follower(t *testing.T, nodes []*controllertest.Node) *controllertest.Node {
	t.Helper()
	leader := controllertest.Leader(t, nodes)
	for _, n := range nodes {
		if n != leader {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

// A write sent to a follower is forwarded to the leader and acknowledged; linearizable reads on
// a follower are forwarded too; stale reads are served by the follower itself.
func TestFollowerForwardsWritesAndLinearizableReads(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	f := follower(t, nodes)
	c := newClients(f.URL)
	ctx := context.Background()

	p := mustCreateProfile(t, c, "forwarded")
	if p.GetRevision() != 1 {
		t.Fatalf("revision %d", p.GetRevision())
	}
	if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "eu-1", Labels: map[string]string{"env": "prod"}})); err != nil {
		t.Fatalf("register via follower: %v", err)
	}
	// Linearizable read through the follower sees the write at once.
	got, err := c.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: "forwarded"}))
	if err != nil || got.Msg.GetProfile().GetRevision() != 1 {
		t.Fatalf("linearizable read via follower: %v %v", got, err)
	}
	// Stale reads from every node converge on the write.
	for _, n := range nodes {
		nc := newClients(n.URL)
		controllertest.Eventually(t, 10*time.Second, "stale read on "+n.ID, func() bool {
			res, err := nc.clusters.ListClusters(ctx, connect.NewRequest(&ebbflowv1.ListClustersRequest{
				Selector: "env=prod", Read: &ebbflowv1.ReadOptions{Consistency: ebbflowv1.Consistency_CONSISTENCY_STALE},
			}))
			return err == nil && len(res.Msg.GetClusters()) == 1
		})
	}
	// The controller status of a follower names the leader and lists three voters.
	st, err := c.controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Msg.GetState() != ebbflowv1.RaftState_RAFT_STATE_FOLLOWER || st.Msg.GetLeaderId() == "" || len(st.Msg.GetMembers()) != 3 {
		t.Fatalf("follower status: %v", st.Msg)
	}
}

// Killing the leader after an acknowledged write loses nothing: the new leader serves it, and
// writes through the API go on.
func TestLeaderLossKeepsAcknowledgedWrites(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	leader := controllertest.Leader(t, nodes)
	mustCreateProfile(t, newClients(leader.URL), "before-failover")
	leader.Stop()

	var rest []*controllertest.Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	nl := controllertest.Leader(t, rest)
	c := newClients(nl.URL)
	ctx := context.Background()
	got, err := c.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: "before-failover"}))
	if err != nil || got.Msg.GetProfile().GetRevision() != 1 {
		t.Fatalf("acknowledged write lost after failover: %v %v", got, err)
	}
	// Through the surviving follower too (forwarded to the new leader).
	var other *controllertest.Node
	for _, n := range rest {
		if n != nl {
			other = n
		}
	}
	controllertest.Eventually(t, 10*time.Second, "write via the other survivor", func() bool {
		_, err := newClients(other.URL).profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "after-failover", Spec: minimalSpec()}))
		return err == nil || connect.CodeOf(err) == connect.CodeAlreadyExists
	})
}

// A watch opened on a follower right after the leader acknowledged a write starts from a state
// that holds it: the follower catches up to the leader's commit index before its first read,
// so a rollout just created is never "not found" there.
func TestFollowerWatchSeesAcknowledgedCreate(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	leader := controllertest.Leader(t, nodes)
	var followers []*controllertest.Node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	lc := newClients(leader.URL)
	applyBareMetal(t, lc)
	ctx := context.Background()
	const rounds = 20
	for i := range rounds {
		if _, err := lc.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{
			Name: fmt.Sprintf("c-%02d", i), Labels: map[string]string{"env": "prod", "order": "00", "idx": fmt.Sprint(i)},
		})); err != nil {
			t.Fatal(err)
		}
	}
	for i := range rounds {
		spec := fleetSpec(0, 0)
		spec.ClusterSelector = fmt.Sprintf("idx=%d", i)
		id := fmt.Sprintf("r-%02d", i)
		if _, err := lc.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: id, Spec: spec, AllowEmpty: true})); err != nil {
			t.Fatal(err)
		}
		f := followers[i%len(followers)]
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		stream, err := newClients(f.URL).rollouts.WatchRollout(wctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: id}))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if !stream.Receive() {
			cancel()
			t.Fatalf("watch of %s on follower %s right after the create: %v", id, f.ID, stream.Err())
		}
		if got := stream.Msg().GetRollout().GetId(); got != id {
			t.Errorf("watch on %s sent rollout %q, want %q", f.ID, got, id)
		}
		stream.Close()
		cancel()
	}
}

// Forwarding is generic (by procedure name, from the procedure's schema), so it must carry every
// protocol and codec the API serves: Connect JSON from a portal, gRPC, and the leader's errors
// with their codes and details.
func TestFollowerForwardsEveryProtocol(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	f := follower(t, nodes)
	ctx := context.Background()

	post := func(procedure, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.URL+procedure, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := controllertest.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	create := `{"name":"portal","spec":{"description":"d","chart":{"repository":"https://helm.cilium.io","version":">=1.16.0"}}}`
	code, body := post("/ebbflow.v1.ProfileService/CreateProfile", create)
	if code != http.StatusOK || !strings.Contains(body, `"name":"portal"`) || !strings.Contains(body, `"revision":"1"`) {
		t.Fatalf("Connect JSON create through a follower: %d %s", code, body)
	}
	code, body = post("/ebbflow.v1.ProfileService/CreateProfile", create)
	if code != http.StatusConflict || !strings.Contains(body, `"code":"already_exists"`) {
		t.Fatalf("the leader's AlreadyExists through a follower: %d %s", code, body)
	}

	g := newClients(f.URL, connect.WithGRPC())
	got, err := g.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: "portal"}))
	if err != nil || got.Msg.GetProfile().GetRevision() != 1 {
		t.Fatalf("gRPC linearizable read through a follower: %v %v", got, err)
	}
	// A refused write keeps its code and its field violations on the way back.
	_, err = g.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "r1"}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || len(ce.Details()) == 0 {
		t.Fatalf("gRPC invalid write through a follower: %v", err)
	}
}

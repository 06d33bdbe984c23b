package controller_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Every write makes a new immutable revision; optimistic concurrency refuses a stale update.
func TestProfileRevisions(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	mustCreateProfile(t, c, "tuned")
	_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "tuned", Spec: minimalSpec()}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("duplicate create: want AlreadyExists, got %v", err)
	}
	spec := minimalSpec()
	spec.Description = "second"
	up, err := c.profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{Name: "tuned", Spec: spec, ExpectedRevision: 1}))
	if err != nil || up.Msg.GetProfile().GetRevision() != 2 {
		t.Fatalf("update: %v %v", up, err)
	}
	_, err = c.profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{Name: "tuned", Spec: spec, ExpectedRevision: 1}))
	if connect.CodeOf(err) != connect.CodeAborted {
		t.Fatalf("stale update: want Aborted, got %v", err)
	}
	// The same spec again writes nothing, with or without the latest revision named.
	for _, expected := range []uint64{0, 2} {
		same, err := c.profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{Name: "tuned", Spec: spec, ExpectedRevision: expected}))
		if err != nil || !same.Msg.GetUnchanged() || same.Msg.GetProfile().GetRevision() != 2 {
			t.Fatalf("update with an equal spec (expected revision %d): %v %v, want unchanged revision 2", expected, same, err)
		}
	}
	old, err := c.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: "tuned", Revision: 1}))
	if err != nil || old.Msg.GetProfile().GetSpec().GetDescription() != "test" {
		t.Fatalf("revision 1 changed: %v %v", old, err)
	}
	revs, err := c.profiles.ListProfileRevisions(ctx, connect.NewRequest(&ebbflowv1.ListProfileRevisionsRequest{Name: "tuned"}))
	if err != nil || len(revs.Msg.GetRevisions()) != 2 || revs.Msg.GetRevisions()[0].GetRevision() != 2 {
		t.Fatalf("revisions: %v %v", revs, err)
	}
	del, err := c.profiles.DeleteProfile(ctx, connect.NewRequest(&ebbflowv1.DeleteProfileRequest{Name: "tuned"}))
	if err != nil || del.Msg.GetRevision() != 2 {
		t.Fatalf("delete: %v %v", del, err)
	}
	_, err = c.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: "tuned"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("after delete: want NotFound, got %v", err)
	}
}

// Listing pages through every profile exactly once.
func TestListProfilesPages(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		mustCreateProfile(t, c, name)
	}
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		res, err := c.profiles.ListProfiles(context.Background(), connect.NewRequest(&ebbflowv1.ListProfilesRequest{PageSize: 2, PageToken: tok}))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Msg.GetProfiles() {
			got = append(got, p.GetName())
		}
		if tok = res.Msg.GetNextPageToken(); tok == "" {
			break
		}
	}
	if len(got) != 5 || got[0] != "a" || got[4] != "e" {
		t.Fatalf("pages: %v", got)
	}
}

// Cordoning, labels with optimistic concurrency, and selectors.
func TestClusterLabelsCordonAndSelectors(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	for name, env := range map[string]string{"p1": "prod", "p2": "prod", "s1": "staging"} {
		if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: name, Labels: map[string]string{"env": env}})); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.clusters.ListClusters(ctx, connect.NewRequest(&ebbflowv1.ListClustersRequest{Selector: "env in (prod)", PageSize: 1}))
	if err != nil || len(res.Msg.GetClusters()) != 1 || res.Msg.GetNextPageToken() == "" {
		t.Fatalf("page 1: %v %v", res, err)
	}
	res2, err := c.clusters.ListClusters(ctx, connect.NewRequest(&ebbflowv1.ListClustersRequest{Selector: "env in (prod)", PageSize: 1, PageToken: res.Msg.GetNextPageToken()}))
	if err != nil || len(res2.Msg.GetClusters()) != 1 || res2.Msg.GetClusters()[0].GetName() != "p2" || res2.Msg.GetNextPageToken() != "" {
		t.Fatalf("page 2: %v %v", res2, err)
	}
	cord, err := c.clusters.CordonCluster(ctx, connect.NewRequest(&ebbflowv1.CordonClusterRequest{Name: "p1", Reason: "maintenance"}))
	if err != nil || !cord.Msg.GetCluster().GetCordoned() || cord.Msg.GetCluster().GetCordonReason() != "maintenance" {
		t.Fatalf("cordon: %v %v", cord, err)
	}
	gen := cord.Msg.GetCluster().GetGeneration()
	_, err = c.clusters.SetClusterLabels(ctx, connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{Name: "p1", Labels: map[string]string{"env": "prod", "tier": "1"}, ExpectedGeneration: gen - 1}))
	if connect.CodeOf(err) != connect.CodeAborted {
		t.Fatalf("stale label write: want Aborted, got %v", err)
	}
	lab, err := c.clusters.SetClusterLabels(ctx, connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{Name: "p1", Labels: map[string]string{"env": "prod", "tier": "1"}, ExpectedGeneration: gen}))
	if err != nil || lab.Msg.GetCluster().GetLabels()["tier"] != "1" {
		t.Fatalf("labels: %v %v", lab, err)
	}
	un, err := c.clusters.UncordonCluster(ctx, connect.NewRequest(&ebbflowv1.UncordonClusterRequest{Name: "p1"}))
	if err != nil || un.Msg.GetCluster().GetCordoned() {
		t.Fatalf("uncordon: %v %v", un, err)
	}
	if _, err := c.clusters.DeleteCluster(ctx, connect.NewRequest(&ebbflowv1.DeleteClusterRequest{Name: "s1"})); err != nil {
		t.Fatal(err)
	}
	_, err = c.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "s1"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("deleted cluster: %v", err)
	}
}

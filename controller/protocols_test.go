package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// One handler serves Connect JSON (the portal), gRPC (grpc-go) and gRPC-Web: a profile
// written with one protocol is read back with the others.
func TestProtocolsReachTheSameHandler(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	ctx := context.Background()

	// Connect protocol, JSON, as curl or a browser would send it.
	body := `{"name":"portal","spec":{"description":"from the portal","chart":{"repository":"https://helm.cilium.io","version":">=1.16.0"}}}`
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/ebbflow.v1.ProfileService/CreateProfile", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("Connect JSON: status %d: %s", res.StatusCode, raw)
	}
	var created struct {
		Profile struct {
			Name     string `json:"name"`
			Revision string `json:"revision"`
		} `json:"profile"`
	}
	if err := json.Unmarshal(raw, &created); err != nil || created.Profile.Name != "portal" || created.Profile.Revision != "1" {
		t.Fatalf("Connect JSON response %s (%v)", raw, err)
	}

	// A Connect JSON error names the field, with the Connect error code.
	req, _ = http.NewRequest(http.MethodPost, n.URL+"/ebbflow.v1.ProfileService/CreateProfile", bytes.NewBufferString(`{"name":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !bytes.Contains(raw, []byte(`"invalid_argument"`)) || !bytes.Contains(raw, []byte("spec: must be set")) {
		t.Fatalf("Connect JSON error: status %d body %s", res.StatusCode, raw)
	}

	// gRPC with grpc-go over h2c.
	conn, err := grpc.NewClient(n.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := ebbflowv1.NewProfileServiceClient(conn).GetProfile(ctx, &ebbflowv1.GetProfileRequest{Name: "portal"})
	if err != nil {
		t.Fatalf("gRPC GetProfile: %v", err)
	}
	if got.GetProfile().GetSpec().GetDescription() != "from the portal" {
		t.Fatalf("gRPC read %v", got)
	}
	_, err = ebbflowv1.NewProfileServiceClient(conn).GetProfile(ctx, &ebbflowv1.GetProfileRequest{Name: "missing"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC missing profile: want NotFound, got %v", err)
	}

	// gRPC-Web through the Connect client.
	web := newClients(n.URL, connect.WithGRPCWeb())
	list, err := web.profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{}))
	if err != nil {
		t.Fatalf("gRPC-Web ListProfiles: %v", err)
	}
	if len(list.Msg.GetProfiles()) != 1 || list.Msg.GetProfiles()[0].GetName() != "portal" {
		t.Fatalf("gRPC-Web list: %v", list.Msg)
	}

	// Standard gRPC health and reflection, so grpcurl works.
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "ebbflow.v1.ProfileService"})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}
	stream, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"ebbflow.v1.ProfileService", "ebbflow.v1.ClusterService", "ebbflow.v1.RolloutService", "ebbflow.v1.AgentService", "ebbflow.v1.ControllerService"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection does not list %s: %v", want, names)
		}
	}

	// The file of a service comes with its comments, so describe shows them.
	if err := stream.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "ebbflow.v1.ClusterService"}}); err != nil {
		t.Fatal(err)
	}
	rr, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	commented := false
	for _, raw := range rr.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(raw, &fd); err != nil {
			t.Fatal(err)
		}
		for _, loc := range fd.GetSourceCodeInfo().GetLocation() {
			// Path 6, 0: the file's first service.
			commented = commented || (slices.Equal(loc.GetPath(), []int32{6, 0}) && strings.TrimSpace(loc.GetLeadingComments()) != "")
		}
	}
	if !commented {
		t.Errorf("reflection serves ebbflow.v1.ClusterService's file without its comments")
	}
}

// Steering a rollout that does not exist says so.
func TestSteerMissingRollout(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	_, err := c.rollouts.PauseRollout(context.Background(), connect.NewRequest(&ebbflowv1.PauseRolloutRequest{Id: "r1"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("want NotFound, got %v", err)
	}
	if want := "r1"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("message %q does not name %q", err, want)
	}
}

// Reads are declared free of side effects, so the Connect protocol serves them with GET (a
// cacheable URL, as a portal or curl sends it); a mutation still takes only POST.
func TestReadsAcceptGET(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	get := func(procedure, message string) (int, string) {
		t.Helper()
		u := n.URL + procedure + "?connect=v1&encoding=json&message=" + url.QueryEscape(message)
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/ebbflow.v1.ClusterService/ListClusters", `{"read":{"consistency":"CONSISTENCY_STALE"}}`); code != http.StatusOK {
		t.Fatalf("GET ListClusters: %d %s", code, body)
	}
	if code, body := get("/ebbflow.v1.ClusterService/GetCluster", `{"name":"missing"}`); code != http.StatusNotFound || !strings.Contains(body, "not_found") {
		t.Fatalf("GET GetCluster of a missing cluster: %d %s", code, body)
	}
	if code, body := get("/ebbflow.v1.ClusterService/ListClusters", `{"lables":1}`); code != http.StatusBadRequest || !strings.Contains(body, "lables") {
		t.Fatalf("GET with an unknown field: %d %s", code, body)
	}
	if code, body := get("/ebbflow.v1.ClusterService/DeleteCluster", `{"name":"c1"}`); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET of a mutation: %d %s, want 405", code, body)
	}
	// The generated client uses GET when asked to.
	cl := c.NewProfileServiceClient(http.DefaultClient, n.URL, connect.WithHTTPGet())
	if _, err := cl.ListProfiles(context.Background(), connect.NewRequest(&ebbflowv1.ListProfilesRequest{})); err != nil {
		t.Fatalf("ListProfiles with GET: %v", err)
	}
}

package controller

import (
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// requestTypes is one message of every request the API takes.
var requestTypes = []proto.Message{
	&ebbflowv1.CreateProfileRequest{}, &ebbflowv1.UpdateProfileRequest{}, &ebbflowv1.ValidateProfileRequest{},
	&ebbflowv1.DeleteProfileRequest{}, &ebbflowv1.GetProfileRequest{}, &ebbflowv1.ListProfileRevisionsRequest{},
	&ebbflowv1.ListProfilesRequest{},
	&ebbflowv1.RegisterClusterRequest{}, &ebbflowv1.SetClusterLabelsRequest{}, &ebbflowv1.CordonClusterRequest{},
	&ebbflowv1.UncordonClusterRequest{}, &ebbflowv1.DeleteClusterRequest{}, &ebbflowv1.GetClusterRequest{},
	&ebbflowv1.ListClustersRequest{},
	&ebbflowv1.CreateRolloutRequest{}, &ebbflowv1.PlanRolloutRequest{}, &ebbflowv1.PauseRolloutRequest{},
	&ebbflowv1.ResumeRolloutRequest{}, &ebbflowv1.ApproveRolloutRequest{}, &ebbflowv1.SkipClusterRequest{},
	&ebbflowv1.AbortRolloutRequest{}, &ebbflowv1.RollbackRolloutRequest{}, &ebbflowv1.GetRolloutRequest{},
	&ebbflowv1.GetRolloutHistoryRequest{}, &ebbflowv1.WatchRolloutRequest{}, &ebbflowv1.ListRolloutsRequest{},
	&ebbflowv1.RegisterAgentRequest{}, &ebbflowv1.WatchAssignmentRequest{}, &ebbflowv1.HeartbeatRequest{},
	&ebbflowv1.ReportPhaseStatusRequest{}, &ebbflowv1.ReportMeasurementRequest{},
	&ebbflowv1.GetControllerStatusRequest{}, &ebbflowv1.AddVoterRequest{}, &ebbflowv1.RemoveServerRequest{}, &ebbflowv1.ReportAgentStreamsRequest{},
	&ebbflowv1.ListAuditRecordsRequest{},
	&ebbflowv1.JoinClusterRequest{}, &ebbflowv1.RenewCertificateRequest{},
	&ebbflowv1.WhoAmIRequest{}, &ebbflowv1.CreateJoinTokenRequest{}, &ebbflowv1.ListJoinTokensRequest{},
	&ebbflowv1.RevokeJoinTokenRequest{}, &ebbflowv1.RevokeClusterIdentityRequest{},
}

// Every request of every service has a validator.
func TestEveryRequestHasAValidator(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range requestTypes {
		seen[string(m.ProtoReflect().Descriptor().FullName())] = true
		if err := validateRequest(m); err != nil && connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%T: %v", m, err)
		}
	}
	files := []protoreflect.FileDescriptor{
		ebbflowv1.File_ebbflow_v1_profile_proto, ebbflowv1.File_ebbflow_v1_cluster_proto, ebbflowv1.File_ebbflow_v1_rollout_proto,
		ebbflowv1.File_ebbflow_v1_agent_proto, ebbflowv1.File_ebbflow_v1_controller_proto, ebbflowv1.File_ebbflow_v1_audit_proto,
		ebbflowv1.File_ebbflow_v1_access_proto,
	}
	for _, fd := range files {
		for i := range fd.Services().Len() {
			ms := fd.Services().Get(i).Methods()
			for j := range ms.Len() {
				if in := string(ms.Get(j).Input().FullName()); !seen[in] {
					t.Errorf("%s takes %s, which the fuzz test and validateRequest do not cover", ms.Get(j).FullName(), in)
				}
			}
		}
	}
}

// FuzzRequests decodes fuzz bytes (binary, and JSON with the server's strict JSON codec) as
// each request of the API and runs validateRequest, the checks its handler runs.
// Nothing may panic; a refusal is InvalidArgument naming at least one field; an accepted
// request respects the limits.
func FuzzRequests(f *testing.F) {
	spec := &ebbflowv1.ProfileSpec{Description: "d", Chart: &ebbflowv1.ChartRef{Repository: "https://helm.cilium.io", Version: ">=1.16.0"}}
	hv, _ := structpb.NewStruct(map[string]any{"a": map[string]any{"b": []any{1.0, "x"}}})
	seeds := []proto.Message{
		&ebbflowv1.CreateProfileRequest{Name: "eks", Spec: spec},
		&ebbflowv1.ListClustersRequest{Selector: "env=prod,region in (eu)", PageSize: 10, PageToken: "YQ"},
		&ebbflowv1.RegisterAgentRequest{Cluster: "eu-1", Labels: map[string]string{"env": "prod"}, Inventory: &ebbflowv1.Inventory{
			HelmValues: hv, CiliumConfig: map[string]string{"k": "v"}, Nodes: []*ebbflowv1.NodeInfo{{Name: "n1", KernelVersion: "6.8"}},
		}},
		&ebbflowv1.ReportMeasurementRequest{Ref: &ebbflowv1.ReportRef{Cluster: "c", AssignmentId: "a", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_L7},
			Measurements: []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://t", SamplesMs: []float64{1, 2}}}},
		&ebbflowv1.ReportPhaseStatusRequest{Ref: &ebbflowv1.ReportRef{Cluster: "c"}, PreflightReasons: []string{"r"}},
		&ebbflowv1.RollbackRolloutRequest{Id: "r", Target: &ebbflowv1.RollbackRolloutRequest_Wave{Wave: 2}},
		&ebbflowv1.ApproveRolloutRequest{Id: "r", Wave: -1, Cluster: "c"},
		&ebbflowv1.AddVoterRequest{NodeId: "n-2", RaftAddress: "127.0.0.1:7071", ApiAddress: "127.0.0.1:7070"},
		&ebbflowv1.ListAuditRecordsRequest{Actor: "alice", Prefix: "profile/", PageToken: "MTA"},
		&ebbflowv1.JoinClusterRequest{Token: "abcdef.0123456789abcdef", CsrPem: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"},
		&ebbflowv1.CreateJoinTokenRequest{Cluster: "eu-1", Ttl: durationpb.New(time.Hour), Description: "d"},
		&ebbflowv1.CreateRolloutRequest{Id: "r1", Spec: &ebbflowv1.RolloutSpec{Profile: "eks", Waves: &ebbflowv1.RolloutSpec_Automatic{
			Automatic: &ebbflowv1.AutomaticWaves{CanaryCount: 1, Size: &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: 2}},
		}}},
	}
	for _, m := range seeds {
		b, _ := proto.Marshal(m)
		for i, rt := range requestTypes {
			if rt.ProtoReflect().Descriptor() == m.ProtoReflect().Descriptor() {
				f.Add(uint8(i), b)
			}
		}
		j, _ := protojson.Marshal(m)
		f.Add(uint8(0), j)
	}
	f.Add(uint8(27), []byte(`{"cluster":"c","inventory":{"helmValues":{"a":{"a":{"a":[[[[{}]]]]}}}}}`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		typ := requestTypes[int(kind)%len(requestTypes)]
		strict := func(b []byte, m proto.Message) error { return strictJSON{name: "json"}.Unmarshal(b, m) }
		for _, decode := range []func([]byte, proto.Message) error{proto.Unmarshal, strict} {
			m := typ.ProtoReflect().New().Interface()
			if decode(data, m) != nil {
				continue
			}
			err := validateRequest(m)
			if err != nil {
				checkRefusal(t, m, err)
				continue
			}
			if len(m.ProtoReflect().GetUnknown()) > 0 {
				t.Fatalf("%T accepted with unknown fields %x", m, m.ProtoReflect().GetUnknown())
			}
			checkLimits(t, m.ProtoReflect(), 0)
		}
	})
}

func checkRefusal(t *testing.T, m proto.Message, err error) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
		t.Fatalf("%T refused with %v, want InvalidArgument", m, err)
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if br, ok := v.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() != "" {
				return
			}
		}
	}
	t.Fatalf("%T refused without naming a field: %v", m, err)
}

// checkLimits asserts what every accepted request respects, whatever its type: no string
// longer than the largest per-field limit, no list or map longer than the largest count
// limit, nothing nested deeper than the deepest allowed structure; strings are valid UTF-8.
func checkLimits(t *testing.T, m protoreflect.Message, depth int) {
	t.Helper()
	if depth > 2*maxHelmValuesDepth+16 {
		t.Fatalf("accepted %s nested %d deep", m.Descriptor().FullName(), depth)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			if l.Len() > maxSamples {
				t.Fatalf("accepted %s with %d items", fd.FullName(), l.Len())
			}
			for i := range l.Len() {
				checkValue(t, fd, l.Get(i), depth)
			}
		case fd.IsMap():
			mp := v.Map()
			if mp.Len() > maxConfigKeys {
				t.Fatalf("accepted %s with %d entries", fd.FullName(), mp.Len())
			}
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				checkValue(t, fd.MapKey(), k.Value(), depth)
				checkValue(t, fd.MapValue(), mv, depth)
				return true
			})
		default:
			checkValue(t, fd, v, depth)
		}
		return true
	})
}

func checkValue(t *testing.T, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) {
	t.Helper()
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s := v.String(); len(s) > maxConfigValueBytes || !utf8.ValidString(s) {
			t.Fatalf("accepted %s of %d bytes (valid UTF-8: %v)", fd.FullName(), len(s), utf8.ValidString(s))
		}
	case protoreflect.BytesKind:
		if n := len(v.Bytes()); n > maxHistogramBytes {
			t.Fatalf("accepted %s of %d bytes", fd.FullName(), n)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		checkLimits(t, v.Message(), depth+1)
	}
}

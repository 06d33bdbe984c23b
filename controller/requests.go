package controller

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Limits on what agents send, beyond the read limit of the whole message.
const (
	maxInventoryNodes   = 10000
	maxMeasurements     = 16
	maxSamples          = 200000
	maxHistogramBytes   = 256 << 10
	maxTargetBytes      = 2048
	maxShortText        = 256  // versions, providers, node names and kernels
	maxConfigKeys       = 2048 // keys of cilium-config
	maxConfigValueBytes = 64 << 10
	maxHelmValuesBytes  = 2 << 20
	maxHelmValuesDepth  = 64
	maxPreflightReasons = 1000
	maxMessageText      = 4096
	maxAssignmentID     = 128
	maxCSRBytes         = 16 << 10
)

// validateRequest runs the checks of msg's RPC that come before any state is read, and returns
// the InvalidArgument error naming every field and rule, or nil. The interceptor calls it once
// per request (and per message of a client stream); the fuzz tests call it on decoded fuzz
// input.
func validateRequest(msg any) error {
	var v issues
	if pm, ok := msg.(proto.Message); ok {
		v.checkSchema(pm.ProtoReflect(), "")
		if len(v.Issues) > 0 {
			return v.err() // the rules below read fields whose meaning is unclear
		}
		if err := v.schemaRules(pm); err != nil {
			return err
		}
	}
	// What follows is what the schema's rules cannot say: label and selector syntax, page
	// tokens, certificate requests and join tokens, host:port addresses, the size and depth
	// of Helm values, and rules across fields.
	switch m := msg.(type) {
	case *ebbflowv1.CreateProfileRequest, *ebbflowv1.UpdateProfileRequest:
		// The handler validates the profile once, with checkSpec: its warnings are part of
		// the response.
	case *ebbflowv1.ValidateProfileRequest:
		// The spec's own rules come back as the response's errors, not as a refusal.
	case *ebbflowv1.ListProfilesRequest:
		v.pageToken("page_token", m.GetPageToken())
	case *ebbflowv1.RegisterClusterRequest:
		v.labels("labels", m.GetLabels())
	case *ebbflowv1.SetClusterLabelsRequest:
		v.labels("labels", m.GetLabels())
	case *ebbflowv1.ListClustersRequest:
		v.pageToken("page_token", m.GetPageToken())
		v.selector("selector", m.GetSelector())
	case *ebbflowv1.CreateRolloutRequest, *ebbflowv1.PlanRolloutRequest:
		// The spec is validated once, by its handler (rollout.CheckSpec).
	case *ebbflowv1.ApproveRolloutRequest:
		if (m.GetWave() < 0) == (m.GetCluster() == "") {
			v.Add("wave", "one-of", "give exactly one of wave (>= 0) or cluster (with wave -1)")
		}
	case *ebbflowv1.RollbackRolloutRequest:
		if m.GetTarget() == nil {
			v.Add("target", "required", "give one of cluster, wave or all")
		}
	case *ebbflowv1.ListRolloutsRequest:
		v.pageToken("page_token", m.GetPageToken())
	case *ebbflowv1.RegisterAgentRequest:
		v.labels("labels", m.GetLabels())
		v.helmValues("inventory.helm_values", m.GetInventory().GetHelmValues())
	case *ebbflowv1.AddVoterRequest:
		v.hostPort("raft_address", m.GetRaftAddress())
		v.hostPort("api_address", m.GetApiAddress())
	case *ebbflowv1.ListAuditRecordsRequest:
		_, _, err := auditQuery(m)
		return err
	case *ebbflowv1.JoinClusterRequest:
		if _, _, err := pki.ParseJoinToken(m.GetToken()); err != nil {
			v.Add("token", "join-token", "%v", err)
		}
		v.csr("csr_pem", m.GetCsrPem())
	case *ebbflowv1.RenewCertificateRequest:
		v.csr("csr_pem", m.GetCsrPem())
	case *ebbflowv1.DeleteProfileRequest, *ebbflowv1.GetProfileRequest, *ebbflowv1.ListProfileRevisionsRequest,
		*ebbflowv1.CordonClusterRequest, *ebbflowv1.UncordonClusterRequest, *ebbflowv1.DeleteClusterRequest,
		*ebbflowv1.GetClusterRequest,
		*ebbflowv1.PauseRolloutRequest, *ebbflowv1.ResumeRolloutRequest, *ebbflowv1.SkipClusterRequest,
		*ebbflowv1.AbortRolloutRequest, *ebbflowv1.GetRolloutRequest, *ebbflowv1.GetRolloutHistoryRequest,
		*ebbflowv1.WatchRolloutRequest,
		*ebbflowv1.WatchAssignmentRequest, *ebbflowv1.ReportAgentStreamsRequest, *ebbflowv1.HeartbeatRequest,
		*ebbflowv1.ReportPhaseStatusRequest, *ebbflowv1.ReportMeasurementRequest,
		*ebbflowv1.GetControllerStatusRequest, *ebbflowv1.RemoveServerRequest,
		*ebbflowv1.WhoAmIRequest, *ebbflowv1.CreateJoinTokenRequest, *ebbflowv1.ListJoinTokensRequest,
		*ebbflowv1.RevokeJoinTokenRequest, *ebbflowv1.RevokeClusterIdentityRequest:
		// The schema's rules say all there is to check.
	default:
		return fmt.Errorf("no validation for %T", msg)
	}
	return v.err()
}

// helmValues checks the size and depth of an agent's report of its Helm values (the schema
// cannot bound a Struct).
func (v *issues) helmValues(field string, hv *structpb.Struct) {
	if hv == nil {
		return
	}
	if n := proto.Size(hv); n > maxHelmValuesBytes {
		v.Add(field, "max-size", "at most %d bytes, got %d", maxHelmValuesBytes, n)
	} else if d := structDepth(hv, 0); d > maxHelmValuesDepth {
		v.Add(field, "max-depth", "nested deeper than %d levels", maxHelmValuesDepth)
	}
}

// structDepth is how deeply s nests, stopping once past the limit.
func structDepth(s *structpb.Struct, depth int) int {
	if depth > maxHelmValuesDepth {
		return depth
	}
	deepest := depth + 1
	for _, val := range s.GetFields() {
		deepest = max(deepest, valueDepth(val, depth+1))
		if deepest > maxHelmValuesDepth {
			break
		}
	}
	return deepest
}

func valueDepth(val *structpb.Value, depth int) int {
	switch k := val.GetKind().(type) {
	case *structpb.Value_StructValue:
		return structDepth(k.StructValue, depth)
	case *structpb.Value_ListValue:
		deepest := depth + 1
		for _, e := range k.ListValue.GetValues() {
			deepest = max(deepest, valueDepth(e, depth+1))
			if deepest > maxHelmValuesDepth {
				break
			}
		}
		return deepest
	}
	return depth
}

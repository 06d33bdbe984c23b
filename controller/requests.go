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
	}
	switch m := msg.(type) {
	// Profiles.
	case *ebbflowv1.CreateProfileRequest, *ebbflowv1.UpdateProfileRequest:
		// The handler validates the profile once, with checkSpec: its warnings are part of
		// the response.
	case *ebbflowv1.ValidateProfileRequest:
		if m.GetSpec() == nil {
			v.Add("spec", "required", "must be set")
		}
		// The spec's own rules come back as the response's errors, not as a refusal.
	case *ebbflowv1.DeleteProfileRequest:
		v.name("name", m.GetName())
	case *ebbflowv1.GetProfileRequest:
		v.name("name", m.GetName())
	case *ebbflowv1.ListProfileRevisionsRequest:
		v.name("name", m.GetName())
	case *ebbflowv1.ListProfilesRequest:
		v.pageSize("page_size", m.GetPageSize())
		v.pageToken("page_token", m.GetPageToken())

	// Clusters.
	case *ebbflowv1.RegisterClusterRequest:
		v.name("name", m.GetName())
		v.labels("labels", m.GetLabels())
	case *ebbflowv1.SetClusterLabelsRequest:
		v.name("name", m.GetName())
		v.labels("labels", m.GetLabels())
	case *ebbflowv1.CordonClusterRequest:
		v.name("name", m.GetName())
		v.maxLen("reason", m.GetReason(), maxReasonBytes)
	case *ebbflowv1.UncordonClusterRequest:
		v.name("name", m.GetName())
	case *ebbflowv1.DeleteClusterRequest:
		v.name("name", m.GetName())
	case *ebbflowv1.GetClusterRequest:
		v.name("name", m.GetName())
	case *ebbflowv1.ListClustersRequest:
		v.pageSize("page_size", m.GetPageSize())
		v.pageToken("page_token", m.GetPageToken())
		v.selector("selector", m.GetSelector())

	// Rollouts.
	case *ebbflowv1.CreateRolloutRequest:
		if m.GetId() != "" {
			v.name("id", m.GetId())
		}
		// The spec is validated once, by its handler (rollout.CheckSpec).
	case *ebbflowv1.PlanRolloutRequest:
		// The spec is validated once, by its handler (rollout.CheckSpec).
	case *ebbflowv1.PauseRolloutRequest:
		v.control(m.GetId(), m.GetReason())
	case *ebbflowv1.ResumeRolloutRequest:
		v.control(m.GetId(), "")
	case *ebbflowv1.ApproveRolloutRequest:
		if (m.GetWave() < 0) == (m.GetCluster() == "") {
			v.Add("wave", "one-of", "give exactly one of wave (>= 0) or cluster (with wave -1)")
		} else if m.GetCluster() != "" {
			v.name("cluster", m.GetCluster())
		}
		v.control(m.GetId(), "")
	case *ebbflowv1.SkipClusterRequest:
		v.name("cluster", m.GetCluster())
		v.control(m.GetId(), m.GetReason())
	case *ebbflowv1.AbortRolloutRequest:
		v.control(m.GetId(), m.GetReason())
	case *ebbflowv1.RollbackRolloutRequest:
		switch x := m.GetTarget().(type) {
		case *ebbflowv1.RollbackRolloutRequest_Cluster:
			v.name("cluster", x.Cluster)
		case *ebbflowv1.RollbackRolloutRequest_Wave:
			if x.Wave < 0 {
				v.Add("wave", "range", "must not be negative")
			}
		case *ebbflowv1.RollbackRolloutRequest_All:
		default:
			v.Add("target", "required", "give one of cluster, wave or all")
		}
		v.control(m.GetId(), m.GetReason())
	case *ebbflowv1.GetRolloutRequest:
		v.name("id", m.GetId())
	case *ebbflowv1.GetRolloutHistoryRequest:
		v.name("id", m.GetId())
	case *ebbflowv1.WatchRolloutRequest:
		v.name("id", m.GetId())
	case *ebbflowv1.ListRolloutsRequest:
		v.pageSize("page_size", m.GetPageSize())
		v.pageToken("page_token", m.GetPageToken())

	// Agents.
	case *ebbflowv1.RegisterAgentRequest:
		v.name("cluster", m.GetCluster())
		v.labels("labels", m.GetLabels())
		v.maxLen("agent_version", m.GetAgentVersion(), 128)
		v.inventory("inventory", m.GetInventory())
	case *ebbflowv1.WatchAssignmentRequest:
		v.name("cluster", m.GetCluster())
	case *ebbflowv1.ReportAgentStreamsRequest:
		v.nodeID("node_id", m.GetNodeId())
		if n := len(m.GetClusters()); n > maxStreamsReport {
			v.Add("clusters", "max-items", "at most %d, got %d", maxStreamsReport, n)
		} else {
			for i, c := range m.GetClusters() {
				v.name(fmt.Sprintf("clusters[%d]", i), c)
			}
		}
	case *ebbflowv1.HeartbeatRequest:
		v.name("cluster", m.GetCluster())
		v.maxLen("assignment_id", m.GetAssignmentId(), maxAssignmentID)
	case *ebbflowv1.ReportPhaseStatusRequest:
		checkRef(&v, m.GetRef())
		if m.GetStatus() == ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED {
			v.Add("status", "required", "must be set")
		}
		v.maxLen("message", m.GetMessage(), maxMessageText)
		if n := len(m.GetPreflightReasons()); n > maxPreflightReasons {
			v.Add("preflight_reasons", "max-items", "at most %d, got %d", maxPreflightReasons, n)
		} else {
			for i, r := range m.GetPreflightReasons() {
				v.maxLen(fmt.Sprintf("preflight_reasons[%d]", i), r, maxReasonBytes)
			}
		}
	case *ebbflowv1.ReportMeasurementRequest:
		checkRef(&v, m.GetRef())
		if n := len(m.GetMeasurements()); n == 0 || n > maxMeasurements {
			v.Add("measurements", "count", "between 1 and %d measurements, got %d", maxMeasurements, n)
		}
		for i, ms := range m.GetMeasurements() {
			if i >= maxMeasurements {
				break
			}
			p := fmt.Sprintf("measurements[%d]", i)
			if n := len(ms.GetSamplesMs()); n > maxSamples {
				v.Add(p+".samples_ms", "max-items", "at most %d samples, got %d", maxSamples, n)
			}
			if ms.GetKind() == ebbflowv1.ProbeKind_PROBE_KIND_UNSPECIFIED {
				v.Add(p+".kind", "required", "must be set")
			}
			v.maxLen(p+".target", ms.GetTarget(), maxTargetBytes)
			if n := len(ms.GetHdrHistogram()); n > maxHistogramBytes {
				v.Add(p+".hdr_histogram", "max-length", "at most %d bytes, got %d", maxHistogramBytes, n)
			}
		}

	// Controller.
	case *ebbflowv1.GetControllerStatusRequest:
	case *ebbflowv1.AddVoterRequest:
		v.nodeID("node_id", m.GetNodeId())
		v.hostPort("raft_address", m.GetRaftAddress())
		v.hostPort("api_address", m.GetApiAddress())
	case *ebbflowv1.RemoveServerRequest:
		v.nodeID("node_id", m.GetNodeId())

	// Audit.
	case *ebbflowv1.ListAuditRecordsRequest:
		_, _, err := auditQuery(m)
		return err

	// Access.
	case *ebbflowv1.WhoAmIRequest:
	case *ebbflowv1.CreateJoinTokenRequest:
		v.name("cluster", m.GetCluster())
		if t := m.GetTtl(); t != nil {
			if err := t.CheckValid(); err != nil || t.AsDuration() < minJoinTokenTTL || t.AsDuration() > maxJoinTokenTTL {
				v.Add("ttl", "range", "must be between %s and %s", minJoinTokenTTL, maxJoinTokenTTL)
			}
		}
		v.maxLen("description", m.GetDescription(), maxShortText)
	case *ebbflowv1.ListJoinTokensRequest:
		if m.GetCluster() != "" {
			v.name("cluster", m.GetCluster())
		}
	case *ebbflowv1.RevokeJoinTokenRequest:
		v.joinTokenID("id", m.GetId())
	case *ebbflowv1.RevokeClusterIdentityRequest:
		v.name("cluster", m.GetCluster())
	case *ebbflowv1.JoinClusterRequest:
		if _, _, err := pki.ParseJoinToken(m.GetToken()); err != nil {
			v.Add("token", "join-token", "%v", err)
		}
		v.csr("csr_pem", m.GetCsrPem())
	case *ebbflowv1.RenewCertificateRequest:
		v.csr("csr_pem", m.GetCsrPem())

	default:
		return fmt.Errorf("no validation for %T", msg)
	}
	return v.err()
}

// control checks what every manual rollout control names.
func (v *issues) control(id, reason string) {
	v.name("id", id)
	v.maxLen("reason", reason, maxReasonBytes)
}

// inventory checks what an agent reports of its cluster.
func (v *issues) inventory(field string, inv *ebbflowv1.Inventory) {
	if inv == nil {
		return
	}
	v.maxLen(field+".kubernetes_version", inv.GetKubernetesVersion(), maxShortText)
	v.maxLen(field+".cilium_chart_version", inv.GetCiliumChartVersion(), maxShortText)
	v.maxLen(field+".cilium_image_version", inv.GetCiliumImageVersion(), maxShortText)
	v.maxLen(field+".cloud_provider", inv.GetCloudProvider(), maxShortText)
	if hv := inv.GetHelmValues(); hv != nil {
		if n := proto.Size(hv); n > maxHelmValuesBytes {
			v.Add(field+".helm_values", "max-size", "at most %d bytes, got %d", maxHelmValuesBytes, n)
		} else if d := structDepth(hv, 0); d > maxHelmValuesDepth {
			v.Add(field+".helm_values", "max-depth", "nested deeper than %d levels", maxHelmValuesDepth)
		}
	}
	if n := len(inv.GetCiliumConfig()); n > maxConfigKeys {
		v.Add(field+".cilium_config", "max-items", "at most %d keys, got %d", maxConfigKeys, n)
	} else {
		for k, val := range inv.GetCiliumConfig() {
			if len(k) > maxShortText {
				v.Add(field+".cilium_config", "max-length", "a key is longer than %d bytes", maxShortText)
				break
			}
			v.maxLen(field+".cilium_config["+k+"]", val, maxConfigValueBytes)
		}
	}
	nodes := inv.GetNodes()
	if n := len(nodes); n > maxInventoryNodes {
		v.Add(field+".nodes", "max-items", "at most %d nodes, got %d", maxInventoryNodes, n)
		return
	}
	for i, n := range nodes {
		p := fmt.Sprintf("%s.nodes[%d]", field, i)
		v.maxLen(p+".name", n.GetName(), maxShortText)
		v.maxLen(p+".kernel_version", n.GetKernelVersion(), maxShortText)
		v.maxLen(p+".os_image", n.GetOsImage(), maxShortText)
		v.maxLen(p+".nic_driver", n.GetNicDriver(), maxShortText)
		v.maxLen(p+".cloud_provider", n.GetCloudProvider(), maxShortText)
		if len(v.Issues) > 100 {
			return // enough to say what is wrong
		}
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

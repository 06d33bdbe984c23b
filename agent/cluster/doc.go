// Package cluster runs Ebbflow's canary phases on one Kubernetes cluster through the Helm v3 SDK
// and client-go: preflight, upgrade, wait, verify, park and unpark DaemonSets, measure, roll
// back, with its progress recorded in the cluster so a restarted agent resumes.
//
// # Phases
//
// Every APPLY is the same chain of steps (see the Step constants), each recorded in the
// ConfigMap ebbflow-agent-progress of the agent's namespace once done:
//
//   - preflight: the inventory (nodes' kernels and NIC drivers, the release's values) against
//     the profile with profile.Preflight; a failure reports PREFLIGHT_FAILED and changes nothing.
//   - upgrade: `helm upgrade` of the Cilium release with the release's current user values
//     merged with the cumulative values of the phases up to this one (never --reuse-values),
//     on the chart version already deployed when the profile's constraint allows it. No upgrade
//     when that changes nothing (baseline, or a phase re-applied). For kpr the values carry
//     k8sServiceHost/k8sServicePort (from the profile, or kept from the release; preflight
//     refuses kpr without them) together with kubeProxyReplacement=true.
//   - restart: rollOutCiliumPods is off by default, so a changed cilium-config under an
//     unchanged pod template restarts the agents with a pod template annotation (rollout
//     restart); then a client-go watch waits until the DaemonSet has rolled out.
//   - l7: the profile's CiliumNetworkPolicies, server-side applied in the phase's namespaces.
//   - kpr: kube-proxy (and aws-node on EKS, or the listed DaemonSets) parked with a nodeSelector
//     key no node has (ebbflow.io/parked), the original selector kept in the progress and in an
//     annotation of the DaemonSet; the driver waits until no pod is left.
//   - verify: cilium-config holds profile.ExpectedConfig of the cumulative values.
//   - measure: the assignment's probes, the same settings for every phase.
//
// # Rollback
//
// A ROLLBACK to revision R un-parks every DaemonSet parked at or after R and waits until it is
// ready, deletes the policies applied at or after R, runs `helm rollback` to R, restarts the
// agents when the config changed, and checks that cilium-config is exactly what R rendered. A
// failed APPLY step undoes itself the same way, back to the revision before the step.
//
// # Crashes
//
// The Helm revision before a step is recorded before the upgrade, and every parked DaemonSet
// and applied policy before it is patched or applied; revisions the driver creates carry the
// assignment id in their description. A restarted agent (Resume, or Execute of the same
// assignment) continues from the last recorded step: a finished upgrade is recognised in the
// release history and not repeated, and a parked DaemonSet is never forgotten. A release left
// failed by an interrupted upgrade is rolled back to the revision before the step and reported
// FAILED. An assignment already done is only reported again.
package cluster

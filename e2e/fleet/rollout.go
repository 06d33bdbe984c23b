package fleet

import (
	"fmt"
	"time"
)

// Rollout is a rollout of the local profile (e2e/demo-profile.yaml) by the ring label, with
// the probe every agent points at its own latency target and a budget that a 3x slowdown
// breaks and scheduling noise on a busy machine does not.
type Rollout struct {
	ID string
	// Profile names the rollout's profile (default local-tuning, e2e/demo-profile.yaml).
	Profile string
	// Selector picks the clusters (default env=prod).
	Selector string
	// Policy is a FailurePolicy name; empty for the default.
	Policy                       string
	Canary, WaveSize             int
	CanaryFailures, WaveFailures int
	// CanarySoak and Soak default to 1 s.
	CanarySoak, Soak time.Duration
}

// YAML is the rollout as `fleetctl rollout create -f` reads it.
func (r Rollout) YAML() string {
	sel := r.Selector
	if sel == "" {
		sel = "env=prod"
	}
	policy := ""
	if r.Policy != "" {
		policy = "\n  failurePolicy: " + r.Policy
	}
	soak := func(d time.Duration) string {
		if d <= 0 {
			d = time.Second
		}
		return d.String()
	}
	profile := r.Profile
	if profile == "" {
		profile = "local-tuning"
	}
	return fmt.Sprintf(`apiVersion: ebbflow.io/v1
kind: Rollout
metadata: {name: %s}
spec:
  profile: %s
  clusterSelector: %s
  sortLabel: ring%s
  automatic:
    canaryCount: %d
    waveSize: %d
    canaryGates: {maxFailuresCount: %d, soakTime: %s}
    gates: {maxFailuresCount: %d, soakTime: %s}
  phaseTimeout: 300s
  budgets:
    - {maxP50IncreasePercent: 50, maxP99IncreasePercent: 300, alpha: 0.01, minSamples: 100}
  probes:
    windows: 3
    warmup: 0.2s
    probes:
      - {kind: PROBE_KIND_HTTP, target: "http://%s/", rate: 100, duration: 1s}
`, r.ID, profile, sel, policy, r.Canary, r.WaveSize, r.CanaryFailures, soak(r.CanarySoak), r.WaveFailures, soak(r.Soak), TargetHost)
}

// Package rollout is Ebbflow's pure rollout logic: wave planning, the phase state machine, gates
// and regression statistics. No I/O; time is injected.
package rollout

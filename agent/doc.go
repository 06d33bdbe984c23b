// Package agent is Ebbflow's per-cluster agent: it registers its cluster, keeps liveness,
// follows its assignment from the controller over gRPC, and runs what it is assigned.
package agent

// Package controller serves Ebbflow's one API (Connect, gRPC and gRPC-Web on one handler),
// validates requests at the boundary, forwards writes to the Raft leader, and keeps agent
// liveness in the leader's memory. It is transport: the decisions are rollout's pure
// functions, fed from the store's in-memory index (store/index.go) and written back as the
// patches rollout.Diff describes; agent reports are decided and written in batches
// (reports.go).
package controller

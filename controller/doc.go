// Package controller serves Ebbflow's one API (Connect, gRPC and gRPC-Web on one handler) and
// keeps agent liveness in the leader's memory. It is transport: every call walks one
// interceptor chain (interceptor.go) driven by one procedure table (procedures.go: who may
// call each RPC, where it runs, its rate limit, its audit resource) that authenticates,
// rate-limits, authorises, validates, forwards to the Raft leader by procedure name
// (forward.go) and audits; handlers only read, decide and apply. The decisions are rollout's
// pure functions, fed from the store's in-memory index (store/index.go) and written back as
// the patches rollout.Diff describes; agent reports are decided and written in batches
// (reports.go).
package controller

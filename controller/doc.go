// Package controller serves Ebbflow's one API (Connect, gRPC and gRPC-Web on one handler),
// validates requests at the boundary, forwards writes to the Raft leader, and keeps agent
// liveness in the leader's memory.
package controller

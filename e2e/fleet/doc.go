// Package fleet runs a whole Ebbflow fleet on this machine, for the e2e scenarios and the demo:
// a fleet-controller Raft group of real processes, kubebox clusters with the test Cilium chart
// and a kube-proxy DaemonSet, and per cluster a real latency target and a fleet-agent process.
// Everything binds 127.0.0.1 on free ports.
package fleet

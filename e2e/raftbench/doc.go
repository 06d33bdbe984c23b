// Package raftbench measures fleet-controller's replicated write path and its failover side by
// side with etcd, the reference Raft store: a 3-node fleet-controller group (--insecure, h2c,
// fresh data directories on 127.0.0.1) and a 3-node etcd cluster (plain HTTP, default flags)
// run on the same machine, and the same closed-loop load runs against each in turn.
//
// Writes mode: for each concurrency N, N clients each write their own key (an ebbflow cluster's
// labels via SetClusterLabels over gRPC; an etcd key via clientv3) with a fresh value of about
// --value-size bytes for --duration, and every acknowledged write's latency is kept. The sides
// are interleaved (rotated every round) and the table shows the median over rounds of writes/s,
// p50 and p99, with the ratios ebbflow/etcd (and ebbflow/ref when a reference fleet-controller,
// e.g. a previous revision, runs as a third side).
//
// Failover mode: a steady write load runs against one side while its leader is SIGKILLed; the
// figure is the time from the kill to the first acknowledged write sent after it through a
// surviving node. The killed node then restarts on its data directory and the group must be
// healthy again (three voters, a leader, the node caught up) before the next kill. Every key is
// then read linearizably and compared with the last acknowledged write (a sequence number in
// the value): a lower value is a lost acknowledged write, unless that value is one of the key's
// unacknowledged (timed-out) writes, which may legally apply late.
//
// The command is e2e/cmd/raftbench (make bench-raft).
package raftbench

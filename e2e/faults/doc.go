// Package faults runs a real fleet-controller group as processes, injects faults from a seed
// (SIGKILL and restart, SIGSTOP pauses longer than an election, network partitions between
// per-node network namespaces, a full disk, membership changes) while concurrent clients read
// and write a few keys through the public API, and checks what the clients saw: porcupine
// checks the history against a per-key compare-and-set register, then the final state is
// checked for lost acknowledged writes, failed writes that show up anyway and replicas that
// differ.
//
// The kinds are kill, pause, partition-minority, partition-leader, partition-bridge,
// disk-full and membership (see Kind). disk-full fills the tmpfs a node's data directory
// lives on (each node gets one of DefaultDiskSize in runs that plan the kind), the leader's
// about half the time, holds it full past an election, then frees it; a node that ended on
// the full disk (the state database's commit fails, and the store stops rather than go on
// without the entries) is restarted on its data like a killed one, and must catch up.
// membership removes a voter, the leader about four times in ten, with RemoveServer, keeps it
// out for a second or three (two voters of three), then adds it back with AddVoter (a removed
// follower) or restarts it to join again (a removed leader has shut its Raft down; with
// Fresh, any removed node comes back empty with --rejoin), and waits until it is a voter and
// caught up.
//
// Partitions need root (ip netns, veth pairs), the full disk root and mount(2) (tmpfs); without
// them they are skipped and said so. The short runs are TestShortRuns; `make chaos RUNS=N
// SEED=S` runs many (e2e/cmd/chaos) and prints a table.
package faults

// Package faults runs a real fleet-controller group as processes, injects faults from a seed
// (SIGKILL and restart, SIGSTOP pauses longer than an election, network partitions between
// per-node network namespaces) while concurrent clients read and write a few keys through the
// public API, and checks what the clients saw: porcupine checks the history against a
// per-key compare-and-set register, then the final state is checked for lost acknowledged
// writes, failed writes that show up anyway and replicas that differ.
//
// Partitions need root (ip netns, veth pairs); without it they are skipped and said so. The
// short runs are TestShortRuns; `make chaos RUNS=N SEED=S` runs many (e2e/cmd/chaos) and
// prints a table.
package faults

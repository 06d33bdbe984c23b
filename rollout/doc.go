// Package rollout is Ebbflow's pure rollout logic: wave planning, the phase state machine, gates
// and regression statistics. No I/O; time is injected.
//
// The decisions (Step, Ingest, Pause, Resume, Approve, Skip, Abort, Rollback) never mutate
// their input and are copy-on-write: the rollout they return has a new header and new waves,
// but shares with the input every cluster record the decision left alone; a record it changes
// is deep-cloned first. A decision on a rollout of N clusters therefore costs O(N) pointer work
// plus deep work on the records it changes, and an agent report changes one record. Both the
// input and the result must be treated as read-only: writing into one record of the result
// can write into the input. Clone a rollout (proto.Clone) before editing it in place.
// update_time moves with the header only: a decision that changes cluster records alone (an
// agent report, Skip, a cluster's Approve or Rollback, a Step that only assigns) leaves the
// header as it was.
//
// Diff(input, result) says what a decision changed, the header and which records, so a store
// that keeps one record per cluster writes only those. AssignmentFor, Holds and Match are the
// rules that derive an agent's assignment from its cluster's record and check its reports.
package rollout

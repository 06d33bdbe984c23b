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
// # Worked example: gates and failure policies
//
// One wave of 25 clusters with max_failures 10%, max_concurrency 5 and soak_time 10m:
//
//   - Concurrency: Step hands out assignments to the first 5 clusters; a cluster between two
//     phases keeps its slot, so the 6th starts only when one of the 5 is done (SUCCEEDED,
//     FAILED, ROLLED_BACK, UNKNOWN or SKIPPED).
//   - Max failures: 10% of 25 is int(10) * 25 / 100 = 2 tolerated failures (a failure is a
//     cluster FAILED, ROLLING_BACK, ROLLED_BACK or UNKNOWN). With 2 the wave goes on; the 3rd
//     fails the wave (3 > 2): clusters still applying stop (their action becomes IDLE), later
//     waves never start, and the rollout ends FAILED once nothing rolls back any more.
//   - Failure policy: under ROLLBACK_FAILED_CLUSTERS (the default) each failing cluster rolls
//     itself back (if it changed anything) and the other 22 keep their change. Under
//     ROLLBACK_WAVE the wave's failure also rolls back every cluster of the wave that was given
//     a phase beyond the baseline (preflight-held phases do not count), succeeded ones
//     included; the wave ends ROLLED_BACK and so does the rollout. Under HALT_ONLY nothing
//     rolls back.
//   - Soak: when every cluster is done, the wave soaks for 10m counted from the latest
//     measured report of the wave (not from the moment Step noticed), then SUCCEEDED; a wave
//     whose last report came at 12:00 and was noticed at 12:03 moves on at 12:10.
//
// Diff(input, result) says what a decision changed, the header and which records, so a store
// that keeps one record per cluster writes only those. AssignmentFor, Holds and Match are the
// rules that derive an agent's assignment from its cluster's record and check its reports.
package rollout

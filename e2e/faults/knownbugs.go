package faults

import (
	"fmt"
	"slices"
	"sort"
)

// RerunAfterLeadershipLost is the bug the harness found (seed 1), fixed since (a proposal whose
// leader is lost is store.ErrOutcomeUnknown, the API's UNKNOWN, never forwarded or run again);
// the harness still looks for its marks in every history. It was: a leader-only call
// whose Raft proposal fails with raft.ErrLeadershipLost ("leadership lost while committing
// log") is re-run on the new leader. store.raftErr wraps that error in store.ErrNotLeader,
// and controller.Server.run forwards any call whose handler returned an error that
// errors.Is(store.ErrNotLeader). But ErrLeadershipLost does not mean the entry was not
// committed: when it was, the new leader runs the call a second time. A compare-and-set
// (SetClusterLabels with expected_generation, UpdateProfile with expected_revision) then
// answers ABORTED although it was applied; a plain write is applied twice (two generations,
// two profile revisions); other writes would be duplicated the same way.
const RerunAfterLeadershipLost = "leader-only call re-run on the new leader after raft.ErrLeadershipLost (controller.Server.run forwards on a wrapped store.ErrNotLeader)"

// RerunSignatures lists the marks RerunAfterLeadershipLost leaves in a history: a
// compare-and-set answered ABORTED whose value was stored anyway, a value stored at two
// versions (one write applied twice), an acknowledged write whose value was stored at another
// version than the one its answer gave. stored holds every version the API keeps of a key.
func RerunSignatures(ops []Op, stored map[string][]State) []string {
	seenAt := map[string]map[string][]uint64{}
	see := func(k string, st State) {
		if seenAt[k] == nil {
			seenAt[k] = map[string][]uint64{}
		}
		if !slices.Contains(seenAt[k][st.Value], st.Version) {
			seenAt[k][st.Value] = append(seenAt[k][st.Value], st.Version)
		}
	}
	for _, op := range ops {
		if op.Input.Kind == OpRead && op.Output.Outcome == OK {
			see(op.Input.Key, op.Output.State)
		}
	}
	for k, sts := range stored {
		for _, st := range sts {
			see(k, st)
		}
	}
	var out []string
	for _, op := range ops {
		k, v := op.Input.Key, op.Input.Value
		vs := seenAt[k][v]
		if len(vs) == 0 || (op.Input.Kind != OpWrite && op.Input.Kind != OpCAS) {
			continue
		}
		switch {
		case op.Output.Outcome == Conflict:
			out = append(out, fmt.Sprintf("%s: cas %q on version %d answered %q, yet stored at version %v", k, v, op.Input.Expect, op.Note, vs))
		case op.Output.Outcome == OK && !slices.Contains(vs, op.Output.State.Version):
			out = append(out, fmt.Sprintf("%s: write %q acknowledged as version %d, stored at version %v", k, v, op.Output.State.Version, vs))
		}
	}
	for k, byValue := range seenAt {
		for v, vs := range byValue {
			if len(vs) > 1 {
				slices.Sort(vs)
				out = append(out, fmt.Sprintf("%s: value %q stored at versions %v: one write applied twice", k, v, vs))
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

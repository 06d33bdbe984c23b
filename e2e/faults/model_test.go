package faults

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds a history entry over [call, ret].
func op(client int, kind OpKind, value string, expect uint64, out Outcome, st State, call, ret int64) Op {
	return Op{Client: client, Input: Input{Key: "k", Kind: kind, Value: value, Expect: expect},
		Output: Output{Outcome: out, State: st}, Call: call, Return: ret}
}

var initK = op(0, OpInit, "init", 1, OK, State{"init", 1}, 0, 1)

// The checker accepts what a register allows and refuses what it does not: each case is a
// history and whether porcupine must find it linearizable.
func TestCheckHistories(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
		ok   bool
	}{
		{"sequential write then read", []Op{initK,
			op(1, OpWrite, "a", 0, OK, State{"a", 2}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"a", 2}, 4, 5)}, true},
		{"stale read after an acknowledged write", []Op{initK,
			op(1, OpWrite, "a", 0, OK, State{"a", 2}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"init", 1}, 4, 5)}, false},
		{"read concurrent with a write may see either", []Op{initK,
			op(1, OpWrite, "a", 0, OK, State{"a", 2}, 2, 6),
			op(2, OpRead, "", 0, OK, State{"init", 1}, 3, 4)}, true},
		{"a failed write never shows", []Op{initK,
			op(1, OpWrite, "a", 0, Failed, State{}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"a", 2}, 4, 5)}, false},
		{"an unknown write may show late", []Op{initK,
			op(1, OpWrite, "a", 0, Unknown, State{}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"init", 1}, 4, 5),
			op(2, OpRead, "", 0, OK, State{"a", 2}, 6, 7)}, true},
		{"an unknown write may never show", []Op{initK,
			op(1, OpWrite, "a", 0, Unknown, State{}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"init", 1}, 4, 5)}, true},
		{"an unknown write cannot show before it was called", []Op{initK,
			op(2, OpRead, "", 0, OK, State{"a", 2}, 2, 3),
			op(1, OpWrite, "a", 0, Unknown, State{}, 4, 5)}, false},
		{"values never go back", []Op{initK,
			op(1, OpWrite, "a", 0, Unknown, State{}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"a", 2}, 4, 5),
			op(2, OpRead, "", 0, OK, State{"init", 1}, 6, 7)}, false},
		{"cas on the current version", []Op{initK,
			op(1, OpCAS, "a", 1, OK, State{"a", 2}, 2, 3),
			op(2, OpCAS, "b", 1, Conflict, State{}, 4, 5),
			op(2, OpRead, "", 0, OK, State{"a", 2}, 6, 7)}, true},
		{"cas refused although the version matched", []Op{initK,
			op(1, OpCAS, "a", 1, Conflict, State{}, 2, 3),
			op(2, OpRead, "", 0, OK, State{"init", 1}, 4, 5)}, false},
		{"two cas on one version both acknowledged", []Op{initK,
			op(1, OpCAS, "a", 1, OK, State{"a", 2}, 2, 5),
			op(2, OpCAS, "b", 1, OK, State{"b", 2}, 3, 6)}, false},
		{"an acknowledged version skipped", []Op{initK,
			op(1, OpWrite, "a", 0, OK, State{"a", 3}, 2, 3)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			v, err := Check(c.ops, nil, []Injected{{Fault: Fault{Kind: Pause}, Targets: "ctl-1", Start: 1, End: 4}}, dir, "h", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Result == porcupine.Ok; got != c.ok {
				t.Fatalf("linearizable %v, want %v (%s)", got, c.ok, v.Result)
			}
			if c.ok {
				if v.Visualization != "" {
					t.Fatalf("visualisation %s for a linearizable history", v.Visualization)
				}
				return
			}
			b, err := os.ReadFile(v.Visualization)
			if err != nil {
				t.Fatalf("no visualisation: %v", err)
			}
			if !strings.Contains(string(b), "pause ctl-1") {
				t.Fatalf("visualisation %s does not show the fault", v.Visualization)
			}
		})
	}
}

// A seed gives one schedule; another seed another; every kind comes up in a 30 s run, faults
// stay within the run's length, and pauses outlast the election timeout.
func TestSchedule(t *testing.T) {
	const election = time.Second
	a := Schedule(7, 3, 20*time.Second, AllKinds, election)
	b := Schedule(7, 3, 20*time.Second, AllKinds, election)
	c := Schedule(8, 3, 20*time.Second, AllKinds, election)
	if describePlan(a) != describePlan(b) {
		t.Fatalf("seed 7 twice:\n%s\n%s", describePlan(a), describePlan(b))
	}
	if describePlan(a) == describePlan(c) {
		t.Fatalf("seeds 7 and 8 plan alike: %s", describePlan(a))
	}
	for _, seed := range []int64{1, 2, 3, 7, 8} {
		plan := Schedule(seed, 3, 30*time.Second, AllKinds, election)
		var kinds []Kind
		for i, f := range plan {
			if f.At >= 30*time.Second || (i > 0 && f.At < plan[i-1].At+plan[i-1].Hold) {
				t.Fatalf("seed %d: fault %s overlaps or ends the run: %s", seed, f, describePlan(plan))
			}
			if f.Kind == Pause && f.Hold <= 2*election {
				t.Fatalf("seed %d: pause %s not longer than an election", seed, f)
			}
			if f.Kind == PartitionMinority && (len(f.Nodes) == 0 || len(f.Nodes) > 1) {
				t.Fatalf("seed %d: minority of 3 is %v", seed, f.Nodes)
			}
			if (f.Kind == DiskFull || f.Kind == Membership) && len(f.Nodes) != 1 {
				t.Fatalf("seed %d: %s hits %v, not one node", seed, f, f.Nodes)
			}
			if f.Kind == DiskFull && f.Hold <= 2*election {
				t.Fatalf("seed %d: full disk %s not held past an election", seed, f)
			}
			if f.Fresh && f.Kind != Membership {
				t.Fatalf("seed %d: %s fresh", seed, f)
			}
			kinds = append(kinds, f.Kind)
		}
		for _, k := range AllKinds {
			if !slices.Contains(kinds, k) {
				t.Fatalf("seed %d: no %s in %s", seed, k, describePlan(plan))
			}
		}
	}
	// make chaos RUNS=100 (20-second runs) plans every kind in at least 20 runs, and the two
	// newest hit the leader, a follower, and (membership) come back empty, each several times.
	runsWith, leader, follower, fresh := map[Kind]int{}, map[Kind]int{}, map[Kind]int{}, 0
	for seed := int64(1000); seed < 1100; seed++ {
		seen := map[Kind]bool{}
		for _, f := range Schedule(seed, 3, 20*time.Second, AllKinds, election) {
			seen[f.Kind] = true
			if f.Leader {
				leader[f.Kind]++
			} else {
				follower[f.Kind]++
			}
			if f.Fresh {
				fresh++
			}
		}
		for k := range seen {
			runsWith[k]++
		}
	}
	for _, k := range AllKinds {
		if runsWith[k] < 20 {
			t.Errorf("100 runs plan %s in %d runs: %v", k, runsWith[k], runsWith)
		}
	}
	for _, k := range []Kind{DiskFull, Membership} {
		if leader[k] < 10 || follower[k] < 10 {
			t.Errorf("100 runs plan %s on the leader %d times, on a follower %d", k, leader[k], follower[k])
		}
	}
	if fresh < 10 {
		t.Errorf("100 runs plan %d fresh membership changes", fresh)
	}
	five := Schedule(3, 5, time.Minute, []Kind{PartitionMinority}, election)
	for _, f := range five {
		if len(f.Nodes) < 1 || len(f.Nodes) > 2 {
			t.Fatalf("minority of 5 is %v", f.Nodes)
		}
	}
}

// Resolve settles unknown writes from what was seen: a value seen took effect at the version it
// was seen at, and when every version is accounted for, a value never seen did not.
func TestResolve(t *testing.T) {
	ops := []Op{initK,
		op(1, OpWrite, "a", 0, Unknown, State{}, 2, 3),
		op(2, OpWrite, "b", 0, Unknown, State{}, 2, 3),
		op(3, OpWrite, "c", 0, OK, State{"c", 3}, 4, 5),
		op(2, OpRead, "", 0, OK, State{"c", 3}, 6, 7),
		op(1, OpWrite, "d", 0, Failed, State{}, 6, 7),
		// Called once version 3 was acknowledged: it cannot have made version 2.
		op(4, OpWrite, "e", 0, Unknown, State{}, 8, 9),
	}
	// Version 2 is nobody's yet: "a" and "b" stay open; "d" failed and "e" came too late.
	got := Resolve(ops, nil)
	if len(got) != 5 || got[1].Output.Outcome != Unknown || got[2].Output.Outcome != Unknown {
		t.Fatalf("unresolved: %+v", got)
	}
	// The stored versions show "a" at 2: it took effect, "b" did not.
	got = Resolve(ops, map[string][]State{"k": {{"c", 3}, {"a", 2}, {"init", 1}}})
	if len(got) != 4 || got[1].Input.Value != "a" || got[1].Output != (Output{Outcome: Observed, State: State{"a", 2}}) {
		t.Fatalf("resolved: %+v", got)
	}
	v, err := Check(ops, map[string][]State{"k": {{"c", 3}, {"a", 2}, {"init", 1}}}, nil, t.TempDir(), "h", 10*time.Second)
	if err != nil || v.Result != porcupine.Ok {
		t.Fatalf("check: %v, %v", v, err)
	}
}

// The known bug's marks: a compare-and-set refused yet stored, a value stored twice, an
// acknowledged version other than the one stored.
func TestRerunSignatures(t *testing.T) {
	clean := []Op{initK,
		op(1, OpCAS, "a", 1, OK, State{"a", 2}, 2, 3),
		op(2, OpCAS, "b", 1, Conflict, State{}, 4, 5),
		op(2, OpRead, "", 0, OK, State{"a", 2}, 6, 7)}
	if s := RerunSignatures(clean, map[string][]State{"k": {{"a", 2}, {"init", 1}}}); len(s) != 0 {
		t.Fatalf("clean history: %v", s)
	}
	rerun := []Op{initK,
		op(1, OpCAS, "a", 1, Conflict, State{}, 2, 3),
		op(2, OpWrite, "b", 0, OK, State{"b", 4}, 4, 5)}
	s := RerunSignatures(rerun, map[string][]State{"k": {{"b", 4}, {"b", 3}, {"a", 2}, {"init", 1}}})
	if len(s) != 2 {
		t.Fatalf("rerun history: %d marks %v, want 2", len(s), s)
	}
	// A cluster keeps only its latest labels: the first application was read, the answer
	// came from the second.
	reread := append(rerun[:1:1], op(2, OpWrite, "b", 0, OK, State{"b", 3}, 4, 5), op(3, OpRead, "", 0, OK, State{"b", 2}, 4, 5))
	if s := RerunSignatures(reread, nil); len(s) != 1 {
		t.Fatalf("reread history: %v", s)
	}
}

package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is what an operation of the history does to its key.
type OpKind int

const (
	// OpInit sets a key's state as the harness created it, before any client ran.
	OpInit OpKind = iota
	// OpRead reads the key linearizably: its value and version.
	OpRead
	// OpWrite sets the value unconditionally; the version grows by one.
	OpWrite
	// OpCAS sets the value only if the version is Input.Expect (SetClusterLabels'
	// expected_generation, UpdateProfile's expected_revision).
	OpCAS
)

func (k OpKind) String() string {
	switch k {
	case OpInit:
		return "init"
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpCAS:
		return "cas"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Outcome is how an operation ended, as its client saw it.
type Outcome int

const (
	// OK: acknowledged; Output holds what the server answered.
	OK Outcome = iota
	// Conflict: a compare-and-set refused (ABORTED) because the version differed; nothing was
	// written.
	Conflict
	// Failed: refused for certain (NOT_FOUND, INVALID_ARGUMENT, ...); nothing was written.
	Failed
	// Unknown: timed out, reset or UNAVAILABLE after it may have reached the leader; it may
	// or may not have been applied.
	Unknown
	// Observed: an Unknown write whose value was seen later, so it took effect (Resolve).
	Observed
)

func (o Outcome) String() string {
	return [...]string{"ok", "conflict", "failed", "unknown", "observed"}[o]
}

// State is a key's state in the model: a register holding a value, with a version that grows
// by one on every write (a cluster's generation, a profile's revision).
type State struct {
	Value   string
	Version uint64
}

// Input is an operation's call.
type Input struct {
	Key    string
	Kind   OpKind
	Value  string // written (write, cas) or set (init)
	Expect uint64 // cas: the version it expects; init: the version
}

// Output is an operation's answer.
type Output struct {
	Outcome Outcome
	// State is what a read returned, or the value and version a write's answer carried.
	State State
}

// Step is the sequential specification of one key. A write whose outcome is Unknown takes
// effect here (when its condition holds); Model adds the case where it does not.
func Step(s State, in Input, out Output) (bool, State) {
	switch in.Kind {
	case OpInit:
		return true, State{Value: in.Value, Version: in.Expect}
	case OpRead:
		return out.State == s, s
	case OpWrite:
		next := State{Value: in.Value, Version: s.Version + 1}
		if out.Outcome == Unknown {
			return true, next
		}
		return (out.Outcome == OK || out.Outcome == Observed) && out.State == next, next
	case OpCAS:
		next := State{Value: in.Value, Version: s.Version + 1}
		switch out.Outcome {
		case Unknown:
			if s.Version == in.Expect {
				return true, next
			}
			return true, s
		case Conflict:
			return s.Version != in.Expect, s
		case OK, Observed:
			return s.Version == in.Expect && out.State == next, next
		}
	}
	return false, s
}

// Model is the porcupine model of the keys the clients touch: one register (with
// compare-and-set on its version) per key, checked key by key. It is nondeterministic in one
// place: a write whose outcome is Unknown may or may not take effect (Step decides the rest),
// so such a write can be given a return time (Resolve) by which it took effect if it did.
var Model = nondeterministic.ToModel()

var nondeterministic = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(Input).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{State{}} },
	Step: func(s, in, out any) []any {
		st, i, o := s.(State), in.(Input), out.(Output)
		if o.Outcome == Unknown && (i.Kind == OpWrite || i.Kind == OpCAS) {
			_, next := Step(st, i, o)
			if next == st {
				return []any{st}
			}
			return []any{st, next}
		}
		if ok, next := Step(st, i, o); ok {
			return []any{next}
		}
		return nil
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(Input), out.(Output)
		switch i.Kind {
		case OpInit:
			return fmt.Sprintf("init(%s) = %q@%d", i.Key, i.Value, i.Expect)
		case OpRead:
			return fmt.Sprintf("read(%s) -> %q@%d", i.Key, o.State.Value, o.State.Version)
		case OpWrite:
			if o.Outcome == OK || o.Outcome == Observed {
				return fmt.Sprintf("write(%s, %q) -> %s@%d", i.Key, i.Value, o.Outcome, o.State.Version)
			}
			return fmt.Sprintf("write(%s, %q) -> %s", i.Key, i.Value, o.Outcome)
		case OpCAS:
			if o.Outcome == OK || o.Outcome == Observed {
				return fmt.Sprintf("cas(%s, @%d, %q) -> %s@%d", i.Key, i.Expect, i.Value, o.Outcome, o.State.Version)
			}
			return fmt.Sprintf("cas(%s, @%d, %q) -> %s", i.Key, i.Expect, i.Value, o.Outcome)
		}
		return fmt.Sprintf("%v -> %v", i, o)
	},
	DescribeState: func(s any) string {
		st := s.(State)
		return fmt.Sprintf("%q@%d", st.Value, st.Version)
	},
}

// Verdict is the outcome of a linearizability check.
type Verdict struct {
	Result porcupine.CheckResult
	// Visualization is the HTML file porcupine wrote for an illegal history; empty
	// otherwise.
	Visualization string
}

// Resolve settles what the history itself tells of writes whose outcome was Unknown, so that
// the search need not consider each of them anywhere up to the end of the history (which
// grows exponentially with their number). Every value written is unique and every write that
// takes effect adds one to the key's version, so:
//   - an Unknown write whose value was seen (by a read, or in stored, every version the key
//     ever had where the API keeps them) took effect: it becomes Observed with the version it
//     was seen at, returning no later than it was first seen;
//   - an Unknown write never seen could only have made a version nobody saw (a gap between
//     the versions writes acknowledged or reads returned); it cannot have made one once a
//     later version had been seen or acknowledged, so one called after the answer that
//     first showed a version above every gap did not take effect: it is dropped (all of
//     them when there is no gap).
//
// The rest stay Unknown. Failed writes are dropped: they changed nothing.
func Resolve(ops []Op, stored map[string][]State) []Op {
	type seen struct {
		version uint64
		ret     int64
	}
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	values := map[string]map[string]seen{}
	first, last := map[string]uint64{}, map[string]uint64{}
	// shown[k][v] is the earliest return of an answer that showed version v of k.
	shown := map[string]map[uint64]int64{}
	show := func(key string, version uint64, ret int64) {
		if shown[key] == nil {
			shown[key] = map[uint64]int64{}
		}
		if t, ok := shown[key][version]; !ok || ret < t {
			shown[key][version] = ret
		}
		last[key] = max(last[key], version)
	}
	note := func(key string, st State, ret int64) {
		if values[key] == nil {
			values[key] = map[string]seen{}
		}
		if v, ok := values[key][st.Value]; !ok || ret < v.ret {
			values[key][st.Value] = seen{st.Version, ret}
		}
		show(key, st.Version, ret)
	}
	for _, op := range ops {
		k := op.Input.Key
		switch {
		case op.Input.Kind == OpInit:
			first[k] = op.Input.Expect
			note(k, State{Value: op.Input.Value, Version: op.Input.Expect}, op.Return)
		case op.Input.Kind == OpRead && op.Output.Outcome == OK:
			note(k, op.Output.State, op.Return)
		case op.Output.Outcome == OK:
			show(k, op.Output.State.Version, op.Return)
		}
	}
	for k, sts := range stored {
		for _, st := range sts {
			note(k, st, end)
		}
	}
	// sealed[k]: from this time on no gap of k can be filled any more (-1: there is none).
	sealed := map[string]int64{}
	for k, vs := range shown {
		var top uint64 // the highest version nobody showed
		for v := first[k] + 1; v <= last[k]; v++ {
			if _, ok := vs[v]; !ok {
				top = v
			}
		}
		sealed[k] = -1
		if top > 0 {
			sealed[k] = end + 1
			for v, t := range vs {
				if v > top {
					sealed[k] = min(sealed[k], t)
				}
			}
		}
	}
	out := make([]Op, 0, len(ops))
	for _, op := range ops {
		if op.Output.Outcome == Failed {
			continue
		}
		if op.Output.Outcome == Unknown {
			k := op.Input.Key
			if v, ok := values[k][op.Input.Value]; ok {
				op.Output = Output{Outcome: Observed, State: State{Value: op.Input.Value, Version: v.version}}
				op.Return = end + 1
				if v.ret >= op.Call {
					op.Return = v.ret
				}
			} else if op.Call > sealed[k] {
				continue
			} else {
				// If it took effect, it made a version below the seal, so before it.
				op.Return = max(op.Return, sealed[k])
			}
		}
		out = append(out, op)
	}
	return out
}

// Check runs porcupine on ops, resolved first (Resolve) with stored, every version of each key
// the API keeps. A write still Unknown may or may not take effect, at any point between its
// call and the bound Resolve gave it. When the history is not linearizable the visualisation,
// with the faults as annotations, is written to dir and named in the Verdict.
func Check(ops []Op, stored map[string][]State, faults []Injected, dir string, name string, timeout time.Duration) (Verdict, error) {
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	var hist []porcupine.Operation
	for _, op := range Resolve(ops, stored) {
		ret := op.Return
		if op.Output.Outcome == Unknown && ret > end {
			ret = end + 1
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: op.Input, Output: op.Output, Call: op.Call, Return: ret,
			Metadata: op.Note})
	}
	v := Verdict{Result: porcupine.CheckOperationsTimeout(Model, hist, timeout)}
	if v.Result != porcupine.Illegal {
		// Ok, or undecided in time (Unknown): a second search for the visualisation would
		// most likely run out of time as well.
		return v, nil
	}
	// Again, keeping what the visualisation needs (slower).
	res, info := porcupine.CheckOperationsVerbose(Model, hist, timeout)
	if res == porcupine.Ok {
		v.Result = res
		return v, nil
	}
	var ann []porcupine.Annotation
	for _, f := range faults {
		ann = append(ann, porcupine.Annotation{Tag: "faults", Start: f.Start, End: max(f.End, f.Start), Description: f.Describe(),
			BackgroundColor: "#f4c7c3"})
	}
	info.AddAnnotations(ann)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return v, err
	}
	v.Visualization = filepath.Join(dir, name+".html")
	if err := porcupine.VisualizePath(Model, info, v.Visualization); err != nil {
		return v, err
	}
	return v, nil
}

package rollout

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// manual runs one manual action, copy-on-write on r (see recorder.begin); the action returns
// an error to refuse, and writes records only through e.own.
func manual(r *ebbflowv1.Rollout, actor string, now time.Time, act func(n *ebbflowv1.Rollout, e *recorder) error) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	if r == nil {
		return nil, nil, fmt.Errorf("%w: no rollout", ErrInvalidAction)
	}
	if actor == "" {
		return r, nil, fmt.Errorf("%w: no actor", ErrInvalidAction)
	}
	e := &recorder{now: now, actor: actor}
	n := e.begin(r)
	if err := act(n, e); errors.Is(err, errUnchanged) {
		return r, nil, nil // the same rollout back: nothing to write
	} else if err != nil {
		return r, nil, err
	}
	e.done(r, n)
	return n, e.events, nil
}

// ownCluster returns the named cluster's record for writing, with its wave's index, or nil.
func ownCluster(n *ebbflowv1.Rollout, name string, e *recorder) (int32, *ebbflowv1.RolloutCluster) {
	w, i := locate(n, name, -1, -1)
	if w < 0 {
		return NoWave, nil
	}
	wv := n.Waves[w]
	return wv.Index, e.own(wv, i)
}

// errUnchanged ends a manual action that asks for what already is (pausing a paused rollout,
// resuming a running one): manual returns the rollout itself, unchanged, which callers take as
// "nothing to write". Repeating a control is a no-op, as with kubectl, not an error.
var errUnchanged = errors.New("unchanged")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidAction, fmt.Sprintf(format, args...))
}

func notTerminal(n *ebbflowv1.Rollout) error {
	if Terminal(n.State) {
		return invalid("rollout %s is %s", n.Id, stateName(n.State))
	}
	return nil
}

// Pause stops new assignments. Clusters in flight keep reporting, and silence still turns
// them UNKNOWN.
func Pause(r *ebbflowv1.Rollout, actor, reason string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return manual(r, actor, now, func(n *ebbflowv1.Rollout, e *recorder) error {
		switch n.State {
		case rPending, rRunning, rWaiting:
		case rPaused:
			return errUnchanged
		default:
			return invalid("rollout %s is %s; only a pending, running or waiting rollout can be paused", n.Id, stateName(n.State))
		}
		n.State = rPaused
		n.Message = fmt.Sprintf("paused by %s", actor)
		if reason != "" {
			n.Message += ": " + reason
		}
		e.add("pause", NoWave, "", phNone, "%s", n.Message)
		return nil
	})
}

// Resume lets a paused rollout run again.
func Resume(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return manual(r, actor, now, func(n *ebbflowv1.Rollout, e *recorder) error {
		switch n.State {
		case rPaused:
		case rPending, rRunning, rWaiting:
			return errUnchanged
		default:
			return invalid("rollout %s is %s, not paused", n.Id, stateName(n.State))
		}
		n.State, n.Message = rRunning, "resumed by "+actor
		e.add("resume", NoWave, "", phNone, "%s", n.Message)
		return nil
	})
}

// Approve opens wave's approval gate (cluster empty), or accepts the inconclusive result of
// cluster (wave -1), which then continues as if its phase had passed.
func Approve(r *ebbflowv1.Rollout, wave int32, cluster string, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return manual(r, actor, now, func(n *ebbflowv1.Rollout, e *recorder) error {
		if err := notTerminal(n); err != nil {
			return err
		}
		switch {
		case cluster != "" && wave >= 0:
			return invalid("approve either a wave or a cluster, not both")
		case cluster != "":
			wi, c := ownCluster(n, cluster, e)
			if c == nil {
				return invalid("cluster %q is not in rollout %s", cluster, n.Id)
			}
			if c.State != cWaiting {
				return invalid("cluster %s is %s, not waiting for approval", cluster, stateName(c.State))
			}
			if res := result(c, c.Phase); res != nil {
				res.Reason += "; accepted by " + actor
			}
			e.add("approve", wi, cluster, c.Phase, "inconclusive result accepted by %s", actor)
			c.Reason = ""
			passCluster(n, wi, c, now, e)
			return nil
		case wave < 0 || int(wave) >= len(n.Waves):
			return invalid("rollout %s has no wave %d (it has %d)", n.Id, wave, len(n.Waves))
		}
		wv := n.Waves[wave]
		switch {
		case !wv.GetGates().GetRequireApproval():
			return invalid("wave %s has no approval gate", wv.Name)
		case wv.Approved:
			return invalid("wave %s is already approved (by %s)", wv.Name, wv.ApprovedBy)
		case wv.State != wPending && wv.State != wWaiting:
			return invalid("wave %s is %s", wv.Name, stateName(wv.State))
		}
		wv.Approved, wv.ApprovedBy = true, actor
		if n.State == rWaiting {
			n.State, n.Message = rRunning, fmt.Sprintf("wave %s approved by %s", wv.Name, actor)
		}
		e.add("approve", wave, "", phNone, "wave %s approved by %s", wv.Name, actor)
		return nil
	})
}

// Skip takes a cluster out of the rollout: it stays listed, SKIPPED with the reason, and its
// action becomes IDLE. A cluster that succeeded or rolls back cannot be skipped.
func Skip(r *ebbflowv1.Rollout, cluster, reason, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return manual(r, actor, now, func(n *ebbflowv1.Rollout, e *recorder) error {
		if err := notTerminal(n); err != nil {
			return err
		}
		wi, c := ownCluster(n, cluster, e)
		if c == nil {
			return invalid("cluster %q is not in rollout %s", cluster, n.Id)
		}
		switch c.State {
		case cSkipped, cSucceeded, cRollingBack, cRolledBack:
			return invalid("cluster %s is %s and cannot be skipped", cluster, stateName(c.State))
		}
		c.State, c.Action = cSkipped, aIdle
		c.Reason = fmt.Sprintf("skipped by %s", actor)
		if reason != "" {
			c.Reason += ": " + reason
		}
		e.add("skip", wi, cluster, c.Phase, "%s", c.Reason)
		return nil
	})
}

// Abort ends the rollout: no new assignments; clusters keep what they have and any in flight
// get action IDLE.
func Abort(r *ebbflowv1.Rollout, reason, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return manual(r, actor, now, func(n *ebbflowv1.Rollout, e *recorder) error {
		if err := notTerminal(n); err != nil {
			return err
		}
		msg := "aborted by " + actor
		if reason != "" {
			msg += ": " + reason
		}
		halt(n, msg, true, e)
		finish(n, rAborted, msg, e)
		return nil
	})
}

// RollbackTarget names what Rollback rolls back: one cluster, one wave (by index, used when
// Cluster is empty and All is false), or the whole rollout.
type RollbackTarget struct {
	Cluster string
	Wave    int32
	All     bool
}

// Rollback orders rollbacks to the pre-rollout Helm revision, always in full (a cluster whose
// earlier rollback undid only kpr node batches included). A cluster: only that cluster, and
// the rollout goes on (the cluster counts as a failure of its wave). A wave or all: every
// cluster (of the wave, or of every started wave) that changed anything; in-flight clusters
// stop, those waves become ROLLED_BACK, and the rollout ends ROLLED_BACK once the rollbacks
// are reported.
func Rollback(r *ebbflowv1.Rollout, target RollbackTarget, reason, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return manual(r, actor, now, func(n *ebbflowv1.Rollout, e *recorder) error {
		if err := notTerminal(n); err != nil {
			return err
		}
		if (target.All && target.Cluster != "") || ((target.All || target.Cluster != "") && target.Wave > 0) {
			return invalid("roll back exactly one of a cluster, a wave, or all")
		}
		why := "rollback by " + actor
		if reason != "" {
			why += ": " + reason
		}
		if target.Cluster != "" {
			wi, c := ownCluster(n, target.Cluster, e)
			if c == nil {
				return invalid("cluster %q is not in rollout %s", target.Cluster, n.Id)
			}
			switch c.State {
			case cRollingBack, cRolledBack, cSkipped:
				if !batchRolledBack(c) { // a rollback of kpr node batches only is rolled back in full
					return invalid("cluster %s is %s", c.Cluster, stateName(c.State))
				}
			}
			if !changed(c) {
				return invalid("cluster %s has nothing to roll back: no phase past the baseline was applied", c.Cluster)
			}
			c.Reason = why
			rollbackAssign(n, wi, c, why, 0, now, e)
			return nil
		}
		var waves []*ebbflowv1.Wave
		switch {
		case target.All:
			for _, wv := range n.Waves {
				if wv.State != wPending && wv.State != wWaiting {
					waves = append(waves, wv)
				}
			}
		case target.Wave < 0 || int(target.Wave) >= len(n.Waves):
			return invalid("rollout %s has no wave %d (it has %d)", n.Id, target.Wave, len(n.Waves))
		default:
			wv := n.Waves[target.Wave]
			if wv.State == wPending || wv.State == wWaiting {
				return invalid("wave %s has not started", wv.Name)
			}
			waves = append(waves, wv)
		}
		halt(n, "halted: "+why, false, e)
		for _, wv := range waves {
			for i, c := range wv.Clusters {
				if rollbackDue(c) {
					c = e.own(wv, i)
					c.Reason = why
					rollbackAssign(n, wv.Index, c, why, 0, now, e)
				}
			}
			wv.State = wRolledBack
			if wv.EndTime == nil {
				wv.EndTime = timestamppb.New(now)
			}
		}
		what := "all waves"
		if !target.All {
			what = "wave " + n.Waves[target.Wave].Name
		}
		n.State, n.Message = rRollback, fmt.Sprintf("rolling back %s: %s", what, why)
		e.add("rollback", target.Wave, "", phNone, "%s", n.Message)
		if target.All {
			e.events[len(e.events)-1].Wave = NoWave
		}
		finishRollback(n, e)
		return nil
	})
}

package cluster

import (
	"context"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// handlerRun is one assignment started by Handler.
type handlerRun struct {
	id, rolloutID string
	cancel        context.CancelFunc
	done          chan struct{}
}

// Handler adapts the driver to agent.Config.OnAssignment. Each new assignment id runs Execute in
// its own goroutine, on a context of the driver (not the stream's, which ends at every
// reconnect), until Close. Runs never overlap: a new one waits for the one before it, and one
// that a newer assignment replaced before it could start is skipped (the controller only wants
// its current assignment). An assignment id seen last is not run again (the stream re-sends
// the current assignment on every reconnect); IDLE does nothing.
//
// An in-flight run is cancelled only when a ROLLBACK of the same rollout arrives: the rollback
// then supersedes it, undoing whatever the interrupted step had done. Any other new assignment
// waits for the in-flight one to finish.
func (d *Driver) Handler(r Reporter) func(context.Context, *ebbflowv1.Assignment) {
	return func(_ context.Context, a *ebbflowv1.Assignment) {
		switch a.GetAction() {
		case ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK:
		default:
			return
		}
		if a.GetId() == "" {
			return
		}
		d.hmu.Lock()
		if d.base.Err() != nil { // closed
			d.hmu.Unlock()
			return
		}
		prev := d.running
		if prev != nil && prev.id == a.GetId() {
			d.hmu.Unlock()
			return
		}
		if prev != nil && a.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK && prev.rolloutID == a.GetRolloutId() {
			d.log.Info("rollback arrived: cancelling the run in flight", "cancelled", prev.id, "rollback", a.GetId())
			prev.cancel()
		}
		ctx, cancel := context.WithCancel(d.base)
		run := &handlerRun{id: a.GetId(), rolloutID: a.GetRolloutId(), cancel: cancel, done: make(chan struct{})}
		d.running = run
		d.wg.Add(1)
		d.hmu.Unlock()
		go func() {
			defer d.wg.Done()
			defer close(run.done)
			defer cancel()
			if prev != nil {
				select {
				case <-prev.done:
				case <-ctx.Done():
					return
				}
			}
			d.hmu.Lock()
			superseded := d.running != run
			d.hmu.Unlock()
			if superseded {
				d.log.Info("assignment superseded before it started", "id", a.GetId())
				return
			}
			if err := d.Execute(ctx, a, r); err != nil {
				d.log.Warn("assignment ended with an error", "id", a.GetId(), "err", err)
			}
		}()
	}
}

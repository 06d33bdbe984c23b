package store

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (w *writer) appendRolloutEvents(c *storev1.AppendRolloutEvents, now *timestamppb.Timestamp) error {
	id := c.GetRolloutId()
	if err := checkName("rollout", id); err != nil {
		return err
	}
	if w.tx.Bucket(bucketRollouts).Get([]byte(id)) == nil {
		return fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	w.appendEvents(id, c.GetEvents(), now)
	w.changed(KindRollout, id)
	return nil
}

// appendEvents appends events to the rollout's history; an event without a time gets the
// command's.
func (w *writer) appendEvents(id string, events []*ebbflowv1.RolloutEvent, now *timestamppb.Timestamp) {
	if len(events) == 0 {
		return
	}
	b := w.tx.Bucket(bucketRolloutEvents)
	seq := lastSeq(b, id)
	for _, e := range events {
		if e.GetTime() == nil {
			e = proto.Clone(e).(*ebbflowv1.RolloutEvent)
			e.Time = stamp(now)
		}
		seq++
		must(b.Put(seqKey(id, seq), encode(e)))
	}
}

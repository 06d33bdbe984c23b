package store

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (w *writer) createProfile(c *storev1.CreateProfile, actor string, now *timestamppb.Timestamp) (*ebbflowv1.Profile, error) {
	if err := checkName("profile", c.GetName()); err != nil {
		return nil, err
	}
	if w.tx.Bucket(bucketProfiles).Get([]byte(c.GetName())) != nil {
		return nil, fmt.Errorf("profile %q: %w", c.GetName(), ErrAlreadyExists)
	}
	p := &ebbflowv1.Profile{
		Name: c.GetName(), Revision: 1, Spec: c.GetSpec(),
		CreateTime: stamp(now), UpdateTime: stamp(now), UpdatedBy: actor,
	}
	w.putProfile(p)
	return p, nil
}

func (w *writer) updateProfile(c *storev1.UpdateProfile, actor string, now *timestamppb.Timestamp) (*ebbflowv1.Profile, error) {
	cur, err := w.profile(c.GetName(), c.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	p := &ebbflowv1.Profile{
		Name: c.GetName(), Revision: cur.GetRevision() + 1, Spec: c.GetSpec(),
		CreateTime: cur.GetCreateTime(), UpdateTime: stamp(now), UpdatedBy: actor,
	}
	w.putProfile(p)
	return p, nil
}

func (w *writer) deleteProfile(c *storev1.DeleteProfile) error {
	name := c.GetName()
	if _, err := w.profile(name, c.GetExpectedRevision()); err != nil {
		return err
	}
	if id, err := w.activeRolloutPinning(name); err != nil {
		return err
	} else if id != "" {
		return fmt.Errorf("profile %q is pinned by active rollout %q: %w", name, id, ErrInUse)
	}
	// Collect first: deleting under a bbolt cursor skips keys.
	revs := w.tx.Bucket(bucketProfileRevisions)
	var keys [][]byte
	prefix := seqPrefix(name)
	cur := revs.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		must(revs.Delete(k))
	}
	must(w.tx.Bucket(bucketProfiles).Delete([]byte(name)))
	w.changed(KindProfile, name)
	return nil
}

// profile loads the latest revision of a profile and checks the expected revision (0: any).
func (w *writer) profile(name string, expected uint64) (*ebbflowv1.Profile, error) {
	if err := checkName("profile", name); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketProfiles), name, &ebbflowv1.Profile{})
	if !ok {
		return nil, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	if expected != 0 && expected != cur.GetRevision() {
		return nil, fmt.Errorf("profile %q: expected revision %d, have %d: %w", name, expected, cur.GetRevision(), ErrConflict)
	}
	return cur, nil
}

// putProfile stores p as the latest revision and as its immutable revision.
func (w *writer) putProfile(p *ebbflowv1.Profile) {
	v := encode(p)
	must(w.tx.Bucket(bucketProfiles).Put([]byte(p.GetName()), v))
	must(w.tx.Bucket(bucketProfileRevisions).Put(seqKey(p.GetName(), p.GetRevision()), v))
	w.changed(KindProfile, p.GetName())
}

// activeRolloutPinning returns the id of a non-terminal rollout of the profile, or "".
func (w *writer) activeRolloutPinning(profile string) (string, error) {
	c := w.tx.Bucket(bucketRollouts).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r := &ebbflowv1.Rollout{}
		if err := proto.Unmarshal(v, r); err != nil {
			panic(fmt.Sprintf("store: decode rollout %q: %v", k, err))
		}
		if r.GetSpec().GetProfile() == profile && !terminal(r.GetState()) {
			return r.GetId(), nil
		}
	}
	return "", nil
}

package store

import (
	"fmt"
	"maps"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (w *writer) registerCluster(c *storev1.RegisterCluster, now *timestamppb.Timestamp) (*ebbflowv1.Cluster, error) {
	if err := checkName("cluster", c.GetName()); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketClusters), c.GetName(), &ebbflowv1.Cluster{})
	if !ok {
		cl := &ebbflowv1.Cluster{
			Name: c.GetName(), Labels: maps.Clone(c.GetLabels()), Inventory: c.GetInventory(),
			AgentVersion: c.GetAgentVersion(), RegisterTime: stamp(now), Generation: 1,
		}
		w.putCluster(cl)
		return cl, nil
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		if c.GetMergeLabels() {
			if next.Labels == nil {
				next.Labels = map[string]string{}
			}
			maps.Copy(next.Labels, c.GetLabels())
		} else {
			next.Labels = maps.Clone(c.GetLabels())
		}
		if c.GetInventory() != nil {
			next.Inventory = c.GetInventory()
		}
		if c.GetAgentVersion() != "" {
			next.AgentVersion = c.GetAgentVersion()
		}
	}), nil
}

func (w *writer) setClusterLabels(c *storev1.SetClusterLabels) (*ebbflowv1.Cluster, error) {
	cur, err := w.cluster(c.GetName())
	if err != nil {
		return nil, err
	}
	if exp := c.GetExpectedGeneration(); exp != 0 && exp != cur.GetGeneration() {
		return nil, fmt.Errorf("cluster %q: expected generation %d, have %d: %w", c.GetName(), exp, cur.GetGeneration(), ErrConflict)
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		next.Labels = maps.Clone(c.GetLabels())
	}), nil
}

func (w *writer) setClusterCordon(c *storev1.SetClusterCordon) (*ebbflowv1.Cluster, error) {
	cur, err := w.cluster(c.GetName())
	if err != nil {
		return nil, err
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		next.Cordoned = c.GetCordoned()
		next.CordonReason = ""
		if c.GetCordoned() {
			next.CordonReason = c.GetReason()
		}
	}), nil
}

func (w *writer) updateInventory(c *storev1.UpdateInventory) (*ebbflowv1.Cluster, error) {
	cur, err := w.cluster(c.GetName())
	if err != nil {
		return nil, err
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		next.Inventory = c.GetInventory()
	}), nil
}

func (w *writer) deleteCluster(c *storev1.DeleteCluster) error {
	if _, err := w.cluster(c.GetName()); err != nil {
		return err
	}
	must(w.tx.Bucket(bucketClusters).Delete([]byte(c.GetName())))
	w.changed(KindCluster, c.GetName())
	w.wake(c.GetName())
	name := c.GetName()
	w.after = append(w.after, func(ix *index) { ix.deleteCluster(name) })
	return nil
}

func (w *writer) cluster(name string) (*ebbflowv1.Cluster, error) {
	if err := checkName("cluster", name); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketClusters), name, &ebbflowv1.Cluster{})
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", name, ErrNotFound)
	}
	return cur, nil
}

// updateCluster applies edit to a copy of cur and stores it with the next generation, unless
// edit changed nothing: then cur comes back as it is and nothing is written.
func (w *writer) updateCluster(cur *ebbflowv1.Cluster, edit func(next *ebbflowv1.Cluster)) *ebbflowv1.Cluster {
	next := proto.Clone(cur).(*ebbflowv1.Cluster)
	edit(next)
	if proto.Equal(next, cur) {
		return cur
	}
	next.Generation = cur.GetGeneration() + 1
	w.putCluster(next)
	return next
}

// putCluster stores c without the leader's in-memory liveness fields.
func (w *writer) putCluster(c *ebbflowv1.Cluster) {
	c.Liveness = ebbflowv1.Liveness_LIVENESS_UNSPECIFIED
	c.LastHeartbeatTime = nil
	must(w.tx.Bucket(bucketClusters).Put([]byte(c.GetName()), encode(c)))
	w.changed(KindCluster, c.GetName())
	w.wake(c.GetName())
	name := c.GetName()
	e := newRegistryEntry(name, c.GetCordoned(), c.GetCordonReason())
	w.after = append(w.after, func(ix *index) { ix.putCluster(name, e) })
}

package rollout

import (
	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Delta is what a decision changed: whether the header changed, and which cluster records.
// A store that keeps the header and each record apart writes exactly these.
type Delta struct {
	// HeaderChanged: something outside waves[].clusters differs (the rollout's own fields or a
	// wave's).
	HeaderChanged bool
	// Clusters are the changed records of the next rollout, in wave order.
	Clusters []ClusterChange
}

// ClusterChange is one changed record: next.Waves[Wave].Clusters[Index] (slice positions, not
// Wave.index).
type ClusterChange struct {
	Wave, Index int32
	Cluster     *ebbflowv1.RolloutCluster
}

// Empty reports whether the delta changes nothing.
func (d Delta) Empty() bool { return !d.HeaderChanged && len(d.Clusters) == 0 }

// Diff returns what changed from old to next, typically the input and the output of one
// decision. The decisions are copy-on-write, so a wave they left alone is the same slice in
// both and a record they left alone the same pointer: Diff costs pointer comparisons over the
// waves whose slices differ plus proto.Equal on the records whose pointers differ; those that
// are equal all the same are not reported.
//
// Two nil rollouts give an empty delta. When the shape differs (one of them nil, another wave
// count, another cluster count in a wave, or other cluster names at the same positions),
// positions do not line up: Diff then reports HeaderChanged and every record of next as
// changed, so a store that applies the delta rewrites the whole rollout.
//
// Example: Ingest of one report into a rollout of 10,000 clusters gives a delta of one record
// and HeaderChanged false; the Step that starts a wave gives HeaderChanged (the wave's state)
// and one record per cluster it assigned.
func Diff(old, next *ebbflowv1.Rollout) Delta {
	if old == nil && next == nil {
		return Delta{}
	}
	if !sameShape(old, next) {
		d := Delta{HeaderChanged: true}
		for w, wv := range next.GetWaves() {
			for i, c := range wv.GetClusters() {
				d.Clusters = append(d.Clusters, ClusterChange{Wave: int32(w), Index: int32(i), Cluster: c})
			}
		}
		return d
	}
	d := Delta{HeaderChanged: !headersEqual(old, next)}
	for w, wv := range next.GetWaves() {
		was := old.GetWaves()[w].GetClusters()
		if len(was) > 0 && &was[0] == &wv.GetClusters()[0] {
			continue // the same slice: a wave the decision did not touch
		}
		for i, c := range wv.GetClusters() {
			if c != was[i] && !proto.Equal(c, was[i]) {
				d.Clusters = append(d.Clusters, ClusterChange{Wave: int32(w), Index: int32(i), Cluster: c})
			}
		}
	}
	return d
}

// sameShape: both rollouts exist and list the same clusters in the same waves, in order.
func sameShape(a, b *ebbflowv1.Rollout) bool {
	if a == nil || b == nil || len(a.GetWaves()) != len(b.GetWaves()) {
		return false
	}
	for w, wa := range a.GetWaves() {
		ca, cb := wa.GetClusters(), b.GetWaves()[w].GetClusters()
		if len(ca) != len(cb) {
			return false
		}
		for i := range ca {
			if ca[i] != cb[i] && ca[i].GetCluster() != cb[i].GetCluster() {
				return false
			}
		}
	}
	return true
}

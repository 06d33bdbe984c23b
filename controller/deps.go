package controller

import (
	"context"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// Writer proposes commands to the replicated log. It returns store.ErrNotLeader on a follower.
type Writer interface {
	Apply(ctx context.Context, cmd *storev1.Command) (proto.Message, error)
	// ApplyBatch proposes several commands as one log entry; each has its own result.
	ApplyBatch(ctx context.Context, cmds []*storev1.Command) ([]store.Result, error)
}

// Reader reads replicated state at a read level. A linearizable read on a follower returns
// store.ErrNotLeader.
type Reader interface {
	View(ctx context.Context, level store.ReadLevel, fn func(tx *store.Tx) error) error
	Subscribe() *store.Subscription
	// CatchUp waits until this node has applied the log up to index.
	CatchUp(ctx context.Context, index uint64) error

	// The in-memory index of what this node has applied (see store/index.go): the active
	// rollouts, the record holding each cluster's assignment, the registry's cordons, and a
	// watch woken by one cluster's changes. Records are shared: never modify them.
	ActiveRollouts() []*ebbflowv1.Rollout
	ActiveRollout(id string) (*ebbflowv1.Rollout, bool)
	HolderOf(cluster string) (store.Holding, bool)
	PositionsOf(cluster string) []store.Position
	Registered(name string) (*ebbflowv1.Cluster, bool)
	WatchCluster(name string) *store.KeyWatch
	ProposedStats() map[string]store.ProposalStats
}

// Membership is the Raft view the API reports and changes.
type Membership interface {
	IsLeader() bool
	LeaderAPIAddress() (string, error)
	LeaderChanged() <-chan struct{}
	WatchLeadership(ctx context.Context) <-chan bool
	Status() store.Status
	AddVoter(ctx context.Context, id, raftAddr, apiAddr string) error
	RemoveServer(ctx context.Context, id string) error
}

// Store is everything the controller needs from the replicated state.
type Store interface {
	Writer
	Reader
	Membership
}

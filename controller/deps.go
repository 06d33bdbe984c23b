package controller

import (
	"context"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	"github.com/ebbflow/ebbflow/store"
)

// Writer proposes commands to the replicated log. It returns store.ErrNotLeader on a follower.
type Writer interface {
	Apply(ctx context.Context, cmd *storev1.Command) (proto.Message, error)
}

// Reader reads replicated state at a read level. A linearizable read on a follower returns
// store.ErrNotLeader.
type Reader interface {
	View(ctx context.Context, level store.ReadLevel, fn func(tx *store.Tx) error) error
	Subscribe() *store.Subscription
	// CatchUp waits until this node has applied the log up to index.
	CatchUp(ctx context.Context, index uint64) error
}

// Membership is the Raft view the API reports and changes.
type Membership interface {
	IsLeader() bool
	LeaderAPIAddress() (string, error)
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

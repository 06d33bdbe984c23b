package controller

import (
	"context"
	"encoding/base64"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// readAt serves a read at the requested level: stale reads from the local replica, linearizable
// reads on the leader (forwarded there from a follower).
func readAt[Req, Res any](
	ctx context.Context,
	s *Server,
	req *connect.Request[Req],
	opts *ebbflowv1.ReadOptions,
	remote func(*leaderClients) func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
	read func(tx *store.Tx) (*Res, error),
) (*connect.Response[Res], error) {
	level := store.Linearizable
	if opts.GetConsistency() == ebbflowv1.Consistency_CONSISTENCY_STALE {
		level = store.Stale
	}
	return onLeader(ctx, s.fwd, req, remote, func(ctx context.Context) (*Res, error) {
		var out *Res
		err := s.store.View(ctx, level, func(tx *store.Tx) error {
			var err error
			out, err = read(tx)
			return err
		})
		return out, err
	})
}

// trimPage cuts a list read with one extra item to size; the token resumes after the last item
// returned, and is empty when the list ended.
func trimPage[T any](items []T, size int, key func(T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	return items[:size], nextPageToken(key(items[size-1]))
}

// Page tokens are opaque to callers: the base64 of the last key returned.
func nextPageToken(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }

func (v *issues) pageToken(field, tok string) string {
	if tok == "" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) > 256 {
		v.add(field, "page-token", "not a page token returned by this API")
		return ""
	}
	return string(b)
}

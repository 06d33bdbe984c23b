package controller

import (
	"context"
	"encoding/base64"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// view serves a read at the requested level: stale from the local replica, linearizable on
// the leader (on a follower the read returns store.ErrNotLeader and the interceptor forwards
// the call; the procedure table usually has already).
func view[Res any](ctx context.Context, s *Server, opts *ebbflowv1.ReadOptions, read func(tx *store.Tx) (*Res, error)) (*connect.Response[Res], error) {
	level := store.Linearizable
	if opts.GetConsistency() == ebbflowv1.Consistency_CONSISTENCY_STALE {
		level = store.Stale
	}
	var out *Res
	err := s.store.View(ctx, level, func(tx *store.Tx) error {
		var err error
		out, err = read(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(out), nil
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
		v.Add(field, "page-token", "not a page token returned by this API")
		return ""
	}
	return string(b)
}

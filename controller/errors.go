package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// toConnectError maps store and context errors onto Connect codes, keeping the message.
func toConnectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, store.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, store.ErrAlreadyExists):
		code = connect.CodeAlreadyExists
	case errors.Is(err, store.ErrConflict):
		code = connect.CodeAborted
	case errors.Is(err, store.ErrInvalid):
		code = connect.CodeInvalidArgument
	case errors.Is(err, store.ErrInUse), errors.Is(err, store.ErrFailedPrecondition):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, store.ErrUnauthenticated):
		code = connect.CodeUnauthenticated
	case errors.Is(err, store.ErrOutcomeUnknown):
		// Not UNAVAILABLE: a client that retries unavailable calls could apply the write twice.
		code = connect.CodeUnknown
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrClosed):
		code = connect.CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	}
	return connect.NewError(code, err)
}

// invalid builds an InvalidArgument error that names every field and rule, with a
// google.rpc.BadRequest detail so programs can read the violations.
func invalid(issues []*ebbflowv1.ValidationIssue) error {
	msgs := make([]string, 0, len(issues))
	br := &errdetails.BadRequest{}
	for _, is := range issues {
		m := is.GetField() + ": " + is.GetMessage()
		if is.GetRule() != "" {
			m += " (" + is.GetRule() + ")"
		}
		msgs = append(msgs, m)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: is.GetField(), Description: is.GetMessage(), Reason: is.GetRule(),
		})
	}
	err := connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("invalid request: %s", strings.Join(msgs, "; ")))
	if d, derr := connect.NewErrorDetail(br); derr == nil {
		err.AddDetail(d)
	}
	return err
}

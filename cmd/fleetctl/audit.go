package main

import (
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (a *app) auditCmd() *cobra.Command {
	var (
		actor, resource string
		since           time.Duration
		failed          bool
		limit           int
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit log: who changed what, when, from where, and the result (newest first)",
		Example: `  fleetctl audit --since 1h
  fleetctl audit --actor alice --resource profile/eks
  fleetctl audit --failed -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageErr("--limit: want at least 1, got %d", limit)
			}
			if since < 0 {
				return usageErr("--since: want a positive duration, got %s", since)
			}
			req := &ebbflowv1.ListAuditRecordsRequest{Actor: actor, Prefix: resource}
			if failed {
				req.Result = ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_FAILED
			}
			if since > 0 {
				req.StartTime = timestamppb.New(time.Now().Add(-since))
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			out := &ebbflowv1.ListAuditRecordsResponse{}
			for len(out.Records) < limit {
				req.PageSize = int32(min(limit-len(out.Records), 1000))
				res, err := a.clients.audit.ListAuditRecords(ctx, connect.NewRequest(req))
				if err != nil {
					return err
				}
				out.Records = append(out.Records, res.Msg.GetRecords()...)
				out.NextPageToken = res.Msg.GetNextPageToken()
				if out.NextPageToken == "" {
					break
				}
				req.PageToken = out.NextPageToken
			}
			return a.printMsg(out, func(w io.Writer) {
				header(w, "TIME", "ACTOR", "FROM", "WHAT", "RESOURCE", "RESULT")
				for _, r := range out.GetRecords() {
					row(w, r.GetTime().AsTime().UTC().Format(time.RFC3339), r.GetActor(), orDash(r.GetRemoteAddress()),
						strings.TrimPrefix(r.GetProcedure(), "ebbflow.v1."), orDash(r.GetResource()), auditResult(r))
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "only calls of this actor")
	f.StringVar(&resource, "resource", "", "only calls whose resource (or procedure) starts with this, e.g. profile/eks or cluster/")
	f.DurationVar(&since, "since", 0, "only calls in this last stretch of time, e.g. 1h")
	f.BoolVar(&failed, "failed", false, "only calls that failed")
	f.IntVar(&limit, "limit", 100, "at most this many records")
	return cmd
}

// auditResult is "ok", or the code and the start of the message.
func auditResult(r *ebbflowv1.AuditRecord) string {
	s := r.GetCode()
	if m := r.GetMessage(); m != "" {
		m = strings.Join(strings.Fields(m), " ")
		if len(m) > 80 {
			m = m[:77] + "..."
		}
		s += ": " + m
	}
	return s
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

func (a *app) controllerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "controller", Short: "The controller's Raft membership and state"}
	var noProbe bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Members, leader, term and indexes, and whether each member answers and keeps up",
		Long: `Members, leader, term and indexes as the answering node sees them. Unless --no-probe, fleetctl
also asks every member itself (at its API address): STATUS is ok, unreachable (with the error),
lagging (its applied index more than 1000 entries behind the answering node's commit index), or
no leader (it knows of none). APPLIED is the member's own applied index.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
			if err != nil {
				return err
			}
			m := res.Msg
			var probes []memberProbe
			if !noProbe {
				probes = a.probeMembers(ctx, m)
			}
			return a.printMsg(m, func(w io.Writer) {
				fmt.Fprintf(w, "node %s (%s), version %s\n", m.GetNodeId(), enumName(m.GetState().String(), "RAFT_STATE_"), m.GetVersion())
				fmt.Fprintf(w, "leader %s at %s, term %d\n", orDash(m.GetLeaderId()), orDash(m.GetLeaderApiAddress()), m.GetTerm())
				fmt.Fprintf(w, "indexes: last log %d, commit %d, applied %d\n", m.GetLastLogIndex(), m.GetCommitIndex(), m.GetAppliedIndex())
				if m.GetState() == ebbflowv1.RaftState_RAFT_STATE_LEADER {
					fmt.Fprintf(w, "live agents: %d\n", m.GetLiveAgents())
				}
				fmt.Fprintln(w)
				if noProbe {
					header(w, "NODE", "ROLE", "RAFT ADDRESS", "API ADDRESS")
				} else {
					header(w, "NODE", "ROLE", "RAFT ADDRESS", "API ADDRESS", "APPLIED", "STATUS")
				}
				for i, mb := range m.GetMembers() {
					role := "voter"
					if !mb.GetVoter() {
						role = "nonvoter"
					}
					if mb.GetLeader() {
						role += ",leader"
					}
					if noProbe {
						row(w, mb.GetNodeId(), role, mb.GetRaftAddress(), orDash(mb.GetApiAddress()))
						continue
					}
					p := probes[i]
					applied := "-"
					if p.status != nil {
						applied = fmt.Sprint(p.status.GetAppliedIndex())
					}
					row(w, mb.GetNodeId(), role, mb.GetRaftAddress(), orDash(mb.GetApiAddress()), applied, p.verdict(m))
				}
			})
		},
	}
	status.Flags().BoolVar(&noProbe, "no-probe", false, "show the answering node's view only, without asking each member")
	var raftAddr, apiAddr string
	add := &cobra.Command{
		Use:   "add-voter NODE_ID --raft-address HOST:PORT --api-address HOST:PORT",
		Short: "Add a controller node as a voter (fleet-controller --join does this itself)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.controller.AddVoter(ctx, connect.NewRequest(&ebbflowv1.AddVoterRequest{NodeId: args[0], RaftAddress: raftAddr, ApiAddress: apiAddr}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) { fmt.Fprintf(w, "%s added; %d members\n", args[0], len(res.Msg.GetMembers())) })
		},
	}
	add.Flags().StringVar(&raftAddr, "raft-address", "", "the node's Raft address")
	add.Flags().StringVar(&apiAddr, "api-address", "", "the node's API address")
	remove := &cobra.Command{
		Use:   "remove-server NODE_ID",
		Short: "Remove a controller node from the Raft configuration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.controller.RemoveServer(ctx, connect.NewRequest(&ebbflowv1.RemoveServerRequest{NodeId: args[0]}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) { fmt.Fprintf(w, "%s removed; %d members\n", args[0], len(res.Msg.GetMembers())) })
		},
	}
	cmd.AddCommand(status, add, remove)
	return cmd
}

// lagEntries is how far behind the answering node's commit index a member's applied index may be
// before controller status calls it lagging.
const lagEntries = 1000

// memberProbe is one member's own answer to GetControllerStatus, or why there was none.
type memberProbe struct {
	status *ebbflowv1.GetControllerStatusResponse
	err    error
}

func (p memberProbe) verdict(view *ebbflowv1.GetControllerStatusResponse) string {
	switch {
	case p.err != nil:
		return "unreachable: " + shorten(strings.TrimPrefix(describe(p.err), "controller unavailable: "), 80)
	case p.status == nil:
		return "-"
	case p.status.GetLeaderId() == "":
		return "no leader"
	case view.GetCommitIndex() > p.status.GetAppliedIndex()+lagEntries:
		return fmt.Sprintf("lagging: %d entries behind", view.GetCommitIndex()-p.status.GetAppliedIndex())
	}
	return "ok"
}

// probeMembers asks every member for its own status, in parallel, at its API address with the
// scheme of the server fleetctl talks to. The API reports no last contact per member (the
// answering node's Raft view has none to give), so this is what tells a dead node from a live
// one.
func (a *app) probeMembers(ctx context.Context, view *ebbflowv1.GetControllerStatusResponse) []memberProbe {
	scheme := "http"
	if u, err := url.Parse(a.servers[0]); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	out := make([]memberProbe, len(view.GetMembers()))
	var wg sync.WaitGroup
	for i, mb := range view.GetMembers() {
		if mb.GetNodeId() == view.GetNodeId() {
			out[i] = memberProbe{status: view}
			continue
		}
		if mb.GetApiAddress() == "" {
			out[i] = memberProbe{err: errors.New("no API address known")}
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			c := ebbflowv1connect.NewControllerServiceClient(a.httpClient, scheme+"://"+mb.GetApiAddress(), a.clientOpts...)
			res, err := c.GetControllerStatus(pctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
			if err != nil {
				out[i] = memberProbe{err: err}
				return
			}
			out[i] = memberProbe{status: res.Msg}
		})
	}
	wg.Wait()
	return out
}

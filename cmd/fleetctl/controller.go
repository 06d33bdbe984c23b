package main

import (
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (a *app) controllerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "controller", Short: "The controller's Raft membership and state"}
	status := &cobra.Command{
		Use:   "status",
		Short: "Members, leader, term and indexes, as the answering node sees them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
			if err != nil {
				return err
			}
			m := res.Msg
			return a.printMsg(m, func(w io.Writer) {
				fmt.Fprintf(w, "node %s (%s), version %s\n", m.GetNodeId(), enumName(m.GetState().String(), "RAFT_STATE_"), m.GetVersion())
				fmt.Fprintf(w, "leader %s at %s, term %d\n", orDash(m.GetLeaderId()), orDash(m.GetLeaderApiAddress()), m.GetTerm())
				fmt.Fprintf(w, "indexes: last log %d, commit %d, applied %d\n", m.GetLastLogIndex(), m.GetCommitIndex(), m.GetAppliedIndex())
				if m.GetState() == ebbflowv1.RaftState_RAFT_STATE_LEADER {
					fmt.Fprintf(w, "live agents: %d\n", m.GetLiveAgents())
				}
				fmt.Fprintln(w)
				row(w, "NODE", "ROLE", "RAFT ADDRESS", "API ADDRESS")
				for _, mb := range m.GetMembers() {
					role := "voter"
					if !mb.GetVoter() {
						role = "nonvoter"
					}
					if mb.GetLeader() {
						role += ",leader"
					}
					row(w, mb.GetNodeId(), role, mb.GetRaftAddress(), orDash(mb.GetApiAddress()))
				}
			})
		},
	}
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

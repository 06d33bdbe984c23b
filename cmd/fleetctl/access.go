package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Who the controller takes you for: your name, role and how you were authenticated",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.access.WhoAmI(ctx, connect.NewRequest(&ebbflowv1.WhoAmIRequest{}))
			if err != nil {
				return err
			}
			m := res.Msg
			return a.printMsg(m, func(w io.Writer) {
				header(w, "KIND", "NAME", "ROLE", "METHOD")
				row(w, enumName(m.GetKind().String(), "IDENTITY_KIND_"), m.GetName(), enumName(m.GetRole().String(), "ROLE_"), m.GetMethod())
			})
		},
	}
}

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Aliases: []string{"tokens"}, Short: "Join tokens: one-time credentials an agent exchanges for its cluster's certificate"}
	var ttl time.Duration
	var desc, cluster string
	var quiet bool
	create := &cobra.Command{
		Use:   "create --cluster NAME [--ttl 1h]",
		Short: "Create a join token for a cluster's agent (printed once; give it to fleet-agent --join-token)",
		Example: `  fleetctl token create --cluster eu-1
  fleet-agent --cluster-id eu-1 --ca ca.crt --join-token "$(fleetctl token create --cluster eu-1 -q)" ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cluster == "" {
				return usageErr("--cluster is required")
			}
			req := &ebbflowv1.CreateJoinTokenRequest{Cluster: cluster, Description: desc}
			if ttl != 0 {
				req.Ttl = durationpb.New(ttl)
			}
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.access.CreateJoinToken(ctx, connect.NewRequest(req))
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(a.out, res.Msg.GetToken())
				return nil
			}
			return a.printMsg(res.Msg, func(w io.Writer) {
				t := res.Msg.GetJoinToken()
				header(w, "TOKEN", "CLUSTER", "EXPIRES")
				row(w, res.Msg.GetToken(), t.GetCluster(), t.GetExpireTime().AsTime().UTC().Format(time.RFC3339))
			})
		},
	}
	create.Flags().StringVar(&cluster, "cluster", "", "the cluster whose agent will use it")
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long it stays usable, 1m to 168h (default 1h)")
	create.Flags().StringVar(&desc, "description", "", "a note kept with the token")
	create.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the token")

	var listCluster string
	list := &cobra.Command{
		Use:   "list [--cluster NAME]",
		Short: "List join tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.access.ListJoinTokens(ctx, connect.NewRequest(&ebbflowv1.ListJoinTokensRequest{Cluster: listCluster}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) {
				header(w, "ID", "CLUSTER", "STATE", "CREATED BY", "EXPIRES", "DESCRIPTION")
				for _, t := range res.Msg.GetJoinTokens() {
					row(w, t.GetId(), t.GetCluster(), enumName(t.GetState().String(), "JOIN_TOKEN_STATE_"), orDash(t.GetCreatedBy()),
						t.GetExpireTime().AsTime().UTC().Format(time.RFC3339), orDash(t.GetDescription()))
				}
			})
		},
	}
	list.Flags().StringVar(&listCluster, "cluster", "", "only this cluster's tokens")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Make an unused join token unusable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, _, _ := strings.Cut(args[0], ".")
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.access.RevokeJoinToken(ctx, connect.NewRequest(&ebbflowv1.RevokeJoinTokenRequest{Id: id}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) {
				fmt.Fprintf(w, "join token %s of cluster %s revoked\n", res.Msg.GetJoinToken().GetId(), res.Msg.GetJoinToken().GetCluster())
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// clusterRevoke revokes a cluster's identity: every certificate its agent holds stops working.
func (a *app) clusterRevoke() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a cluster's agent identity at once: its certificates stop working; it needs a new join token to come back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.call(cmd)
			defer cancel()
			res, err := a.clients.access.RevokeClusterIdentity(ctx, connect.NewRequest(&ebbflowv1.RevokeClusterIdentityRequest{Cluster: args[0]}))
			if err != nil {
				return err
			}
			return a.printMsg(res.Msg, func(w io.Writer) {
				fmt.Fprintf(w, "identity of cluster %s revoked (now epoch %d)\n", args[0], res.Msg.GetEpoch())
			})
		},
	}
}

package main

import (
	"encoding/json"
	"fmt"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/internal/buildinfo"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// versionCmd prints fleetctl's version and the answering controller's; --client skips the call.
// An unreachable controller is reported, with the client's version still printed first.
func (a *app) versionCmd() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "fleetctl's version and the controller's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := struct {
				Client     string `json:"client"`
				Controller string `json:"controller,omitempty"`
				Node       string `json:"node,omitempty"`
			}{Client: buildinfo.Version()}
			var callErr error
			if !clientOnly {
				ctx, cancel := a.call(cmd)
				defer cancel()
				res, err := a.clients.controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
				if err == nil {
					v.Controller, v.Node = res.Msg.GetVersion(), res.Msg.GetNodeId()
				}
				callErr = err
			}
			switch a.output {
			case "json", "yaml":
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return err
				}
				if a.output == "yaml" {
					if b, err = yaml.JSONToYAML(b); err != nil {
						return err
					}
				}
				fmt.Fprintln(a.out, string(b))
			default:
				fmt.Fprintf(a.out, "client: %s\n", v.Client)
				if v.Node != "" {
					fmt.Fprintf(a.out, "controller: %s (node %s)\n", orDash(v.Controller), v.Node)
				}
			}
			return callErr
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print fleetctl's version only, without calling the controller")
	return cmd
}

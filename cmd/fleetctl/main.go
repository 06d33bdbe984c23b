// Command fleetctl drives Ebbflow: profiles, clusters, rollouts and the controller itself,
// over the Connect protocol.
package main

import (
	"os"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

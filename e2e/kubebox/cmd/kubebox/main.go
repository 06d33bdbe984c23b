// Command kubebox builds the local Kubernetes binaries (-build) or runs a local cluster until
// interrupted, printing its kubeconfig path.
//
//	go run ./e2e/kubebox/cmd/kubebox -build
//	go run ./e2e/kubebox/cmd/kubebox -nodes 3 -dir /tmp/kb
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
)

func main() {
	buildOnly := flag.Bool("build", false, "build (or find cached) binaries, print where they are and exit")
	nodes := flag.Int("nodes", 3, "number of fake nodes")
	kernel := flag.String("kernel", "6.8.0-45-generic", "kernel version of every node")
	dir := flag.String("dir", "", "cluster directory (default: a temporary one, removed on exit)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *buildOnly, *nodes, *kernel, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "kubebox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, buildOnly bool, nodes int, kernel, dir string) error {
	bins, err := kubebox.EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		return err
	}
	if buildOnly {
		fmt.Println(bins.Dir)
		return nil
	}
	opts := kubebox.Options{Dir: dir, Log: os.Stderr, Binaries: bins}
	for i := range nodes {
		opts.Nodes = append(opts.Nodes, kubebox.Node{Name: fmt.Sprintf("node-%d", i+1), Kernel: kernel})
	}
	c, err := kubebox.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Println(c.Kubeconfig)
	<-ctx.Done()
	return nil
}

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
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/agent/cluster"
	"github.com/ebbflow/ebbflow/e2e/kubebox"
)

func main() {
	buildOnly := flag.Bool("build", false, "build (or find cached) binaries, print where they are and exit")
	nodes := flag.Int("nodes", 3, "number of fake nodes")
	kernel := flag.String("kernel", "6.8.0-45-generic", "kernel version of every node")
	dir := flag.String("dir", "", "cluster directory (default: a temporary one, removed on exit)")
	kernels := flag.String("kernels", "", "comma-separated kernel version per node (overrides --nodes and --kernel)")
	nic := flag.String("nic-driver", "", "NIC driver label value for every node (label ebbflow.io/nic-driver)")
	chart := flag.String("cilium-chart", "", "install this local chart as release kube-system/cilium")
	kubeProxy := flag.Bool("kube-proxy", false, "run a kube-proxy DaemonSet")
	out := flag.String("kubeconfig-out", "", "also copy the kubeconfig to this path once the cluster is ready")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ks []string
	if *kernels != "" {
		ks = strings.Split(*kernels, ",")
	} else {
		for range *nodes {
			ks = append(ks, *kernel)
		}
	}
	o := setup{nic: *nic, chart: *chart, kubeProxy: *kubeProxy, out: *out}
	if err := run(ctx, *buildOnly, ks, *dir, o); err != nil {
		fmt.Fprintln(os.Stderr, "kubebox:", err)
		os.Exit(1)
	}
}

// setup is what the cluster gets once it is up.
type setup struct {
	nic, chart, out string
	kubeProxy       bool
}

func run(ctx context.Context, buildOnly bool, kernels []string, dir string, o setup) error {
	bins, err := kubebox.EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		return err
	}
	if buildOnly {
		fmt.Println(bins.Dir)
		return nil
	}
	opts := kubebox.Options{Dir: dir, Log: os.Stderr, Binaries: bins}
	for i, k := range kernels {
		n := kubebox.Node{Name: fmt.Sprintf("node-%d", i+1), Kernel: strings.TrimSpace(k)}
		if o.nic != "" {
			n.Labels = map[string]string{agent.DefaultNICDriverLabel: o.nic}
		}
		opts.Nodes = append(opts.Nodes, n)
	}
	c, err := kubebox.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Stop()
	if o.kubeProxy {
		if err := c.InstallKubeProxy(ctx); err != nil {
			return err
		}
	}
	if o.chart != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return err
		}
		port, _ := strconv.Atoi(u.Port())
		values := map[string]any{"k8sServiceHost": u.Hostname(), "k8sServicePort": port}
		if _, err := cluster.InstallRelease(ctx, c.RESTConfig, "kube-system", "cilium", o.chart, values); err != nil {
			return err
		}
	}
	if o.out != "" {
		b, err := os.ReadFile(c.Kubeconfig)
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, b, 0o600); err != nil {
			return err
		}
	}
	fmt.Println(c.Kubeconfig)
	<-ctx.Done()
	return nil
}

package kubebox

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/e2e/process"
)

// Node is a fake node kwok plays the kubelet of.
type Node struct {
	Name string
	// Kernel is status.nodeInfo.kernelVersion, e.g. "6.8.0-45-generic".
	Kernel string
	// OSImage is status.nodeInfo.osImage (default "Ubuntu 24.04 LTS").
	OSImage string
	// Labels are added to the standard kubernetes.io/hostname, os and arch labels.
	Labels map[string]string
}

// Options configure Start.
type Options struct {
	// Dir holds the cluster's files: certificates, kubeconfig, etcd data and one log per process
	// (logs/<name>.log). Empty means a new temporary directory, removed by Stop.
	Dir string
	// Nodes are created once the API server is ready; Start returns when all are Ready.
	Nodes []Node
	// Log receives progress messages (and build output when the binaries must be built);
	// nil discards them.
	Log io.Writer
	// Binaries to run; zero means EnsureBinaries.
	Binaries Binaries
	// StartTimeout bounds the wait for the API server and the nodes (default 2 minutes).
	StartTimeout time.Duration
}

// Cluster is a running local cluster.
type Cluster struct {
	// Dir holds the cluster's files; Logs the process logs.
	Dir, Logs string
	// Kubeconfig is the path of an admin kubeconfig (bearer token, verified TLS).
	Kubeconfig string
	// RESTConfig is the same admin identity for client-go.
	RESTConfig *rest.Config
	// Clientset is a client of RESTConfig.
	Clientset kubernetes.Interface
	// URL is the API server's address, https://127.0.0.1:port.
	URL string

	log      io.Writer
	ownDir   bool
	procs    []*process.Process
	stopOnce sync.Once
}

// Start runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, waits until
// the API server is ready, creates opts.Nodes and waits until they are Ready and schedulable.
// Every server binds 127.0.0.1 on a free port. On error everything started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	bins := opts.Binaries
	if bins.KubeAPIServer == "" {
		if bins, err = EnsureBinaries(ctx, log); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Dir: opts.Dir, log: log}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "kubebox-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return nil, err
	}
	c.Logs = filepath.Join(c.Dir, "logs")
	if err := os.MkdirAll(c.Logs, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	p, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("kubebox: certificates: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kwokPort := ports[0], ports[1], ports[2], ports[3]
	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(c.URL, p.caCert, p.token), 0o600); err != nil {
		return nil, err
	}
	c.RESTConfig = &rest.Config{
		Host:            c.URL,
		BearerToken:     p.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: p.caCert},
		QPS:             200,
		Burst:           400,
	}
	if c.Clientset, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	fmt.Fprintf(log, "kubebox: starting a cluster in %s (API server %s)\n", c.Dir, c.URL)

	if err := c.start("etcd", bins.Etcd,
		"--name=kubebox",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubebox="+peerURL,
		// A throwaway test cluster: durability is not worth the fsync latency.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := c.start("kube-apiserver", bins.KubeAPIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(c.Dir, "apiserver"),
		"--tls-cert-file="+p.serverCert, "--tls-private-key-file="+p.serverKey,
		"--client-ca-file="+p.caFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+p.saPub,
		"--service-account-signing-key-file="+p.saKey,
		"--token-auth-file="+filepath.Join(c.Dir, "pki", "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/12",
	); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := c.start("kube-controller-manager", bins.KubeControllerManager,
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+p.saKey,
		"--root-ca-file="+p.caFile,
	); err != nil {
		return nil, err
	}
	if err := c.start("kube-scheduler", bins.KubeScheduler,
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	); err != nil {
		return nil, err
	}
	if err := c.start("kwok", bins.Kwok,
		"--kubeconfig="+c.Kubeconfig,
		"--manage-all-nodes=true",
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort),
	); err != nil {
		return nil, err
	}
	for _, n := range opts.Nodes {
		if err := c.createNode(ctx, n); err != nil {
			return nil, err
		}
	}
	for _, n := range opts.Nodes {
		if err := c.waitNodeReady(ctx, n.Name); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "kubebox: cluster ready with %d nodes (kubeconfig %s)\n", len(opts.Nodes), c.Kubeconfig)
	return c, nil
}

// AddNode creates a node and waits until kwok has made it Ready and schedulable.
func (c *Cluster) AddNode(ctx context.Context, n Node) error {
	if err := c.createNode(ctx, n); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return c.waitNodeReady(ctx, n.Name)
}

// Stop ends every process (SIGTERM to its process group, SIGKILL after 10 s) and removes Dir
// when Start created it. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].Stop()
		}
		if c.ownDir {
			_ = os.RemoveAll(c.Dir)
		}
	})
}

// start runs one binary in the cluster's directory with its output in logs/<name>.log.
func (c *Cluster) start(name, bin string, args ...string) error {
	p, err := process.Start(c.Logs, c.Dir, name, bin, nil, args...)
	if err != nil {
		return fmt.Errorf("kubebox: %w", err)
	}
	c.procs = append(c.procs, p)
	return nil
}

// exited returns an error naming a process that ended, with the end of its log.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		if done, err := p.Exited(); done {
			return fmt.Errorf("kubebox: %s exited (%v); end of %s:\n%s", p.Name, err, p.Log, tail(p.Log, 20))
		}
	}
	return nil
}

// waitReady polls /readyz until the API server answers ok and kube-system exists.
func (c *Cluster) waitReady(ctx context.Context) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		body, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || !bytes.HasPrefix(body, []byte("ok")) {
			last = err
			return false, nil
		}
		_, err = c.Clientset.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		last = err
		return err == nil, nil
	})
	if err != nil {
		if e := c.exited(); e != nil {
			return e
		}
		return fmt.Errorf("kubebox: API server %s not ready (last: %v): %w; see %s", c.URL, last, err, c.Logs)
	}
	return nil
}

func (c *Cluster) createNode(ctx context.Context, n Node) error {
	osImage := n.OSImage
	if osImage == "" {
		osImage = "Ubuntu 24.04 LTS"
	}
	labels := map[string]string{
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.Name,
			Labels:      labels,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			NodeInfo: corev1.NodeSystemInfo{
				KernelVersion:           n.Kernel,
				OSImage:                 osImage,
				OperatingSystem:         "linux",
				Architecture:            "amd64",
				KubeletVersion:          KubernetesVersion,
				ContainerRuntimeVersion: "kwok://" + KwokVersion,
			},
		},
	}
	created, err := c.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubebox: create node %s: %w", n.Name, err)
	}
	if created.Status.NodeInfo.KernelVersion != n.Kernel {
		created.Status = node.Status
		if _, err := c.Clientset.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("kubebox: node %s status: %w", n.Name, err)
		}
	}
	return nil
}

// waitNodeReady waits until the node is Ready and has lost the not-ready taint.
func (c *Cluster) waitNodeReady(ctx context.Context, name string) error {
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.exited(); err != nil {
			return false, err
		}
		n, err := c.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, err
		}
		if err != nil {
			return false, nil
		}
		return NodeReady(n), nil
	})
	if err != nil {
		return fmt.Errorf("kubebox: node %s not ready: %w; see %s", name, err, c.Logs)
	}
	return nil
}

// NodeReady reports whether a node is Ready and carries no not-ready or unreachable taint.
func NodeReady(n *corev1.Node) bool {
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	return ready
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1 (held open together, then released).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubebox: free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func kubeconfig(server string, ca []byte, token string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubebox
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubebox
  context:
    cluster: kubebox
    user: admin
current-context: kubebox
`, server, base64.StdEncoding.EncodeToString(ca), token))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package fleet

// This file is over 500 lines on purpose: the one harness every end-to-end scenario uses (the
// controller group and agents as processes, kubebox clusters, clients and polls).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/agent/cluster"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/e2e/kubebox"
	"github.com/ebbflow/ebbflow/e2e/process"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// TargetHost is the name the rollouts' probes use for a cluster's latency target; each agent
// resolves it to its own cluster's target (fleet-agent --resolve).
const TargetHost = "echo.e2e:8080"

// ClusterSpec describes one kubebox cluster of the fleet.
type ClusterSpec struct {
	// Name is the cluster id in the fleet (a DNS label).
	Name string
	// Kernels has one entry per fake node: its status.nodeInfo.kernelVersion (default: two
	// nodes on 6.8.0-1015-aws).
	Kernels []string
	// NICDriver is every node's NIC driver label (default "ena").
	NICDriver string
	// Labels are the cluster's labels in the fleet.
	Labels map[string]string
	// Delay is the latency target's initial response delay (default 10 ms).
	Delay time.Duration
}

// Options configure Start.
type Options struct {
	// Dir holds everything: binaries, controller data, cluster files and every process's log
	// (logs/). Required.
	Dir string
	// Root is the module root, the agents' working directory (profiles name the test chart
	// relative to it); default RepoRoot().
	Root string
	// Bins are the executables to run; zero means Build into Dir/bin.
	Bins Binaries
	// Controllers is the size of the Raft group (default 3).
	Controllers int
	Clusters    []ClusterSpec
	// HeartbeatInterval is the agents' heartbeat interval (default 1 s).
	HeartbeatInterval time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Fleet is a running local fleet.
type Fleet struct {
	Dir, Root, Logs string
	Bins            Binaries
	Controllers     []*Controller
	Clusters        []*Cluster
	// PKI is the group's CA and admin credential (ca.crt, ca.key, admin.token), shared by
	// every controller; CAFile and AdminTokenFile are what fleetctl and the agents are given.
	PKI, CAFile, AdminTokenFile string

	ca    *pki.CA
	admin string
	log   io.Writer
	kube  kubebox.Binaries
	mu    sync.Mutex
}

// Controller is one fleet-controller process.
type Controller struct {
	ID, Addr, URL, DataDir string
	Proc                   *process.Process

	args []string // what it was started with, for RestartController
}

// Cluster is one member cluster: a kubebox cluster, its latency target and its agent.
type Cluster struct {
	Name   string
	Labels map[string]string
	Kube   *kubebox.Cluster
	// TargetAddr is the latency target's host:port.
	TargetAddr string

	f      *Fleet
	target *process.Process
	mu     sync.Mutex
	agent  *process.Process
	runs   int
}

// Start starts the controllers, then the clusters (in parallel), their targets and agents, and
// returns once every agent's cluster is registered and alive. On error everything started is
// stopped.
func Start(ctx context.Context, o Options) (_ *Fleet, err error) {
	if o.Dir == "" {
		return nil, errors.New("fleet: Options.Dir is required")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Controllers <= 0 {
		o.Controllers = 3
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = time.Second
	}
	if o.Root == "" {
		if o.Root, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	f := &Fleet{Dir: dir, Root: o.Root, Logs: filepath.Join(dir, "logs"), Bins: o.Bins, log: o.Log}
	defer func() {
		if err != nil {
			f.Stop()
		}
	}()
	if f.Bins.Controller == "" {
		fmt.Fprintln(f.log, "fleet: building fleet-controller, fleet-agent, fleetctl and latency-target")
		if f.Bins, err = Build(ctx, f.Root, filepath.Join(dir, "bin")); err != nil {
			return nil, err
		}
	}
	if f.kube, err = kubebox.EnsureBinaries(ctx, f.log); err != nil {
		return nil, err
	}
	if err := f.initPKI(); err != nil {
		return nil, err
	}
	for i := range o.Controllers {
		if err := f.startController(ctx, i+1, o.HeartbeatInterval); err != nil {
			return nil, err
		}
	}
	if err := f.waitMembers(ctx, o.Controllers); err != nil {
		return nil, err
	}
	f.Clusters = make([]*Cluster, len(o.Clusters))
	g, gctx := errgroup.WithContext(ctx)
	for i, spec := range o.Clusters {
		g.Go(func() error {
			c, err := f.startCluster(gctx, spec)
			f.mu.Lock()
			f.Clusters[i] = c
			f.mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	f.Clusters = slices.DeleteFunc(f.Clusters, func(c *Cluster) bool { return c == nil })
	for _, c := range f.Clusters {
		if err := c.StartAgent(); err != nil {
			return nil, err
		}
	}
	if err := f.waitAlive(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(f.log, "fleet: %d controllers and %d clusters up in %s\n", len(f.Controllers), len(f.Clusters), dir)
	return f, nil
}

func (f *Fleet) startController(ctx context.Context, n int, heartbeat time.Duration) error {
	id := "ctl-" + strconv.Itoa(n)
	c := &Controller{ID: id, DataDir: filepath.Join(f.Dir, "controllers", id)}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	ready := filepath.Join(f.Dir, "controllers", id+".addr")
	args := []string{"--node-id", id, "--data-dir", c.DataDir, "--listen", "127.0.0.1:0", "--raft-listen", "127.0.0.1:0",
		"--ready-file", ready, "--heartbeat-interval", heartbeat.String(), "--log-level", "info", "--pki-dir", f.PKI}
	if n > 1 {
		args = append(args, "--join", f.Controllers[0].URL)
	}
	c.args = args
	f.Controllers = append(f.Controllers, c)
	return f.run(ctx, c, args)
}

// run starts c's process with args and waits until it is ready.
func (f *Fleet) run(ctx context.Context, c *Controller, args []string) error {
	ready := filepath.Join(f.Dir, "controllers", c.ID+".addr")
	if err := os.Remove(ready); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	p, err := process.Start(f.Logs, f.Root, c.ID, f.Bins.Controller, nil, args...)
	if err != nil {
		return err
	}
	c.Proc = p
	addr, err := waitFile(ctx, ready, p, time.Minute)
	if err != nil {
		return fmt.Errorf("fleet: controller %s: %w", c.ID, err)
	}
	c.Addr, c.URL = addr, "https://"+addr
	return nil
}

// RestartController starts a stopped controller again on its data directory, with extra
// arguments added to those it first had, and waits until it is ready (or has exited).
func (f *Fleet) RestartController(ctx context.Context, c *Controller, extra ...string) error {
	if done, _ := c.Proc.Exited(); !done {
		return fmt.Errorf("fleet: controller %s is still running", c.ID)
	}
	return f.run(ctx, c, append(slices.Clone(c.args), extra...))
}

// initPKI creates the group's CA and admin credential once, before any controller starts, so
// that every node (each given --pki-dir) serves and verifies with the same CA.
func (f *Fleet) initPKI() error {
	f.PKI = filepath.Join(f.Dir, "pki")
	ca, _, err := pki.LoadOrCreateCA(f.PKI)
	if err != nil {
		return err
	}
	tok, _, err := pki.LoadOrCreateAdminToken(f.PKI)
	if err != nil {
		return err
	}
	f.ca, f.admin = ca, tok
	f.CAFile, f.AdminTokenFile = filepath.Join(f.PKI, pki.CACertFile), filepath.Join(f.PKI, pki.AdminTokenFile)
	return nil
}

// waitMembers waits until the group has n voters and a leader.
func (f *Fleet) waitMembers(ctx context.Context, n int) error {
	return f.poll(ctx, time.Minute, fmt.Sprintf("%d controller voters and a leader", n), func(ctx context.Context) (bool, error) {
		st, err := f.Client().Controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
		if err != nil {
			return false, nil
		}
		voters := 0
		for _, m := range st.Msg.GetMembers() {
			if m.GetVoter() {
				voters++
			}
		}
		return voters == n && st.Msg.GetLeaderId() != "", nil
	})
}

func (f *Fleet) startCluster(ctx context.Context, spec ClusterSpec) (*Cluster, error) {
	kernels := spec.Kernels
	if len(kernels) == 0 {
		kernels = []string{"6.8.0-1015-aws", "6.8.0-1015-aws"}
	}
	nic := spec.NICDriver
	if nic == "" {
		nic = "ena"
	}
	delay := spec.Delay
	if delay == 0 {
		delay = 10 * time.Millisecond
	}
	c := &Cluster{Name: spec.Name, Labels: spec.Labels, f: f}
	ko := kubebox.Options{Dir: filepath.Join(f.Dir, "clusters", spec.Name), Log: prefixed(f.log, spec.Name), Binaries: f.kube, StartTimeout: 5 * time.Minute}
	for i, k := range kernels {
		ko.Nodes = append(ko.Nodes, kubebox.Node{Name: fmt.Sprintf("%s-n%d", spec.Name, i+1), Kernel: k,
			Labels: map[string]string{agent.DefaultNICDriverLabel: nic}})
	}
	kc, err := kubebox.Start(ctx, ko)
	if err != nil {
		return nil, fmt.Errorf("fleet: cluster %s: %w", spec.Name, err)
	}
	c.Kube = kc
	if err := kc.InstallKubeProxy(ctx); err != nil {
		return c, err
	}
	u, err := url.Parse(kc.URL)
	if err != nil {
		return c, err
	}
	port, _ := strconv.Atoi(u.Port())
	values := map[string]any{"k8sServiceHost": u.Hostname(), "k8sServicePort": port}
	if _, err := cluster.InstallRelease(ctx, kc.RESTConfig, "kube-system", "cilium", filepath.Join(f.Root, "deploy/testdata/charts/cilium"), values); err != nil {
		return c, fmt.Errorf("fleet: cluster %s: install cilium: %w", spec.Name, err)
	}
	ready := filepath.Join(f.Dir, "clusters", spec.Name+"-target.addr")
	if c.target, err = process.Start(f.Logs, f.Root, spec.Name+"-target", f.Bins.LatencyTarget, nil,
		"--delay", delay.String(), "--ready-file", ready); err != nil {
		return c, err
	}
	if c.TargetAddr, err = waitFile(ctx, ready, c.target, 30*time.Second); err != nil {
		return c, fmt.Errorf("fleet: %s latency target: %w", spec.Name, err)
	}
	fmt.Fprintf(f.log, "fleet: cluster %s ready (API server %s, target %s)\n", spec.Name, kc.URL, c.TargetAddr)
	return c, nil
}

// StartAgent starts the cluster's fleet-agent (again, after KillAgent), pointed at every
// controller of the group.
func (c *Cluster) StartAgent() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.agent != nil {
		if done, _ := c.agent.Exited(); !done {
			return fmt.Errorf("fleet: the agent of %s is running", c.Name)
		}
	}
	var urls []string
	for _, ctl := range c.f.Controllers {
		urls = append(urls, ctl.URL)
	}
	c.runs++
	args := []string{"--controller", strings.Join(urls, ","), "--kubeconfig", c.Kube.Kubeconfig, "--cluster-id", c.Name,
		"--labels", labelString(c.Labels), "--resolve", TargetHost + "=" + c.TargetAddr, "--wait-timeout", "2m",
		"--ca", c.f.CAFile, "--identity-dir", filepath.Join(c.f.Dir, "agents", c.Name)}
	if c.runs == 1 {
		// The first start joins with a one-time token; a restart uses the stored certificate.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := c.f.Client().Access.CreateJoinToken(ctx, connect.NewRequest(&ebbflowv1.CreateJoinTokenRequest{Cluster: c.Name}))
		if err != nil {
			return fmt.Errorf("fleet: join token for %s: %w", c.Name, err)
		}
		args = append(args, "--join-token", res.Msg.GetToken())
	}
	p, err := process.Start(c.f.Logs, c.f.Root, c.Name+"-agent", c.f.Bins.Agent, nil, args...)
	if err != nil {
		return err
	}
	c.agent = p
	return nil
}

// KillAgent kills the cluster's agent with SIGKILL, as a crash would.
func (c *Cluster) KillAgent() {
	c.mu.Lock()
	p := c.agent
	c.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// AgentLog is the path of the agent's log.
func (c *Cluster) AgentLog() string { return filepath.Join(c.f.Logs, c.Name+"-agent.log") }

// SetDelay changes the latency target's response delay, while it runs.
func (c *Cluster) SetDelay(ctx context.Context, d time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.TargetAddr+"/delay?d="+d.String(), nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fleet: %s target: set delay: %s: %s", c.Name, res.Status, b)
	}
	return nil
}

// waitAlive waits until every cluster is registered and alive on the leader.
func (f *Fleet) waitAlive(ctx context.Context) error {
	return f.poll(ctx, 2*time.Minute, "every agent registered and alive", func(ctx context.Context) (bool, error) {
		res, err := f.Client().Clusters.ListClusters(ctx, connect.NewRequest(&ebbflowv1.ListClustersRequest{}))
		if err != nil {
			return false, nil
		}
		alive := map[string]bool{}
		for _, c := range res.Msg.GetClusters() {
			alive[c.GetName()] = c.GetLiveness() == ebbflowv1.Liveness_LIVENESS_ALIVE && c.GetInventory() != nil
		}
		for _, c := range f.Clusters {
			if !alive[c.Name] {
				return false, nil
			}
		}
		return true, nil
	})
}

// Cluster returns the member cluster named name, or nil.
func (f *Fleet) Cluster(name string) *Cluster {
	for _, c := range f.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Live returns the controllers whose process is running.
func (f *Fleet) Live() []*Controller {
	var out []*Controller
	for _, c := range f.Controllers {
		if done, _ := c.Proc.Exited(); !done {
			out = append(out, c)
		}
	}
	return out
}

// Clients are Connect clients of one controller.
type Clients struct {
	URL        string
	Profiles   ebbflowv1connect.ProfileServiceClient
	Clusters   ebbflowv1connect.ClusterServiceClient
	Rollouts   ebbflowv1connect.RolloutServiceClient
	Controller ebbflowv1connect.ControllerServiceClient
	Access     ebbflowv1connect.AccessServiceClient
}

// ClientsFor returns clients of the controller at url, calling as the admin over TLS.
func (f *Fleet) ClientsFor(url string) *Clients {
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: f.ca.Pool()}, ForceAttemptHTTP2: true}
	hc := &http.Client{Transport: tr}
	auth := controllertest.BearerToken(f.admin)
	return &Clients{
		URL:        url,
		Profiles:   ebbflowv1connect.NewProfileServiceClient(hc, url, auth),
		Clusters:   ebbflowv1connect.NewClusterServiceClient(hc, url, auth),
		Rollouts:   ebbflowv1connect.NewRolloutServiceClient(hc, url, auth),
		Controller: ebbflowv1connect.NewControllerServiceClient(hc, url, auth),
		Access:     ebbflowv1connect.NewAccessServiceClient(hc, url, auth),
	}
}

// Client returns clients of the first live controller (any node serves every call).
func (f *Fleet) Client() *Clients {
	live := f.Live()
	if len(live) == 0 {
		return f.ClientsFor("https://127.0.0.1:1")
	}
	return f.ClientsFor(live[0].URL)
}

// Leader returns the controller that leads now, as the live nodes agree.
func (f *Fleet) Leader(ctx context.Context) (*Controller, error) {
	var leader *Controller
	err := f.poll(ctx, time.Minute, "a leader among the live controllers", func(ctx context.Context) (bool, error) {
		for _, c := range f.Live() {
			st, err := f.ClientsFor(c.URL).Controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
			if err != nil {
				continue
			}
			for _, l := range f.Live() {
				if l.ID == st.Msg.GetLeaderId() {
					leader = l
					return true, nil
				}
			}
		}
		return false, nil
	})
	return leader, err
}

// Result is what one fleetctl run printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Fleetctl runs fleetctl against the first live controller (or the one --server names).
func (f *Fleet) Fleetctl(ctx context.Context, args ...string) (Result, error) {
	return f.FleetctlTo(ctx, nil, f.Client().URL, args...)
}

// FleetctlTo runs fleetctl against server, its output also copied to tee when set.
func (f *Fleet) FleetctlTo(ctx context.Context, tee io.Writer, server string, args ...string) (Result, error) {
	cmd := f.FleetctlCmd(ctx, server, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if tee != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, tee), io.MultiWriter(&errb, tee)
	}
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		return r, err
	}
	return r, nil
}

// FleetctlCmd is a fleetctl command against server, with the fleet's own config file, run in
// the module root; the caller wires its output.
func (f *Fleet) FleetctlCmd(ctx context.Context, server string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, f.Bins.Fleetctl, args...)
	cmd.Dir = f.Root
	cmd.Env = append(os.Environ(), "EBBFLOW_SERVER="+server, "EBBFLOW_CONFIG="+filepath.Join(f.Dir, "fleetctl.yaml"),
		"EBBFLOW_CA="+f.CAFile, "EBBFLOW_TOKEN_FILE="+f.AdminTokenFile)
	return cmd
}

// Rollout reads a rollout from any live controller.
func (f *Fleet) Rollout(ctx context.Context, id string) (*ebbflowv1.Rollout, error) {
	res, err := f.Client().Rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetRollout(), nil
}

// History reads a rollout's history from any live controller.
func (f *Fleet) History(ctx context.Context, id string) ([]*ebbflowv1.RolloutEvent, error) {
	res, err := f.Client().Rollouts.GetRolloutHistory(ctx, connect.NewRequest(&ebbflowv1.GetRolloutHistoryRequest{Id: id}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetEvents(), nil
}

// WaitRollout polls the rollout until cond holds, for at most timeout.
func (f *Fleet) WaitRollout(ctx context.Context, id string, timeout time.Duration, what string, cond func(*ebbflowv1.Rollout) bool) (*ebbflowv1.Rollout, error) {
	var last *ebbflowv1.Rollout
	err := f.poll(ctx, timeout, what, func(ctx context.Context) (bool, error) {
		r, err := f.Rollout(ctx, id)
		if err != nil {
			return false, nil
		}
		last = r
		return cond(r), nil
	})
	if err != nil && last != nil {
		err = fmt.Errorf("%w; rollout %s is %s: %s", err, id, last.GetState(), last.GetMessage())
	}
	return last, err
}

// WaitEvent polls the rollout's history until an event matches, and returns it.
func (f *Fleet) WaitEvent(ctx context.Context, id string, timeout time.Duration, what string, match func(*ebbflowv1.RolloutEvent) bool) (*ebbflowv1.RolloutEvent, error) {
	var found *ebbflowv1.RolloutEvent
	err := f.poll(ctx, timeout, what, func(ctx context.Context) (bool, error) {
		evs, err := f.History(ctx, id)
		if err != nil {
			return false, nil
		}
		for _, e := range evs {
			if match(e) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	return found, err
}

// poll calls cond every 100 ms until it holds, fails, a process of the fleet's controllers
// exits unexpectedly is not checked here (the caller's condition decides), or timeout passes.
func (f *Fleet) poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := cond(cctx)
		ccancel()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet: timed out after %s waiting for %s", timeout, what)
		case <-t.C:
		}
	}
}

// Stop ends every process of the fleet: agents, targets, clusters, then controllers.
func (f *Fleet) Stop() {
	var wg sync.WaitGroup
	for _, c := range f.Clusters {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.mu.Lock()
			a := c.agent
			c.mu.Unlock()
			if a != nil {
				a.Stop()
			}
			if c.target != nil {
				c.target.Stop()
			}
			if c.Kube != nil {
				c.Kube.Stop()
			}
		}()
	}
	wg.Wait()
	for i := len(f.Controllers) - 1; i >= 0; i-- {
		f.Controllers[i].Proc.Stop()
	}
}

// LogFiles lists every log the fleet wrote: its processes' and its clusters' components'.
func (f *Fleet) LogFiles() []string {
	var out []string
	_ = filepath.WalkDir(f.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// waitFile waits until path holds a line (a process's ready file) and returns it.
func waitFile(ctx context.Context, path string, p *process.Process, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b)), nil
		}
		if done, err := p.Exited(); done {
			return "", fmt.Errorf("%s exited (%v) before it was ready; see %s", p.Name, err, p.Log)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s not ready after %s; see %s", p.Name, timeout, p.Log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// prefixed writes each line to w with the cluster's name in front.
func prefixed(w io.Writer, name string) io.Writer {
	if w == io.Discard {
		return w
	}
	return &prefixWriter{w: w, prefix: "[" + name + "] "}
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, p.prefix+line)
		}
	}
	return len(b), nil
}

package faults

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/e2e/process"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// GroupOptions configure StartGroup.
type GroupOptions struct {
	// Bin is the fleet-controller binary; required.
	Bin string
	// Dir holds the nodes' data, the group's PKI and logs/; required.
	Dir string
	// Nodes is the size of the Raft group (default 3).
	Nodes int
	// Netns puts each node in a network namespace of its own (root only); otherwise every node
	// listens on 127.0.0.1 and partitions cannot be injected.
	Netns bool
	// RaftTimeout is --raft-heartbeat-timeout and --raft-election-timeout (0: the binary's
	// default, 1 s).
	RaftTimeout time.Duration
	// DiskSize, when positive, puts each node's data directory on a tmpfs of that many bytes
	// of its own (root only; see CanMountTmpfs), so that DiskFull can fill it. Stop copies
	// each node's data to <Dir>/<node id> and unmounts them.
	DiskSize int64
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Group is a running fleet-controller group: real processes, TLS and the group's admin token,
// as deployed.
type Group struct {
	Nodes []*Node
	// Net is the nodes' network; nil when they run on 127.0.0.1.
	Net *Network

	o     GroupOptions
	pki   string
	ca    *pki.CA
	admin string
	hc    *http.Client // the harness's own calls (status, final reads)

	mounted []string // tmpfs mount points, unmounted by Stop
}

// Node is one fleet-controller process of the group.
type Node struct {
	ID string
	// Index is the node's position in Group.Nodes.
	Index int
	// API and Raft are the node's host:port addresses, the same across restarts.
	API, Raft, URL string
	DataDir        string
	// Disk is the mount point of the node's tmpfs, DataDir's parent (GroupOptions.DiskSize);
	// empty when its data is on the run directory's file system.
	Disk string

	mu     sync.Mutex
	proc   *process.Process
	paused bool
	starts int
}

// StartGroup starts opts.Nodes controllers (node 1 bootstraps, the others join it) and waits
// until they are all voters under one leader. On error everything started is stopped.
func StartGroup(ctx context.Context, o GroupOptions) (_ *Group, err error) {
	if o.Bin == "" || o.Dir == "" {
		return nil, errors.New("faults: GroupOptions.Bin and Dir are required")
	}
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	g := &Group{o: o, pki: filepath.Join(o.Dir, "pki")}
	defer func() {
		if err != nil {
			g.Stop()
		}
	}()
	if g.ca, _, err = pki.LoadOrCreateCA(g.pki); err != nil {
		return nil, err
	}
	if g.admin, _, err = pki.LoadOrCreateAdminToken(g.pki); err != nil {
		return nil, err
	}
	g.hc = g.HTTPClient()
	if o.Netns {
		if g.Net, err = NewNetwork(ctx, o.Nodes); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "faults: network %s: nodes in namespaces %s-n1..n%d on %s.0/24\n", g.Net.Prefix, g.Net.Prefix, o.Nodes, g.Net.Subnet)
	}
	var ports []int
	if g.Net == nil {
		if ports, err = process.FreePorts(2 * o.Nodes); err != nil {
			return nil, err
		}
	}
	for i := range o.Nodes {
		n := &Node{ID: "ctl-" + strconv.Itoa(i+1), Index: i, DataDir: filepath.Join(o.Dir, "ctl-"+strconv.Itoa(i+1))}
		if o.DiskSize > 0 {
			n.Disk = filepath.Join(o.Dir, "disk-"+n.ID)
			if err := os.MkdirAll(n.Disk, 0o700); err != nil {
				return nil, err
			}
			if err := mountTmpfs(n.Disk, o.DiskSize); err != nil {
				return nil, fmt.Errorf("faults: %w", err)
			}
			g.mounted = append(g.mounted, n.Disk)
			n.DataDir = filepath.Join(n.Disk, "data")
		}
		if g.Net != nil {
			n.API, n.Raft = net.JoinHostPort(g.Net.NodeIP(i), "7070"), net.JoinHostPort(g.Net.NodeIP(i), "7071")
		} else {
			n.API, n.Raft = "127.0.0.1:"+strconv.Itoa(ports[2*i]), "127.0.0.1:"+strconv.Itoa(ports[2*i+1])
		}
		n.URL = "https://" + n.API
		if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
			return nil, err
		}
		g.Nodes = append(g.Nodes, n)
	}
	for i, n := range g.Nodes {
		join := ""
		if i > 0 {
			join = g.Nodes[0].URL
		}
		if err := g.start(ctx, n, join, false); err != nil {
			return nil, err
		}
	}
	if o.DiskSize > 0 {
		fmt.Fprintf(o.Log, "faults: data directories on tmpfs of %d MiB each\n", o.DiskSize>>20)
	}
	err = poll(ctx, time.Minute, fmt.Sprintf("%d voters and a leader", o.Nodes), func(ctx context.Context) error {
		l, err := g.Leader(ctx)
		if err != nil {
			return err
		}
		st, err := g.Status(ctx, l)
		if err != nil {
			return err
		}
		if v := voters(st); v != o.Nodes {
			return fmt.Errorf("the leader lists %d voters", v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// start runs n (joining through join unless empty; empty, with --rejoin, when rejoin) and
// waits for its ready file, written once it serves and knows a leader.
func (g *Group) start(ctx context.Context, n *Node, join string, rejoin bool) error {
	ready := filepath.Join(g.o.Dir, n.ID+".ready")
	if err := os.Remove(ready); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	args := []string{"--node-id", n.ID, "--data-dir", n.DataDir, "--listen", n.API, "--raft-listen", n.Raft,
		"--ready-file", ready, "--pki-dir", g.pki, "--log-level", "info", "--people-rate-limit=0"}
	if g.o.RaftTimeout > 0 {
		args = append(args, "--raft-heartbeat-timeout", g.o.RaftTimeout.String(), "--raft-election-timeout", g.o.RaftTimeout.String(),
			"--raft-leader-lease-timeout", g.o.RaftTimeout.String())
	}
	if join != "" {
		args = append(args, "--join", join)
	}
	if rejoin {
		args = append(args, "--rejoin")
	}
	bin := g.o.Bin
	if g.Net != nil {
		bin, args = g.Net.Exec(n.Index, append([]string{g.o.Bin}, args...)...)
	}
	p, err := process.Start(filepath.Join(g.o.Dir, "logs"), g.o.Dir, n.ID, bin, nil, args...)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc, n.paused = p, false
	n.starts++
	n.mu.Unlock()
	return poll(ctx, time.Minute, n.ID+" ready", func(context.Context) error {
		if done, perr := p.Exited(); done {
			return process.StopPolling(fmt.Errorf("faults: %s exited (%v) before it was ready; see %s", n.ID, perr, p.Log))
		}
		b, err := os.ReadFile(ready)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return errors.New("empty ready file")
		}
		return nil
	})
}

// Kill ends node i at once (SIGKILL), as a crash would.
func (g *Group) Kill(i int) {
	if p, _ := g.Nodes[i].state(); p != nil {
		p.Kill()
	}
}

// Restart starts a killed node again on its data directory, joining through a running node
// (a no-op for a member: AddVoter is idempotent).
func (g *Group) Restart(ctx context.Context, i int) error {
	return g.restart(ctx, i, false)
}

// Rejoin starts a stopped node again empty, as fleet-controller --rejoin does: its Raft log,
// snapshots and state are moved aside, the group removes its old membership (if any) and it
// joins as a new voter.
func (g *Group) Rejoin(ctx context.Context, i int) error {
	return g.restart(ctx, i, true)
}

func (g *Group) restart(ctx context.Context, i int, rejoin bool) error {
	n := g.Nodes[i]
	if g.Running(i) {
		return fmt.Errorf("faults: %s is still running", n.ID)
	}
	join := ""
	for _, o := range g.Nodes {
		if o != n && g.Running(o.Index) {
			join = o.URL
			break
		}
	}
	return g.start(ctx, n, join, rejoin)
}

// state is the node's current process (nil before its first start) and whether it is paused.
func (n *Node) state() (*process.Process, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc, n.paused
}

// StopNode stops node i gracefully (SIGTERM, SIGKILL after 10 s), as an operator would; a
// paused node is resumed first.
func (g *Group) StopNode(i int) {
	p, paused := g.Nodes[i].state()
	if p == nil {
		return
	}
	if paused {
		_ = g.Resume(i)
	}
	p.Stop()
}

// exitLog is node i's log file and whether its process has ended (and how).
func (g *Group) exitLog(i int) (log string, exited bool, err error) {
	p, _ := g.Nodes[i].state()
	if p == nil {
		return "", false, nil
	}
	exited, err = p.Exited()
	return p.Log, exited, err
}

// Running says whether node i's process is up (paused counts as running).
func (g *Group) Running(i int) bool {
	p, _ := g.Nodes[i].state()
	if p == nil {
		return false
	}
	done, _ := p.Exited()
	return !done
}

// Pause stops node i (SIGSTOP) until Resume.
func (g *Group) Pause(i int) error {
	n := g.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.proc.Pause(); err != nil {
		return err
	}
	n.paused = true
	return nil
}

// Resume continues node i after Pause.
func (g *Group) Resume(i int) error {
	n := g.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.paused {
		return nil
	}
	if err := n.proc.Resume(); err != nil {
		return err
	}
	n.paused = false
	return nil
}

// Unexpected names a node whose process ended although no fault killed it.
func (g *Group) Unexpected(killed map[int]bool) error {
	for i, n := range g.Nodes {
		if killed[i] {
			continue
		}
		p, _ := n.state()
		if p == nil {
			continue
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("faults: %s exited (%v) without being killed; see %s", n.ID, err, p.Log)
		}
	}
	return nil
}

// Stop resumes and stops every node, then removes the network.
func (g *Group) Stop() {
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		g.StopNode(i)
	}
	if g.hc != nil {
		g.hc.CloseIdleConnections()
	}
	if g.Net != nil {
		g.Net.Close()
	}
	// The tmpfs go with their data: copy it first to where it would have been without them,
	// so that a run kept for what it found keeps its nodes' data too.
	for _, n := range g.Nodes {
		if n.Disk == "" {
			continue
		}
		if err := os.CopyFS(filepath.Join(g.o.Dir, n.ID), os.DirFS(n.DataDir)); err != nil {
			fmt.Fprintf(g.o.Log, "faults: keeping %s's data: %v\n", n.ID, err)
		}
	}
	for _, d := range g.mounted {
		if err := unmountTmpfs(d); err != nil {
			fmt.Fprintf(g.o.Log, "faults: %v\n", err)
		}
	}
	g.mounted = nil
}

// Logs is the glob of the nodes' logs.
func (g *Group) Logs() string { return filepath.Join(g.o.Dir, "logs", "*.log") }

// Clients are Connect clients of one node, calling as the group's admin over TLS.
type Clients struct {
	Node     *Node
	Clusters ebbflowv1connect.ClusterServiceClient
	Profiles ebbflowv1connect.ProfileServiceClient
	Rollouts ebbflowv1connect.RolloutServiceClient
	Ctl      ebbflowv1connect.ControllerServiceClient
}

// HTTPClient is a fresh HTTP/2 client trusting the group's CA: one connection per node, with
// pings that notice a connection a paused or cut-off node holds open.
func (g *Group) HTTPClient() *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: g.ca.Pool()}, ForceAttemptHTTP2: true,
		HTTP2: &http.HTTP2Config{SendPingTimeout: 2 * time.Second, PingTimeout: 2 * time.Second},
		Proxy: nil, TLSHandshakeTimeout: 5 * time.Second, IdleConnTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: tr}
}

// ClientsOf are clients of node i over hc.
func (g *Group) ClientsOf(hc *http.Client, i int) *Clients {
	n := g.Nodes[i]
	auth := controllertest.BearerToken(g.admin)
	return &Clients{
		Node:     n,
		Clusters: ebbflowv1connect.NewClusterServiceClient(hc, n.URL, auth),
		Profiles: ebbflowv1connect.NewProfileServiceClient(hc, n.URL, auth),
		Rollouts: ebbflowv1connect.NewRolloutServiceClient(hc, n.URL, auth),
		Ctl:      ebbflowv1connect.NewControllerServiceClient(hc, n.URL, auth),
	}
}

// adminClients are clients of node i over the harness's own HTTP client.
func (g *Group) adminClients(i int) *Clients { return g.ClientsOf(g.hc, i) }

// Status is node i's own view of the group (never forwarded).
func (g *Group) Status(ctx context.Context, i int) (*ebbflowv1.GetControllerStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := g.adminClients(i).Ctl.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.Nodes[i].ID, err)
	}
	return res.Msg, nil
}

// Leader is the index of a node that says it leads and that another running node (if any
// answers) names as leader.
func (g *Group) Leader(ctx context.Context) (int, error) {
	var errs []error
	for i := range g.Nodes {
		if !g.Running(i) {
			continue
		}
		st, err := g.Status(ctx, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.GetState() == ebbflowv1.RaftState_RAFT_STATE_LEADER {
			return i, nil
		}
		errs = append(errs, fmt.Errorf("%s is %s, names leader %q", g.Nodes[i].ID, st.GetState(), st.GetLeaderId()))
	}
	return -1, fmt.Errorf("faults: no leader: %w", errors.Join(errs...))
}

// Converged waits until every node runs, names the same leader, lists every node as a voter
// and has applied the leader's commit index.
func (g *Group) Converged(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, "every node under one leader, caught up", func(ctx context.Context) error {
		l, err := g.Leader(ctx)
		if err != nil {
			return err
		}
		lst, err := g.Status(ctx, l)
		if err != nil {
			return err
		}
		if v := voters(lst); v != len(g.Nodes) {
			return fmt.Errorf("the leader %s lists %d voters", g.Nodes[l].ID, v)
		}
		for i := range g.Nodes {
			st, err := g.Status(ctx, i)
			if err != nil {
				return err
			}
			if st.GetLeaderId() != g.Nodes[l].ID {
				return fmt.Errorf("%s names leader %q, not %s", g.Nodes[i].ID, st.GetLeaderId(), g.Nodes[l].ID)
			}
			if st.GetAppliedIndex() < lst.GetCommitIndex() {
				return fmt.Errorf("%s applied %d of %d", g.Nodes[i].ID, st.GetAppliedIndex(), lst.GetCommitIndex())
			}
		}
		return nil
	})
}

func voters(st *ebbflowv1.GetControllerStatusResponse) int {
	return len(slices.DeleteFunc(slices.Clone(st.GetMembers()), func(m *ebbflowv1.ControllerMember) bool { return !m.GetVoter() }))
}

// poll calls cond every 50 ms (each call bounded by 5 s) until it returns nil or timeout
// passes (process.Poll).
func poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) error) error {
	if err := process.Poll(ctx, timeout, 50*time.Millisecond, 5*time.Second, what, cond); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

// member is node id's entry in st's configuration, or nil.
func member(st *ebbflowv1.GetControllerStatusResponse, id string) *ebbflowv1.ControllerMember {
	for _, m := range st.GetMembers() {
		if m.GetNodeId() == id {
			return m
		}
	}
	return nil
}

// RemoveServer removes node i from the group's configuration through the leader (which may be
// node i itself), retrying until the leader no longer lists it: a call cut short by a leader
// change is sent again only once the new leader still lists the node. via is the leader the
// last call went to (-1 if none was needed); answers are the errors the calls got, if any
// (a removal whose answer was lost may still have been applied).
func (g *Group) RemoveServer(ctx context.Context, i int) (via int, answers []string, err error) {
	n := g.Nodes[i]
	via = -1
	err = poll(ctx, 30*time.Second, "removing "+n.ID, func(ctx context.Context) error {
		l, err := g.Leader(ctx)
		if err != nil {
			return err
		}
		st, err := g.Status(ctx, l)
		if err != nil {
			return err
		}
		if member(st, n.ID) == nil {
			return nil
		}
		via = l
		_, err = g.adminClients(l).Ctl.RemoveServer(ctx, connect.NewRequest(&ebbflowv1.RemoveServerRequest{NodeId: n.ID}))
		if err != nil {
			err = fmt.Errorf("RemoveServer %s through %s: %w", n.ID, g.Nodes[l].ID, err)
			answers = append(answers, err.Error())
			return err
		}
		return errors.New("removed; checking")
	})
	return via, answers, err
}

// AddVoter adds node i back as a voter at its addresses through the leader, retrying until
// the leader lists it as one.
func (g *Group) AddVoter(ctx context.Context, i int) error {
	n := g.Nodes[i]
	return poll(ctx, 30*time.Second, "adding "+n.ID, func(ctx context.Context) error {
		l, err := g.Leader(ctx)
		if err != nil {
			return err
		}
		st, err := g.Status(ctx, l)
		if err != nil {
			return err
		}
		if m := member(st, n.ID); m != nil && m.GetVoter() {
			return nil
		}
		_, err = g.adminClients(l).Ctl.AddVoter(ctx, connect.NewRequest(&ebbflowv1.AddVoterRequest{NodeId: n.ID, RaftAddress: n.Raft, ApiAddress: n.API}))
		if err != nil {
			return fmt.Errorf("AddVoter %s through %s: %w", n.ID, g.Nodes[l].ID, err)
		}
		return errors.New("added; checking")
	})
}

// CaughtUp waits until the leader lists node i as a voter and node i names that leader and
// has applied everything the leader had committed when the wait began (or, should the leader
// change meanwhile, when the new one was first asked).
func (g *Group) CaughtUp(ctx context.Context, i int, timeout time.Duration) error {
	n := g.Nodes[i]
	var target uint64
	targetOf := ""
	return poll(ctx, timeout, n.ID+" a voter again and caught up", func(ctx context.Context) error {
		l, err := g.Leader(ctx)
		if err != nil {
			return err
		}
		lst, err := g.Status(ctx, l)
		if err != nil {
			return err
		}
		if targetOf != lst.GetNodeId() {
			target, targetOf = lst.GetCommitIndex(), lst.GetNodeId()
		}
		if m := member(lst, n.ID); m == nil || !m.GetVoter() {
			return fmt.Errorf("the leader %s does not list %s as a voter", lst.GetNodeId(), n.ID)
		}
		st, err := g.Status(ctx, i)
		if err != nil {
			return err
		}
		if st.GetLeaderId() != lst.GetNodeId() {
			return fmt.Errorf("%s names leader %q, not %s", n.ID, st.GetLeaderId(), lst.GetNodeId())
		}
		if st.GetAppliedIndex() < target {
			return fmt.Errorf("%s applied %d of %d", n.ID, st.GetAppliedIndex(), target)
		}
		return nil
	})
}

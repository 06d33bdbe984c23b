package raftbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/e2e/process"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// ebbflowNode is one fleet-controller node (named by its --node-id).
type ebbflowNode struct {
	dataDir, ready string
	api, raft      string // host:port, the same across restarts
	url            string
}

// ebbflowGroup is a 3-node fleet-controller group on 127.0.0.1 with --insecure (h2c, no auth).
type ebbflowGroup struct {
	group
	flags   []string // every node's flags after its own addresses, the extras last
	nodes   []*ebbflowNode
	hc      *http.Client
	cluster []ebbflowv1connect.ClusterServiceClient
	ctl     []ebbflowv1connect.ControllerServiceClient
}

// h2cClient speaks HTTP/2 with prior knowledge only, as gRPC over h2c needs: one multiplexed
// connection per node, as etcd's client holds one gRPC connection per endpoint.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, Proxy: nil, IdleConnTimeout: 90 * time.Second}}
}

// StartEbbflow starts a 3-node group of bin under dir: ctl-1 bootstraps, the others join it.
// Every node gets --insecure, its addresses, --log-level warn and, when bin has it,
// --people-rate-limit=0 (the default 100 calls/s per actor would cap the benchmark: every
// unauthenticated caller is one actor), then extra (which may override any of them).
func StartEbbflow(ctx context.Context, label, bin, dir string, extra []string) (_ Side, err error) {
	base, err := newGroup(label, bin, dir, "ctl")
	if err != nil {
		return nil, err
	}
	g := &ebbflowGroup{group: base, hc: h2cClient()}
	g.ask = g.view
	defer func() {
		if err != nil {
			g.Stop()
		}
	}()
	help, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	if !bytes.Contains(help, []byte("--insecure")) {
		return nil, fmt.Errorf("raftbench: %s --help does not list --insecure; is it a fleet-controller?", bin)
	}
	g.flags = []string{"--insecure", "--log-level", "warn"}
	if bytes.Contains(help, []byte("--people-rate-limit")) {
		g.flags = append(g.flags, "--people-rate-limit=0")
	}
	g.flags = append(g.flags, extra...)
	ports, err := process.FreePorts(2 * groupSize)
	if err != nil {
		return nil, err
	}
	for i, id := range g.names {
		n := &ebbflowNode{
			dataDir: filepath.Join(g.dir, id), ready: filepath.Join(g.dir, id+".ready"),
			api: "127.0.0.1:" + strconv.Itoa(ports[2*i]), raft: "127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
		}
		n.url = "http://" + n.api
		if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
			return nil, err
		}
		g.nodes = append(g.nodes, n)
		g.cluster = append(g.cluster, ebbflowv1connect.NewClusterServiceClient(g.hc, n.url, connect.WithGRPC()))
		g.ctl = append(g.ctl, ebbflowv1connect.NewControllerServiceClient(g.hc, n.url, connect.WithGRPC()))
	}
	for i := range groupSize {
		join := ""
		if i > 0 {
			join = g.nodes[0].url
		}
		if err := g.start(ctx, i, join); err != nil {
			return nil, err
		}
	}
	err = poll(ctx, time.Minute, label+": 3 voters and a leader", func(ctx context.Context) error {
		_, err := g.Leader(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// start runs node i (joining through join unless it is empty) and waits for its ready file.
func (g *ebbflowGroup) start(ctx context.Context, i int, join string) error {
	n := g.nodes[i]
	if err := os.Remove(n.ready); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	args := []string{"--node-id", g.names[i], "--data-dir", n.dataDir, "--listen", n.api, "--raft-listen", n.raft, "--ready-file", n.ready}
	if join != "" {
		args = append(args, "--join", join)
	}
	args = append(args, g.flags...)
	if err := g.startNode(i, args...); err != nil {
		return err
	}
	if _, err := waitFile(ctx, n.ready, g.procs[i], time.Minute); err != nil {
		return fmt.Errorf("raftbench: %s: %w", g.label, err)
	}
	return nil
}

func (g *ebbflowGroup) status(ctx context.Context, i int) (*ebbflowv1.GetControllerStatusResponse, error) {
	res, err := g.ctl[i].GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.names[i], err)
	}
	return res.Msg, nil
}

// view is what node i says of the group.
func (g *ebbflowGroup) view(ctx context.Context, i int) (raftView, error) {
	st, err := g.status(ctx, i)
	if err != nil {
		return raftView{}, err
	}
	v := raftView{
		leader: slices.Index(g.names, st.GetLeaderId()), named: strconv.Quote(st.GetLeaderId()),
		voters: voters(st), commit: st.GetCommitIndex(), applied: st.GetAppliedIndex(),
	}
	if st.GetState() != ebbflowv1.RaftState_RAFT_STATE_LEADER {
		v.notLeading = fmt.Sprintf("is %s, not leader", st.GetState())
	}
	return v, nil
}

func voters(st *ebbflowv1.GetControllerStatusResponse) int {
	v := 0
	for _, m := range st.GetMembers() {
		if m.GetVoter() {
			v++
		}
	}
	return v
}

func (g *ebbflowGroup) Prepare(ctx context.Context, t *tracker) error {
	kvs, done, err := g.Clients(ctx, 1, false)
	if err != nil {
		return err
	}
	defer done()
	c := kvs[0].(*ebbflowKV)
	for i, key := range t.keys {
		err := poll(ctx, 30*time.Second, g.label+": register "+key, func(ctx context.Context) error {
			_, err := g.cluster[c.node].RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{
				Name: key, Labels: toLabels(t.initial(i)),
			}))
			if err != nil {
				c.node = (c.node + 1) % len(g.nodes)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *ebbflowGroup) Clients(ctx context.Context, n int, leaderOnly bool) ([]KV, func(), error) {
	leader := -1
	if leaderOnly {
		var err error
		if leader, err = g.Leader(ctx); err != nil {
			return nil, nil, err
		}
	}
	kvs := make([]KV, n)
	for i := range kvs {
		c := &ebbflowKV{g: g, node: i % len(g.nodes)}
		if leaderOnly {
			c.node, c.fixed = leader, true
		}
		kvs[i] = c
	}
	return kvs, func() { g.hc.CloseIdleConnections() }, nil
}

// ebbflowKV is one client: its node, moved on to the next one after an error unless fixed.
type ebbflowKV struct {
	g     *ebbflowGroup
	node  int
	fixed bool
}

func (c *ebbflowKV) moveOn(err error) error {
	if err != nil && !c.fixed {
		c.node = (c.node + 1) % len(c.g.nodes)
	}
	return err
}

func (c *ebbflowKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.g.cluster[c.node].SetClusterLabels(ctx, connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{
		Name: key, Labels: toLabels(value),
	}))
	return c.moveOn(err)
}

func (c *ebbflowKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	// The default read consistency is linearizable (the leader confirms its leadership).
	res, err := c.g.cluster[c.node].GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: key}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil, false, nil
	}
	if err := c.moveOn(err); err != nil {
		return nil, false, err
	}
	v, err := fromLabels(res.Msg.GetCluster().GetLabels())
	return v, err == nil, err
}

// Restart starts node i again, joining through a live node (a no-op for a member: AddVoter is
// idempotent), and waits for its ready file (written once it knows a leader).
func (g *ebbflowGroup) Restart(ctx context.Context, i int) error {
	join := g.nodes[(i+1)%len(g.nodes)].url
	return g.start(ctx, i, join)
}

func (g *ebbflowGroup) Stop() {
	g.stopNodes()
	g.hc.CloseIdleConnections()
}

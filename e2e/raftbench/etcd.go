package raftbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ebbflow/ebbflow/e2e/process"
)

// etcdNode is one etcd member (named by its --name).
type etcdNode struct {
	dataDir      string
	client, peer string // URLs, the same across restarts
	id           uint64 // member id, learned once the cluster is up
}

// etcdGroup is a 3-member etcd cluster on 127.0.0.1, plain HTTP, default flags otherwise.
type etcdGroup struct {
	group
	nodes []*etcdNode
	admin *clientv3.Client // Status calls dial the endpoint they name
}

// StartEtcd starts a 3-member cluster of bin under dir and waits until every member answers
// and they agree on a leader.
func StartEtcd(ctx context.Context, label, bin, dir string) (_ Side, err error) {
	base, err := newGroup(label, bin, dir, "etcd")
	if err != nil {
		return nil, err
	}
	g := &etcdGroup{group: base}
	g.ask = g.view
	defer func() {
		if err != nil {
			g.Stop()
		}
	}()
	ports, err := process.FreePorts(2 * groupSize)
	if err != nil {
		return nil, err
	}
	for i, name := range g.names {
		n := &etcdNode{
			dataDir: filepath.Join(g.dir, name),
			client:  "http://127.0.0.1:" + strconv.Itoa(ports[2*i]), peer: "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
		}
		if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
			return nil, err
		}
		g.nodes = append(g.nodes, n)
	}
	if g.admin, err = newEtcdClient(g.endpoints()); err != nil {
		return nil, err
	}
	for i := range g.nodes {
		if err := g.start(i, g.initialCluster()); err != nil {
			return nil, err
		}
	}
	err = poll(ctx, time.Minute, label+": 3 members and a leader", func(ctx context.Context) error {
		if err := g.Exited(); err != nil {
			return process.StopPolling(err)
		}
		for i, n := range g.nodes {
			st, err := g.status(ctx, i)
			if err != nil {
				return err
			}
			n.id = st.Header.GetMemberId()
		}
		_, err := g.Leader(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// newEtcdClient is a client of endpoints that logs nothing (clientv3 logs retries at warn).
func newEtcdClient(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("raftbench: etcd client of %s: %w", strings.Join(endpoints, ","), err)
	}
	return c, nil
}

func (g *etcdGroup) endpoints() []string {
	var eps []string
	for _, n := range g.nodes {
		eps = append(eps, n.client)
	}
	return eps
}

// start runs member i; initial is --initial-cluster (ignored by etcd once the data directory
// holds the member).
func (g *etcdGroup) start(i int, initial string) error {
	n := g.nodes[i]
	args := []string{
		"--name", g.names[i], "--data-dir", n.dataDir,
		"--listen-client-urls", n.client, "--advertise-client-urls", n.client,
		"--listen-peer-urls", n.peer, "--initial-advertise-peer-urls", n.peer,
		"--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "raftbench",
	}
	return g.startNode(i, args...)
}

func (g *etcdGroup) initialCluster() string {
	var parts []string
	for i, n := range g.nodes {
		parts = append(parts, g.names[i]+"="+n.peer)
	}
	return strings.Join(parts, ",")
}

// status asks member i alone (bounded: clientv3 waits for a connection otherwise).
func (g *etcdGroup) status(ctx context.Context, i int) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := g.admin.Status(ctx, g.nodes[i].client)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.names[i], err)
	}
	if len(st.Errors) > 0 {
		return nil, fmt.Errorf("%s: %s", g.names[i], strings.Join(st.Errors, "; "))
	}
	return st, nil
}

func (g *etcdGroup) index(id uint64) int {
	for i, n := range g.nodes {
		if n.id == id && id != 0 {
			return i
		}
	}
	return -1
}

// view is what member i says of the cluster (a member lists no voters).
func (g *etcdGroup) view(ctx context.Context, i int) (raftView, error) {
	st, err := g.status(ctx, i)
	if err != nil {
		return raftView{}, err
	}
	v := raftView{
		leader: g.index(st.Leader), named: fmt.Sprintf("%x", st.Leader),
		voters: -1, learner: st.IsLearner, commit: st.RaftIndex, applied: st.RaftAppliedIndex,
	}
	if st.Leader != g.nodes[i].id {
		v.notLeading = fmt.Sprintf("names %x, not itself, leader", st.Leader)
	}
	return v, nil
}

// Prepare writes every key's initial value.
func (g *etcdGroup) Prepare(ctx context.Context, t *tracker) error {
	for i, key := range t.keys {
		err := poll(ctx, 30*time.Second, g.label+": put "+key, func(ctx context.Context) error {
			_, err := g.admin.Put(ctx, key, string(t.initial(i)))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Clients share one clientv3 client, as an application would: it holds a gRPC connection to
// every endpoint and balances calls over them round-robin (or only the leader's).
func (g *etcdGroup) Clients(ctx context.Context, n int, leaderOnly bool) ([]KV, func(), error) {
	eps := g.endpoints()
	if leaderOnly {
		l, err := g.Leader(ctx)
		if err != nil {
			return nil, nil, err
		}
		eps = []string{g.nodes[l].client}
	}
	c, err := newEtcdClient(eps)
	if err != nil {
		return nil, nil, err
	}
	kvs := make([]KV, n)
	for i := range kvs {
		kvs[i] = etcdKV{c}
	}
	return kvs, func() { _ = c.Close() }, nil
}

type etcdKV struct{ c *clientv3.Client }

func (e etcdKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := e.c.Put(ctx, key, string(value))
	return err
}

func (e etcdKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	res, err := e.c.Get(ctx, key) // linearizable unless WithSerializable
	if err != nil {
		return nil, false, err
	}
	if len(res.Kvs) == 0 {
		return nil, false, nil
	}
	return res.Kvs[0].Value, true, nil
}

func (g *etcdGroup) Restart(ctx context.Context, i int) error {
	if err := g.start(i, g.initialCluster()); err != nil {
		return err
	}
	p := g.procs[i]
	return poll(ctx, time.Minute, g.label+": "+p.Name+" answering", func(ctx context.Context) error {
		if done, err := p.Exited(); done {
			return process.StopPolling(fmt.Errorf("raftbench: %s exited (%v) on restart; see %s", p.Name, err, p.Log))
		}
		_, err := g.status(ctx, i)
		return err
	})
}

func (g *etcdGroup) Stop() {
	g.stopNodes()
	if g.admin != nil {
		_ = g.admin.Close()
	}
}

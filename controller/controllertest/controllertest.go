// Package controllertest starts real controller nodes in a test process, assembled as
// fleet-controller assembles them (controller.StartNode): a real Raft store on bbolt in a
// temporary directory and the real API server on a loopback listener (h2c, or TLS).
package controllertest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/store"
)

// Node is one running controller node.
type Node struct {
	ID       string
	RaftAddr string
	Dir      string
	Addr     string // API host:port
	URL      string // http://host:port
	Store    *store.Store
	Server   *controller.Server
	node     *controller.Node
	closed   bool
	security *Security
}

// Options tune a node.
type Options struct {
	// Join adds the node as a voter of this leader (via the API) instead of bootstrapping.
	Join *Node
	// Dir reuses a data directory (restart); a fresh temporary one by default.
	Dir string
	// Config adjusts the controller config before New.
	Config func(*controller.Config)
	// ID names the node; "node-N" by default.
	ID string
	// Addr binds the API to this host:port (a restart on the same address); a free port by default.
	Addr string
	// RaftAddr binds Raft to this host:port (a restart keeps its Raft address); a free port by default.
	RaftAddr string
	// Security, when set, turns TLS and authentication on (see NewSecurity); without it the
	// node runs with authentication off, over h2c.
	Security *Security
}

var seq atomic.Int64

// Logger is quiet unless EBBFLOW_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("EBBFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// Start starts a node and waits until it has a leader.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	num := seq.Add(1)
	id := o.ID
	if id == "" {
		id = "node-" + strconv.FormatInt(num, 10)
	}
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := o.RaftAddr
	if raftAddr == "" {
		raftAddr = "127.0.0.1:0"
	}
	log := Logger(t).With("node", id)
	scfg := store.Config{
		NodeID: id, DataDir: dir, RaftBind: raftAddr, APIAddress: ln.Addr().String(),
		Bootstrap: o.Join == nil, Logger: log, Fast: true,
	}
	cfg := controller.Config{NodeID: id, Logger: log}
	nopts := controller.NodeOptions{Store: scfg, Config: cfg, Listener: ln}
	var src *pki.NodeCertSource
	scheme := "http"
	if o.Security != nil {
		// One certificate for the API, Raft and calls to other nodes, as fleet-controller has.
		src, nopts.TLS = o.Security.nodeTLS(t, id)
		nopts.Store.RaftTLS = pki.PeerTLS(src, o.Security.CA.Pool())
		scheme = "https"
	}
	nopts.Configure = func(st *store.Store, cfg *controller.Config) error {
		if o.Security != nil {
			if err := o.Security.configure(src, cfg, st); err != nil {
				return err
			}
		}
		if o.Config != nil {
			o.Config(cfg)
		}
		return nil
	}
	node, err := controller.StartNode(nopts)
	if err != nil {
		t.Fatal(err)
	}
	st := node.Store
	n := &Node{ID: id, RaftAddr: st.RaftAddress(), Dir: dir, Addr: ln.Addr().String(), URL: scheme + "://" + ln.Addr().String(),
		Store: st, Server: node.Server, node: node, security: o.Security}
	t.Cleanup(n.Stop)
	if o.Join != nil {
		c := n.ControllerClient(o.Join.URL)
		if o.Security != nil {
			c = ebbflowv1connect.NewControllerServiceClient(o.Security.Client(nil), o.Join.URL, o.Security.Bearer("admin"))
		}
		if _, err := c.AddVoter(context.Background(), connect.NewRequest(addVoter(id, st.RaftAddress(), n.Addr))); err != nil {
			t.Fatalf("join %s via %s: %v", id, o.Join.URL, err)
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := st.WaitForLeader(wctx); err != nil {
		t.Fatalf("%s: no leader: %v", id, err)
	}
	// A new leader records its API address with a Raft write of its own after it serves its
	// first request; wait for it so that tests counting log entries start from a settled log.
	for {
		if _, err := st.LeaderAPIAddress(); err == nil {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("%s: leader's API address never recorded", id)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return n
}

// StartCluster starts n nodes: the first bootstraps, the others join it.
func StartCluster(t testing.TB, n int) []*Node {
	t.Helper()
	return StartClusterWith(t, n, nil)
}

// StartClusterWith starts n nodes like StartCluster, each with its config adjusted by config.
func StartClusterWith(t testing.TB, n int, config func(*controller.Config)) []*Node {
	t.Helper()
	first := Start(t, Options{Config: config})
	nodes := []*Node{first}
	for i := 1; i < n; i++ {
		nodes = append(nodes, Start(t, Options{Join: first, Config: config}))
	}
	return nodes
}

// StartSecureCluster starts n nodes like StartClusterWith, with TLS and authentication on.
func StartSecureCluster(t testing.TB, n int, sec *Security, config func(*controller.Config)) []*Node {
	t.Helper()
	first := Start(t, Options{Config: config, Security: sec})
	nodes := []*Node{first}
	for i := 1; i < n; i++ {
		nodes = append(nodes, Start(t, Options{Join: first, Config: config, Security: sec}))
	}
	return nodes
}

// Stop shuts the node down (idempotent): API first, then the store.
func (n *Node) Stop() {
	if n.closed {
		return
	}
	n.closed = true
	_ = n.node.Close()
}

// HTTPClient speaks HTTP/1.1 and h2c, as Connect, gRPC-Web and gRPC clients need.
func HTTPClient() *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// ControllerClient is a Connect client for a node's ControllerService.
func (n *Node) ControllerClient(url string, opts ...connect.ClientOption) ebbflowv1connect.ControllerServiceClient {
	return ebbflowv1connect.NewControllerServiceClient(HTTPClient(), url, opts...)
}

// Leader returns the node that is leader now, waiting up to 20 s for one among the running nodes.
func Leader(t testing.TB, nodes []*Node) *Node {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if !n.closed && n.Store.IsLeader() {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 20s")
	return nil
}

// Eventually polls cond every 10 ms until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func addVoter(id, raftAddr, apiAddr string) *ebbflowv1.AddVoterRequest {
	return &ebbflowv1.AddVoterRequest{NodeId: id, RaftAddress: raftAddr, ApiAddress: apiAddr}
}

// Restart starts a stopped node again on the same data directory and addresses.
func (n *Node) Restart(t testing.TB) *Node {
	t.Helper()
	return Start(t, Options{ID: n.ID, Dir: n.Dir, Addr: n.Addr, RaftAddr: n.RaftAddr, Security: n.security})
}

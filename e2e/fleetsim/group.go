package fleetsim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	e2efleet "github.com/ebbflow/ebbflow/e2e/fleet"
	"github.com/ebbflow/ebbflow/e2e/process"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on every Linux
// architecture Go supports).
const clockTicks = 100

// BuildController compiles ./cmd/fleet-controller of the module at root into dir.
func BuildController(ctx context.Context, root, dir string) (string, error) {
	bin, err := process.BuildController(ctx, root, dir)
	if err != nil {
		return "", fmt.Errorf("fleetsim: %w\n(build another revision with 'make bench-fleet REF=<rev>' or pass --controller-bin)", err)
	}
	return bin, nil
}

// RepoRoot finds the module root at or above the working directory.
func RepoRoot() (string, error) { return e2efleet.RepoRoot() }

// node is one fleet-controller process of the group.
type node struct {
	ID, Addr, URL, DataDir string
	PID                    int
	Proc                   *process.Process
}

// group is a running 3-node fleet-controller group on 127.0.0.1 with TLS off.
type group struct {
	nodes []*node
	hc    *http.Client
}

// startGroup starts size controller processes from bin under dir: the first bootstraps, the
// others join it; logs go to dir/logs. It returns once the group has size voters and a leader.
func startGroup(ctx context.Context, bin, dir string, size int, heartbeat time.Duration, logLevel string, extra []string) (_ *group, err error) {
	g := &group{hc: &http.Client{Timeout: 2 * time.Minute}}
	defer func() {
		if err != nil {
			g.stop()
		}
	}()
	logs := filepath.Join(dir, "logs")
	for i := range size {
		id := "ctl-" + strconv.Itoa(i+1)
		n := &node{ID: id, DataDir: filepath.Join(dir, "controllers", id)}
		if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
			return nil, err
		}
		ready := filepath.Join(dir, "controllers", id+".addr")
		args := []string{"--node-id", id, "--data-dir", n.DataDir, "--listen", "127.0.0.1:0", "--raft-listen", "127.0.0.1:0",
			"--ready-file", ready, "--insecure", "--log-level", logLevel}
		if heartbeat > 0 {
			args = append(args, "--heartbeat-interval", heartbeat.String())
		}
		if i > 0 {
			args = append(args, "--join", g.nodes[0].URL)
		}
		args = append(args, extra...)
		if n.Proc, err = process.Start(logs, dir, id, bin, nil, args...); err != nil {
			return nil, fmt.Errorf("fleetsim: start controller %s: %w", id, err)
		}
		g.nodes = append(g.nodes, n)
		if n.Addr, err = waitReady(ctx, ready, n.Proc, time.Minute); err != nil {
			return nil, fmt.Errorf("fleetsim: controller %s: %w", id, err)
		}
		n.URL = "http://" + n.Addr
		if n.PID, err = childPID(n.DataDir); err != nil {
			return nil, fmt.Errorf("fleetsim: controller %s: %w", id, err)
		}
	}
	err = poll(ctx, time.Minute, fmt.Sprintf("%d controller voters and a leader", size), func(ctx context.Context) bool {
		st, err := g.status(ctx, g.nodes[0])
		if err != nil {
			return false
		}
		voters := 0
		for _, m := range st.GetMembers() {
			if m.GetVoter() {
				voters++
			}
		}
		return voters == size && st.GetLeaderId() != ""
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// stop ends every controller (SIGTERM, then SIGKILL after 10 s).
func (g *group) stop() {
	for i := len(g.nodes) - 1; i >= 0; i-- {
		if g.nodes[i].Proc != nil {
			g.nodes[i].Proc.Stop()
		}
	}
}

// urls are the API URLs of every node, as the agents are given them.
func (g *group) urls() []string {
	out := make([]string, len(g.nodes))
	for i, n := range g.nodes {
		out[i] = n.URL
	}
	return out
}

// exited names a controller whose process has ended, if any.
func (g *group) exited() error {
	for _, n := range g.nodes {
		if done, err := n.Proc.Exited(); done {
			return fmt.Errorf("fleetsim: controller %s exited (%v); see %s", n.ID, err, n.Proc.Log)
		}
	}
	return nil
}

func (g *group) status(ctx context.Context, n *node) (*ebbflowv1.GetControllerStatusResponse, error) {
	res, err := ebbflowv1connect.NewControllerServiceClient(g.hc, n.URL).GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// leader is the node the group names as its leader, asking each node in turn.
func (g *group) leader(ctx context.Context) (*node, *ebbflowv1.GetControllerStatusResponse, error) {
	var errs []error
	for _, n := range g.nodes {
		st, err := g.status(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
			continue
		}
		for _, l := range g.nodes {
			if l.ID == st.GetLeaderId() {
				if l != n {
					if st, err = g.status(ctx, l); err != nil {
						return nil, nil, fmt.Errorf("fleetsim: status of the leader %s: %w", l.ID, err)
					}
				}
				return l, st, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("fleetsim: no node names a leader: %w", errors.Join(errs...))
}

// clients are Connect clients of the leader's API (any node would forward; the leader is
// asked directly so the simulator adds no forwarding hop of its own).
func (g *group) clients(n *node) (ebbflowv1connect.ProfileServiceClient, ebbflowv1connect.RolloutServiceClient) {
	return ebbflowv1connect.NewProfileServiceClient(g.hc, n.URL), ebbflowv1connect.NewRolloutServiceClient(g.hc, n.URL)
}

// procStat is what /proc says of one process at one moment.
type procStat struct {
	// CPU is user plus system time, all threads.
	CPU time.Duration
	// RSS is VmRSS in bytes.
	RSS float64
}

func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("fleetsim: read /proc/%d/stat: %w", pid, err)
	}
	// Fields after the command name (which may hold spaces) start at state, field 3.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return st, fmt.Errorf("fleetsim: /proc/%d/stat has %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return st, fmt.Errorf("fleetsim: /proc/%d/stat utime/stime: %w", pid, err)
	}
	st.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("fleetsim: read /proc/%d/status: %w", pid, err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fs := strings.Fields(rest) // "123456 kB"
			kb, err := strconv.ParseFloat(fs[0], 64)
			if err != nil || len(fs) != 2 || fs[1] != "kB" {
				return st, fmt.Errorf("fleetsim: /proc/%d/status: unreadable VmRSS %q", pid, rest)
			}
			st.RSS = kb * 1024
			return st, nil
		}
	}
	return st, fmt.Errorf("fleetsim: /proc/%d/status has no VmRSS", pid)
}

// childPID finds the child of this process that runs with --data-dir dataDir (e2e/process
// does not expose the pid; the data directory is unique to the run).
func childPID(dataDir string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self, want := os.Getpid(), []byte("\x00--data-dir\x00"+dataDir+"\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmdline, want) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(self) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process with --data-dir %s in /proc", dataDir)
}

// metricSample is one line of a Prometheus text exposition.
type metricSample struct {
	name   string
	labels string
	value  float64
}

// scrape reads a node's /metrics.
func (g *group) scrape(ctx context.Context, n *node) ([]metricSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := g.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fleetsim: scrape %s /metrics: %w", n.ID, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("fleetsim: scrape %s /metrics: %s: %s", n.ID, res.Status, b)
	}
	var out []metricSample
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		s := metricSample{name: line[:sp], value: v}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			s.name, s.labels = s.name[:i], s.name[i:]
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// metricValue is the first sample named name, or NaN.
func metricValue(ss []metricSample, name string) float64 {
	for _, s := range ss {
		if s.name == name {
			return s.value
		}
	}
	return nan
}

// byKind sums the samples named name by their kind label; nil when there is none.
func byKind(ss []metricSample, name string) map[string]float64 {
	var out map[string]float64
	for _, s := range ss {
		if s.name != name {
			continue
		}
		if out == nil {
			out = map[string]float64{}
		}
		out[labelValue(s.labels, "kind")] += s.value
	}
	return out
}

func labelValue(labels, key string) string {
	_, rest, ok := strings.Cut(labels, key+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// waitReady waits until a process's ready file holds its address.
func waitReady(ctx context.Context, path string, p *process.Process, timeout time.Duration) (string, error) {
	var addr string
	err := poll(ctx, timeout, p.Name+" writing "+path, func(context.Context) bool {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			addr = string(bytes.TrimSpace(b))
			return true
		}
		if done, _ := p.Exited(); done {
			return true
		}
		return false
	})
	if done, perr := p.Exited(); done {
		return "", fmt.Errorf("%s exited (%v) before it was ready; see %s", p.Name, perr, p.Log)
	}
	if err != nil {
		return "", fmt.Errorf("%w; see %s", err, p.Log)
	}
	return addr, nil
}

// poll calls cond every 50 ms (each call bounded by 30 s) until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		ok := cond(cctx)
		ccancel()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleetsim: waited %s for %s: %w", timeout, what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// histogram is one node's cumulative histogram: upper bounds (ascending, the last +Inf) and
// counts.
type histogram struct {
	le  []float64
	cum []float64
}

// schedLatencies reads every node's go_sched_latencies_seconds (nil for a node without it).
func (g *group) schedLatencies(ctx context.Context) []*histogram {
	out := make([]*histogram, len(g.nodes))
	for i, n := range g.nodes {
		ss, err := g.scrape(ctx, n)
		if err != nil {
			continue
		}
		h := &histogram{}
		for _, s := range ss {
			if s.name != "go_sched_latencies_seconds_bucket" {
				continue
			}
			le, err := strconv.ParseFloat(labelValue(s.labels, "le"), 64)
			if err != nil {
				continue
			}
			h.le, h.cum = append(h.le, le), append(h.cum, s.value)
		}
		if len(h.le) > 0 {
			out[i] = h
		}
	}
	return out
}

// schedFigures is, over the nodes, the largest share of goroutine waits longer than 10 ms
// and the largest number of waits longer than 117 ms (the runtime histogram's two top
// bounds), from the difference of two reads (NaN without them).
func schedFigures(before, after []*histogram) (over10ms, over117ms float64) {
	over10ms, over117ms = nan, nan
	for i := range min(len(before), len(after)) {
		b, a := before[i], after[i]
		if b == nil || a == nil || len(a.le) != len(b.le) {
			continue
		}
		total := a.cum[len(a.cum)-1] - b.cum[len(b.cum)-1]
		if total <= 0 {
			continue
		}
		under := func(bound float64) float64 {
			for j := range a.le {
				if a.le[j] >= bound*0.999 {
					return a.cum[j] - b.cum[j]
				}
			}
			return total
		}
		share, long := (total-under(0.01048576))/total, total-under(0.117440512)
		if math.IsNaN(over10ms) || share > over10ms {
			over10ms = share
		}
		if math.IsNaN(over117ms) || long > over117ms {
			over117ms = long
		}
	}
	return over10ms, over117ms
}

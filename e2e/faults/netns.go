package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Network puts every node in a network namespace of its own, joined by a veth pair to a bridge
// in a bridge namespace; a further veth pair joins that bridge to the namespace the harness
// runs in (the host end holds the subnet's .1), so clients reach every node directly and are
// never partitioned themselves.
//
//	host ns: <p>h 10.231.S.1/24 ─┐
//	bridge ns <p>-br:  br0 ──────┼── <p>b1 ─ ns <p>-n1: eth0 10.231.S.11/24
//	                             ├── <p>b2 ─ ns <p>-n2: eth0 10.231.S.12/24
//	                             └── <p>b3 ─ ns <p>-n3: eth0 10.231.S.13/24
//
// Partitions drop packets silently between pairs of nodes: each side of a cut pair gets a
// permanent neighbour entry for the other with a MAC nobody has, so frames go nowhere and TCP
// sees only silence (no reset, no unreachable), as on a real cut link. This needs neither tc
// actions nor netfilter, which a minimal kernel may lack. A cut is per pair, so a bridge
// partition (a node both halves can reach while they cannot reach each other) is expressible.
type Network struct {
	Prefix string
	// Subnet is the /24's first three octets, "10.231.S".
	Subnet string
	nodes  int
	ip     string // path of ip(8)

	mu  sync.Mutex
	cut map[[2]int]bool
}

// netCount numbers the networks this process creates, so their names differ.
var netCount atomic.Int32

// CanUseNetns says why network namespaces cannot be used here, or nil when they can: the
// harness must run as root with ip(8) on the PATH.
func CanUseNetns() error {
	if os.Geteuid() != 0 {
		return errors.New("network partitions need root (ip netns, veth pairs): not running as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("network partitions need ip(8): %w", err)
	}
	return nil
}

// NewNetwork creates the namespaces, the bridge and the links for n nodes. On error whatever
// was created is removed.
func NewNetwork(ctx context.Context, n int) (_ *Network, err error) {
	if err := CanUseNetns(); err != nil {
		return nil, err
	}
	ipPath, _ := exec.LookPath("ip")
	SweepStaleNetworks(ctx)
	k := netCount.Add(1)
	nw := &Network{Prefix: fmt.Sprintf("ef%d%c", os.Getpid(), 'a'+k%26), nodes: n, ip: ipPath, cut: map[[2]int]bool{}}
	if nw.Subnet, err = freeSubnet(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nw.Close()
		}
	}()
	br := nw.bridgeNS()
	steps := [][]string{
		{"netns", "add", br},
		{"-n", br, "link", "set", "lo", "up"},
		{"-n", br, "link", "add", "br0", "type", "bridge"},
		{"-n", br, "link", "set", "br0", "up"},
		// The host's leg: created here, its bridge end moved into the bridge namespace.
		{"link", "add", nw.Prefix + "h", "type", "veth", "peer", "name", nw.Prefix + "hb", "netns", br},
		{"-n", br, "link", "set", nw.Prefix + "hb", "master", "br0", "up"},
		{"addr", "add", nw.Subnet + ".1/24", "dev", nw.Prefix + "h"},
		{"link", "set", nw.Prefix + "h", "up"},
	}
	for i := range n {
		ns, leg := nw.NodeNS(i), fmt.Sprintf("%sb%d", nw.Prefix, i+1)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", br, "link", "add", leg, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", br, "link", "set", leg, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", nw.NodeIP(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := nw.run(ctx, s...); err != nil {
			return nil, err
		}
	}
	// The links come up asynchronously: wait until the host reaches a port closed on each
	// node (a refused connection proves the path works).
	for i := range n {
		if err := waitReachable(ctx, nw.NodeIP(i)); err != nil {
			return nil, err
		}
	}
	return nw, nil
}

// waitReachable polls until a TCP connection to ip:1 is refused (the host answers) rather than
// timing out.
func waitReachable(ctx context.Context, ip string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, "1"))
		if c != nil {
			c.Close()
		}
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faults: %s not reachable from the host: %w", ip, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (nw *Network) bridgeNS() string { return nw.Prefix + "-br" }

// NodeNS is node i's namespace.
func (nw *Network) NodeNS(i int) string { return fmt.Sprintf("%s-n%d", nw.Prefix, i+1) }

// NodeIP is node i's address.
func (nw *Network) NodeIP(i int) string { return fmt.Sprintf("%s.%d", nw.Subnet, 11+i) }

// Exec is the command line that runs argv in node i's namespace.
func (nw *Network) Exec(i int, argv ...string) (string, []string) {
	return nw.ip, append([]string{"netns", "exec", nw.NodeNS(i)}, argv...)
}

func (nw *Network) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, nw.ip, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("faults: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// bogusMAC is the address node j's traffic is sent to while a node is cut from it: locally
// administered and never assigned.
func bogusMAC(j int) string { return fmt.Sprintf("02:ef:00:00:00:%02x", j+1) }

// Cut stops all traffic between nodes i and j, both ways.
func (nw *Network) Cut(ctx context.Context, i, j int) error {
	if i == j {
		return nil
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for _, p := range [][2]int{{i, j}, {j, i}} {
		if err := nw.run(ctx, "-n", nw.NodeNS(p[0]), "neigh", "replace", nw.NodeIP(p[1]), "lladdr", bogusMAC(p[1]), "nud", "permanent", "dev", "eth0"); err != nil {
			return err
		}
	}
	nw.cut[pair(i, j)] = true
	return nil
}

// Partition cuts every pair of nodes that are in different groups; nodes in no group keep
// every link.
func (nw *Network) Partition(ctx context.Context, groups ...[]int) error {
	for a := range groups {
		for b := a + 1; b < len(groups); b++ {
			for _, i := range groups[a] {
				for _, j := range groups[b] {
					if err := nw.Cut(ctx, i, j); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Heal restores every cut link.
func (nw *Network) Heal(ctx context.Context) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var errs []error
	for p := range nw.cut {
		for _, q := range [][2]int{{p[0], p[1]}, {p[1], p[0]}} {
			err := nw.run(ctx, "-n", nw.NodeNS(q[0]), "neigh", "del", nw.NodeIP(q[1]), "dev", "eth0")
			if err != nil && !strings.Contains(err.Error(), "No such file") {
				errs = append(errs, err)
			}
		}
		delete(nw.cut, p)
	}
	return errors.Join(errs...)
}

// Cuts lists the cut pairs.
func (nw *Network) Cuts() [][2]int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	out := make([][2]int, 0, len(nw.cut))
	for p := range nw.cut {
		out = append(out, p)
	}
	return out
}

func pair(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// Close removes the namespaces (their veth ends go with them) and the host's leg.
func (nw *Network) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	removeNetwork(ctx, nw.ip, nw.Prefix, nw.nodes)
}

func removeNetwork(ctx context.Context, ipPath, prefix string, nodes int) {
	run := func(args ...string) { _ = exec.CommandContext(ctx, ipPath, args...).Run() }
	for i := range nodes {
		run("netns", "del", fmt.Sprintf("%s-n%d", prefix, i+1))
	}
	run("netns", "del", prefix+"-br")
	run("link", "del", prefix+"h")
}

// SweepStaleNetworks removes the namespaces and links of networks whose creating process has
// ended without removing them (a test binary killed by its timeout).
func SweepStaleNetworks(ctx context.Context) {
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return
	}
	out, err := exec.CommandContext(ctx, ipPath, "netns", "list").Output()
	if err != nil {
		return
	}
	stale := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		prefix, rest, ok := strings.Cut(name, "-")
		if !ok || !strings.HasPrefix(prefix, "ef") || len(prefix) < 4 {
			continue
		}
		pid, err := strconv.Atoi(prefix[2 : len(prefix)-1])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if strings.HasPrefix(rest, "n") {
			if k, err := strconv.Atoi(rest[1:]); err == nil && k > stale[prefix] {
				stale[prefix] = k
			}
		} else if _, ok := stale[prefix]; !ok {
			stale[prefix] = 0
		}
	}
	for prefix, n := range stale {
		removeNetwork(ctx, ipPath, prefix, n)
	}
}

// freeSubnet picks a 10.231.S.0/24 that no route of the host's namespace touches.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			ip := ipn.IP.To4()
			used[fmt.Sprintf("%d.%d.%d", ip[0], ip[1], ip[2])] = true
		}
	}
	start := rand.IntN(250)
	for k := range 250 {
		s := fmt.Sprintf("10.231.%d", (start+k)%250+1)
		if !used[s] {
			return s, nil
		}
	}
	return "", errors.New("faults: no free 10.231.x.0/24")
}

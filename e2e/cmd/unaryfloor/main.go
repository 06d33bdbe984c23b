// Command unaryfloor measures what one unary gRPC call costs the server in CPU with the two
// HTTP/2 server transports a Go controller can use: connect-go on net/http's HTTP/2 server
// (what fleet-controller serves gRPC, Connect and JSON with, on one port) and grpc-go's own
// transport. The handler is empty (it echoes a SetClusterLabels request as the response), so
// the figure is the floor under the controller's cost of an API write before any of its own
// work (README, "The Raft benchmark against etcd"). The client is the same connect-go gRPC
// client over h2c for both; each server runs as a process of its own, started fresh for each
// run, and its CPU (user + system, from the kernel's accounting when it exits) is divided by
// the calls it answered. The two run interleaved, round by round, and the table gives medians
// and the ratio.
//
//	go run ./e2e/cmd/unaryfloor --clients 16,64 --rounds 3 --duration 3s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

const (
	transportConnect = "connect-nethttp"
	transportGRPC    = "grpc-go"
)

func main() {
	clients := flag.String("clients", "16,64", "comma-separated concurrencies (closed-loop clients)")
	rounds := flag.Int("rounds", 3, "rounds per concurrency (the table shows the median)")
	duration := flag.Duration("duration", 3*time.Second, "load per run")
	serve := flag.String("serve", "", "internal: serve this transport on 127.0.0.1 and print the address")
	flag.Parse()
	var err error
	if *serve != "" {
		err = runServer(*serve)
	} else {
		err = runBench(*clients, *rounds, *duration)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "unaryfloor:", err)
		os.Exit(1)
	}
}

// echo answers SetClusterLabels with the cluster the request names.
func echo(in *ebbflowv1.SetClusterLabelsRequest) *ebbflowv1.SetClusterLabelsResponse {
	return &ebbflowv1.SetClusterLabelsResponse{Cluster: &ebbflowv1.Cluster{Name: in.GetName(), Labels: in.GetLabels()}}
}

type connectEcho struct {
	ebbflowv1connect.UnimplementedClusterServiceHandler
}

func (connectEcho) SetClusterLabels(_ context.Context, req *connect.Request[ebbflowv1.SetClusterLabelsRequest]) (*connect.Response[ebbflowv1.SetClusterLabelsResponse], error) {
	return connect.NewResponse(echo(req.Msg)), nil
}

// runServer serves transport until SIGTERM, after printing its address on stdout.
func runServer(transport string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	switch transport {
	case transportConnect:
		mux := http.NewServeMux()
		// As fleet-controller: messages under 1 KiB go uncompressed (connect-go would gzip
		// every response a client accepts gzip for).
		mux.Handle(ebbflowv1connect.NewClusterServiceHandler(connectEcho{}, connect.WithCompressMinBytes(1<<10)))
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv := &http.Server{Handler: mux, Protocols: &p, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		fmt.Println(ln.Addr())
		<-stop
		return srv.Close()
	case transportGRPC:
		srv := grpc.NewServer()
		srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: ebbflowv1connect.ClusterServiceName,
			HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{
				MethodName: "SetClusterLabels",
				Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
					in := new(ebbflowv1.SetClusterLabelsRequest)
					if err := dec(in); err != nil {
						return nil, err
					}
					return echo(in), nil
				},
			}},
		}, struct{}{})
		go func() { _ = srv.Serve(ln) }()
		fmt.Println(ln.Addr())
		<-stop
		srv.Stop()
		return nil
	}
	return fmt.Errorf("--serve %q: want %s or %s", transport, transportConnect, transportGRPC)
}

// result is one run: calls per second and the server's CPU per call.
type result struct{ perSec, cpuPerCall float64 }

// runOnce starts a server process of transport, drives it with clients for d and stops it.
func runOnce(self, transport string, clients int, d time.Duration) (result, error) {
	cmd := exec.Command(self, "--serve", transport)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = cmd.Process.Kill() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return result{}, fmt.Errorf("%s server: %w", transport, err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, Proxy: nil}
	defer tr.CloseIdleConnections()
	cl := ebbflowv1connect.NewClusterServiceClient(&http.Client{Transport: tr}, "http://"+strings.TrimSpace(addr), connect.WithGRPC())
	labels := map[string]string{}
	for i := range 4 { // 256 bytes of values, as make bench-raft writes
		labels["k"+strconv.Itoa(i)] = strings.Repeat(strconv.Itoa(i), 64)
	}
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Go(func() {
			req := &ebbflowv1.SetClusterLabelsRequest{Name: "bench-" + strconv.Itoa(i), Labels: labels}
			for time.Now().Before(deadline) {
				if _, err := cl.SetClusterLabels(context.Background(), connect.NewRequest(req)); err != nil {
					errs <- err
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return result{}, fmt.Errorf("%s: %w", transport, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return result{}, err
	}
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("%s server: %w", transport, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	n := calls.Load()
	if !ok || n == 0 {
		return result{}, errors.New("no CPU accounting or no calls")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{perSec: float64(n) / elapsed.Seconds(), cpuPerCall: float64(cpu.Microseconds()) / float64(n)}, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func runBench(clientList string, rounds int, d time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var concurrencies []int
	for _, c := range strings.Split(clientList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("--clients %q: want comma-separated positive numbers", clientList)
		}
		concurrencies = append(concurrencies, n)
	}
	if rounds < 1 {
		return errors.New("--rounds must be at least 1")
	}
	transports := []string{transportConnect, transportGRPC}
	fmt.Printf("unary SetClusterLabels echo over h2c on 127.0.0.1, connect-go gRPC client, %s per run, %d round(s), median; server CPU per call from the server process's own accounting\n\n", d, rounds)
	fmt.Printf("%-8s %-24s %-24s %-24s %-24s %s\n", "clients", transportConnect+" calls/s", transportGRPC+" calls/s", transportConnect+" CPU", transportGRPC+" CPU", "CPU ratio")
	for _, c := range concurrencies {
		got := map[string][]result{}
		for r := range rounds {
			order := transports
			if r%2 == 1 {
				order = []string{transportGRPC, transportConnect}
			}
			for _, t := range order {
				res, err := runOnce(self, t, c, d)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "unaryfloor: %d clients, round %d, %s: %.0f calls/s, %.1f µs server CPU per call\n", c, r+1, t, res.perSec, res.cpuPerCall)
				got[t] = append(got[t], res)
			}
		}
		med := func(t string, f func(result) float64) float64 {
			var xs []float64
			for _, r := range got[t] {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		perSec := func(r result) float64 { return r.perSec }
		cpu := func(r result) float64 { return r.cpuPerCall }
		fmt.Printf("%-8d %-24s %-24s %-24s %-24s %.2fx\n", c,
			fmt.Sprintf("%.0f/s", med(transportConnect, perSec)), fmt.Sprintf("%.0f/s", med(transportGRPC, perSec)),
			fmt.Sprintf("%.1f µs", med(transportConnect, cpu)), fmt.Sprintf("%.1f µs", med(transportGRPC, cpu)),
			med(transportConnect, cpu)/med(transportGRPC, cpu))
	}
	return nil
}

// Command h2floor measures what Go's net/http HTTP/2 server spends on one idle connection that
// holds one open stream, with an empty streaming handler: the floor under the controller's cost
// of an idle agent (README, "What an idle agent costs"). It serves h2c on 127.0.0.1, starts
// itself as a client process that opens --n connections (one stream each, kept open), and
// prints the server's RSS, live heap and goroutine stacks per connection after a collection.
// --transport grpc-go serves the same stream with grpc-go's own HTTP/2 transport instead:
// what the floor would be if the controller's gRPC moved to that transport. (Its buffer
// options, a shared write buffer or a 4 KiB read buffer, measured no different: the buffers
// of an idle connection are not held.)
//
//	go run ./e2e/cmd/h2floor --n 3000
//	go run ./e2e/cmd/h2floor --n 3000 --transport grpc-go
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

func main() {
	n := flag.Int("n", 3000, "connections, one open stream each")
	transport := flag.String("transport", "net-http", "the server: net-http or grpc-go")
	client := flag.String("client", "", "internal: run as the client process against this address")
	flag.Parse()
	var err error
	if *client != "" {
		err = runClient(*client, *n)
	} else {
		err = runServer(*n, *transport)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2floor:", err)
		os.Exit(1)
	}
}

// watchPath is the stream every connection opens: a gRPC method name, which net/http serves
// as a plain path.
const watchPath = "/h2floor.Floor/Watch"

func runServer(n int, transport string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	switch transport {
	case "net-http":
		mux := http.NewServeMux()
		mux.HandleFunc(watchPath, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(emptyFrame)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		srv := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
		srv.Protocols.SetUnencryptedHTTP2(true)
		go func() { _ = srv.Serve(ln) }()
		defer func() { _ = srv.Close() }()
	case "grpc-go":
		srv := grpc.NewServer()
		srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: "h2floor.Floor",
			HandlerType: (*any)(nil),
			Streams: []grpc.StreamDesc{{
				StreamName: "Watch", ServerStreams: true,
				Handler: func(_ any, stream grpc.ServerStream) error {
					if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
						return err
					}
					if err := stream.SendMsg(new(emptypb.Empty)); err != nil {
						return err
					}
					<-stream.Context().Done()
					return nil
				},
			}},
		}, struct{}{})
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
	default:
		return fmt.Errorf("--transport %q: want net-http or grpc-go", transport)
	}
	rss0, heap0, stack0 := sample()
	cmd := exec.Command(os.Args[0], "--client", ln.Addr().String(), "--n", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("client: %q %v", line, err)
	}
	rss, heap, stack := sample()
	per := func(a, b float64) float64 { return (b - a) / float64(n) / 1024 }
	fmt.Printf("%s: %d idle HTTP/2 connections, one open stream each, empty handler: per connection %.1f KiB RSS, %.1f KiB live heap, %.1f KiB goroutine stacks; %d goroutines\n",
		transport, n, per(rss0, rss), per(heap0, heap), per(stack0, stack), runtime.NumGoroutine())
	return nil
}

// sample collects twice (stacks shrink at collections) and reads RSS, live heap and stacks.
func sample() (rss, heap, stack float64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rss = kb * 1024
		}
	}
	return rss, float64(ms.HeapAlloc), float64(ms.StackInuse)
}

// emptyFrame is a gRPC message frame holding an empty message: no compression, length 0.
var emptyFrame = []byte{0, 0, 0, 0, 0}

func runClient(addr string, n int) error {
	for i := range n {
		// A transport each: one connection each, HTTP/2 without TLS (prior knowledge).
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		// A gRPC call by hand (one empty message each way), which both servers answer.
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+watchPath, bytes.NewReader(emptyFrame))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		defer res.Body.Close() // each stream stays open until the process ends
		if _, err := io.ReadFull(res.Body, make([]byte, len(emptyFrame))); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	// Every stream has its response: the server holds all n connections and handlers.
	fmt.Println("ready")
	select {} // until the server kills this process
}

// Command h2floor measures what Go's net/http HTTP/2 server spends on one idle connection that
// holds one open stream, with an empty streaming handler: the floor under the controller's cost
// of an idle agent (README, "What an idle agent costs"). It serves h2c on 127.0.0.1, starts
// itself as a client process that opens --n connections (one stream each, kept open), and
// prints the server's RSS, live heap and goroutine stacks per connection after a collection.
//
//	go run ./e2e/cmd/h2floor --n 3000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	n := flag.Int("n", 3000, "connections, one open stream each")
	client := flag.String("client", "", "internal: run as the client process against this address")
	flag.Parse()
	var err error
	if *client != "" {
		err = runClient(*client, *n)
	} else {
		err = runServer(*n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2floor:", err)
		os.Exit(1)
	}
}

func runServer(n int) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/watch", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
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
	fmt.Printf("%d idle HTTP/2 connections, one open stream each, empty handler: per connection %.1f KiB RSS, %.1f KiB live heap, %.1f KiB goroutine stacks; %d goroutines\n",
		n, per(rss0, rss), per(heap0, heap), per(stack0, stack), runtime.NumGoroutine())
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

func runClient(addr string, n int) error {
	for i := range n {
		// A transport each: one connection each, HTTP/2 without TLS (prior knowledge).
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		res, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/watch")
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		defer res.Body.Close() // each stream stays open until the process ends
		if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	// Every stream has its response: the server holds all n connections and handlers.
	fmt.Println("ready")
	select {} // until the server kills this process
}

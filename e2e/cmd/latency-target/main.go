// Command latency-target is a real local HTTP service whose response delay can be changed
// while it runs (PUT /delay?d=20ms), so a demo or a scenario can make a cluster's measured
// latency regress for real.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ebbflow/ebbflow/agent/probe"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	delay := flag.Duration("delay", 0, "initial response delay")
	ready := flag.String("ready-file", "", "write the bound address here once serving")
	flag.Parse()
	var d probe.Delay
	d.Set(*delay)
	mux := http.NewServeMux()
	mux.Handle("/", probe.DelayHandler(d.Get))
	mux.HandleFunc("PUT /delay", func(w http.ResponseWriter, r *http.Request) {
		v, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || v < 0 || v > time.Minute {
			http.Error(w, "d: want a duration between 0 and 1m", http.StatusBadRequest)
			return
		}
		d.Set(v)
		fmt.Fprintf(w, "delay %s\n", v)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency-target:", err)
		os.Exit(1)
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "latency-target:", err)
			os.Exit(1)
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "latency-target:", err)
		os.Exit(1)
	}
}

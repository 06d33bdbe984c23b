package ui_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// The rollout page with a thousand clusters in one wave, every agent holding its baseline
// report: how long the first render takes, and how long one agent's report takes to show,
// with how many cluster rows re-render for it. Benchmark-style: it prints the figures and
// asserts only that the page got there (EBBFLOW_UI_CLUSTERS changes the size; run with -v).
func TestDashboardThousandClusters(t *testing.T) {
	size := 1000
	if v := os.Getenv("EBBFLOW_UI_CLUSTERS"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	ctx := browser(t)
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	hc := controllertest.HTTPClient()
	createProfile(t, ebbflowv1connect.NewProfileServiceClient(hc, n.URL))
	rollouts := ebbflowv1connect.NewRolloutServiceClient(hc, n.URL)

	holds := map[string]chan struct{}{}
	reached := make(chan string, size)
	controllertest.StartFleet(t, []string{n.URL}, size, nil, func(a *controllertest.Agent) {
		holds[a.Name] = make(chan struct{})
		a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_BASELINE, holds[a.Name], reached
	})
	defer func() {
		for _, h := range holds {
			select {
			case <-h:
			default:
				close(h)
			}
		}
	}()
	if _, err := rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "big", Spec: spec(0, int32(size))})); err != nil {
		t.Fatal(err)
	}
	for range size {
		reach(t, reached, "every agent to hold its baseline report")
	}

	// What the stream carries: the first message in full, then one record per change.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	stream, err := rollouts.WatchRollout(wctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: "big", ChangesOnly: true, OmitMeasurements: true}))
	if err != nil || !stream.Receive() {
		t.Fatalf("watch: %v %v", err, stream.Err())
	}
	fullBytes := proto.Size(stream.Msg())

	page := tab(t, ctx)
	signIn(t, page, n.URL, "any", "")
	start := eval[float64](t, page, `(() => { const t = performance.now(); location.hash = "#/rollouts/big"; return t; })()`)
	waitJS(t, page, "every cluster rendered", fmt.Sprintf(`document.querySelectorAll('tr[data-cluster]').length === %d && window.__ebbflow.messages > 0`, size))
	first := eval[float64](t, page, `window.__ebbflow.lastUpdateMs`) - start

	// One agent reports its baseline measured: its row changes, live.
	victim := fmt.Sprintf("c-%02d", size/2)
	before := eval[map[string]float64](t, page, `({renders: window.__ebbflow.renders, messages: window.__ebbflow.messages})`)
	released := time.Now()
	close(holds[victim])
	waitJS(t, page, victim+" past its baseline", fmt.Sprintf(`document.querySelector('tr[data-cluster=%q]').dataset.phase !== "baseline"`, victim))
	live := time.Since(released)
	after := eval[map[string]float64](t, page, `({renders: window.__ebbflow.renders, messages: window.__ebbflow.messages})`)
	if !stream.Receive() {
		t.Fatal(stream.Err())
	}
	partialBytes, records := proto.Size(stream.Msg()), 0
	for _, w := range stream.Msg().GetRollout().GetWaves() {
		records += len(w.GetClusters())
	}
	// What the rollouts list costs with and without the measurements (every agent has sent its
	// baseline's samples).
	listBytes := func(omit bool) int {
		res, err := rollouts.ListRollouts(context.Background(), connect.NewRequest(&ebbflowv1.ListRolloutsRequest{OmitMeasurements: omit}))
		if err != nil {
			t.Fatal(err)
		}
		return proto.Size(res.Msg)
	}
	// The fleet page: every cluster with its inventory and its rollout position.
	start = eval[float64](t, page, `(() => { const t = performance.now(); location.hash = "#/fleet"; return t; })()`)
	waitJS(t, page, "every cluster on the fleet page", fmt.Sprintf(`document.querySelectorAll('tr[data-cluster]').length === %d`, size))
	fleet := eval[float64](t, page, `performance.now()`) - start
	fmt.Printf("dashboard, %d clusters in one wave: first render %.0f ms; one agent's report on the page %.0f ms after its release (%v stream messages, %v cluster rows re-rendered); stream: first message %d bytes, next %d bytes (%d records); ListRollouts %d bytes, %d without measurements; fleet page %.0f ms\n",
		size, first, float64(live.Microseconds())/1000, after["messages"]-before["messages"], after["renders"]-before["renders"], fullBytes, partialBytes, records, listBytes(false), listBytes(true), fleet)
}

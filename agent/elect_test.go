package agent_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/e2e/kubebox"
)

// Two agent replicas of one cluster on a real API server: exactly one runs at a time; when the
// leader stops, it releases the Lease only after its work has returned, and the standby takes
// over at once; a replica that stops before it ever led returns nil.
func TestRunElectedOneAtATime(t *testing.T) {
	c := kubebox.ForTest(t, kubebox.Options{})
	var running, maxRunning atomic.Int32
	var mu sync.Mutex
	var order []string
	election := func(id string) agent.Election {
		return agent.Election{Client: c.Clientset, Namespace: "kube-system", Name: "ebbflow-agent", Identity: id,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 100 * time.Millisecond}
	}
	work := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond) // a step finishing after the stop was asked for
			running.Add(-1)
			return nil
		}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- agent.RunElected(ctxA, election("replica-a"), work("a")) }()
	controllertest.Eventually(t, 30*time.Second, "replica a leads", func() bool { return running.Load() == 1 })
	go func() { doneB <- agent.RunElected(ctxB, election("replica-b"), work("b")) }()
	// b campaigns while a leads; give it a few retry periods, then hand over.
	time.Sleep(time.Second)
	if n := running.Load(); n != 1 {
		t.Fatalf("%d replicas running while a leads, want 1", n)
	}
	handover := time.Now()
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("replica a: %v", err)
	}
	controllertest.Eventually(t, 30*time.Second, "replica b takes over", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 2
	})
	// Released, not expired: b leads well before a's lease (15 s) would have run out.
	if d := time.Since(handover); d > 10*time.Second {
		t.Errorf("handover took %s; the lease was not released", d)
	}
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("%d replicas ran at once", m)
	}
	mu.Lock()
	if order[0] != "a" || order[1] != "b" {
		t.Errorf("order %v, want [a b]", order)
	}
	mu.Unlock()
	stopB()
	if err := <-doneB; err != nil {
		t.Fatalf("replica b: %v", err)
	}
	// A replica stopped before it leads returns nil without running.
	ctxC, stopC := context.WithCancel(context.Background())
	ctxD, stopD := context.WithCancel(context.Background())
	defer stopD()
	doneD := make(chan error, 1)
	go func() { doneD <- agent.RunElected(ctxD, election("replica-d"), work("d")) }()
	controllertest.Eventually(t, 10*time.Second, "replica d leads", func() bool { return running.Load() == 1 })
	doneC := make(chan error, 1)
	go func() { doneC <- agent.RunElected(ctxC, election("replica-c"), work("c")) }()
	time.Sleep(300 * time.Millisecond)
	stopC()
	if err := <-doneC; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("replica c: %v", err)
	}
	mu.Lock()
	for _, id := range order {
		if id == "c" {
			t.Error("replica c ran without leading")
		}
	}
	mu.Unlock()
	stopD()
	<-doneD
}

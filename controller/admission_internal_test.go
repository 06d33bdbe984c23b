package controller

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGateAdmitsAtMostItsSlots(t *testing.T) {
	g := newGate(2)
	ctx := context.Background()
	r1, err := g.enter(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := g.enter(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	admitted := make(chan func())
	go func() {
		r3, err := g.enter(ctx, 0)
		if err != nil {
			t.Error(err)
			close(admitted)
			return
		}
		admitted <- r3
	}()
	select {
	case <-admitted:
		t.Fatal("a third holder was admitted while two slots were held")
	case <-time.After(50 * time.Millisecond): // sampling that it stays blocked
	}
	r1()
	r1() // releasing twice frees one slot, not two
	r3 := <-admitted
	if got := g.inUse(); got != 2 {
		t.Fatalf("slots in use after one release and one admission: %d, want 2", got)
	}
	r2()
	r3()
	if got := g.inUse(); got != 0 {
		t.Fatalf("slots in use after every release: %d", got)
	}
}

func TestGateWaitEndsWithContext(t *testing.T) {
	g := newGate(1)
	release, err := g.enter(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.enter(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("entering a full gate until the deadline: %v", err)
	}
	if got := g.inUse(); got != 1 {
		t.Fatalf("a waiter that gave up holds a slot: %d in use", got)
	}
}

func TestGateLeaseFreesAStuckHoldersSlot(t *testing.T) {
	g := newGate(1)
	stuck, err := g.enter(context.Background(), 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next, err := g.enter(ctx, 0) // admitted when the lease runs out, not at the deadline
	if err != nil {
		t.Fatalf("the lease did not free the slot: %v", err)
	}
	stuck() // the late release of the expired holder must not free next's slot
	if got := g.inUse(); got != 1 {
		t.Fatalf("slots in use after the expired holder released: %d, want 1", got)
	}
	next()
}

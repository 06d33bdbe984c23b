package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
)

// BenchmarkApplySingleNode measures profile updates through real Raft on one node, each
// waiting until applied: one writer at a time, and many at once (which Raft and the FSM
// batch into shared log writes and bbolt commits).
func BenchmarkApplySingleNode(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s := mustNewStore(b)
		mustApply(b, s, createProfile("p", ""))
		ctx := context.Background()
		for b.Loop() {
			if _, err := s.Apply(ctx, updateProfile("p", "next", 0)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	})
	b.Run("parallel", func(b *testing.B) {
		s := mustNewStore(b)
		var n atomic.Int64
		b.SetParallelism(16)
		ctx := context.Background()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			name := fmt.Sprintf("p%d", n.Add(1))
			if _, err := s.Apply(ctx, createProfile(name, "")); err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				if _, err := s.Apply(ctx, updateProfile(name, "next", 0)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	})
}

// BenchmarkApplyBatch measures commands applied through real Raft on one node in batches
// of 100 (one log entry and one bbolt commit per batch).
func BenchmarkApplyBatch(b *testing.B) {
	const size = 100
	s := mustNewStore(b)
	for i := range size {
		mustApply(b, s, createProfile(fmt.Sprintf("p%03d", i), ""))
	}
	ctx := context.Background()
	batches := 0
	for b.Loop() {
		cmds := make([]*storev1.Command, size)
		for i := range cmds {
			cmds[i] = updateProfile(fmt.Sprintf("p%03d", i), "next", 0)
		}
		rs, err := s.ApplyBatch(ctx, cmds)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		batches++
	}
	b.ReportMetric(float64(batches*size)/b.Elapsed().Seconds(), "commands/s")
}

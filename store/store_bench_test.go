package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// BenchmarkApplyThreeNodes measures profile updates acknowledged by a three-node group on
// loopback, with writers waiting for their own entry, for each log store and with the state
// database synced on every commit (the old way) or not. The variants run interleaved, round
// by round, so a noisy machine affects each alike; benchstat compares them.
func BenchmarkApplyThreeNodes(b *testing.B) {
	variants := []struct {
		name     string
		logStore string
		fsmSync  bool
	}{
		{"boltdb-fsmsync", LogStoreBolt, true},
		{"boltdb", LogStoreBolt, false},
		{"wal", LogStoreWAL, false},
	}
	for _, writers := range []int{1, 16, 64} {
		for _, v := range variants {
			b.Run(fmt.Sprintf("writers=%d/%s", writers, v.name), func(b *testing.B) {
				c := newCluster(b, 3, func(cfg *Config) {
					cfg.logStore = v.logStore
					cfg.fsmSync = v.fsmSync
					cfg.Logger = testLogger()
				})
				l := c.Leader()
				for i := range writers {
					mustApply(b, l, createProfile(fmt.Sprintf("p%d", i), ""))
				}
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				ctx := context.Background()
				b.ResetTimer()
				for i := range writers {
					wg.Go(func() {
						name := fmt.Sprintf("p%d", i)
						for left.Add(-1) >= 0 {
							if _, err := l.Apply(ctx, updateProfile(name, strings.Repeat("x", 256), 0)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
		}
	}
}

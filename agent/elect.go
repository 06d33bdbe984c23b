package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ErrLeaseLost is what RunElected returns when this replica lost the lease while it ran.
var ErrLeaseLost = errors.New("agent: lost the leader lease")

// Election names the Lease that several agent replicas of one cluster compete for.
type Election struct {
	Client    kubernetes.Interface
	Namespace string
	// Name is the Lease's name, e.g. "ebbflow-agent".
	Name string
	// Identity tells the replicas apart, e.g. the pod name.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod default to 15 s, 10 s and 2 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunElected runs run only while this replica holds the Lease (client-go leader election), so
// that of several replicas exactly one acts on the cluster. run's context ends when the lease
// is lost or ctx ends; the lease is released only after run has returned, so a standby never
// starts while this replica may still be in the middle of a step. It returns run's error when
// ctx ended, ErrLeaseLost when the lease was lost (the caller should exit; a restart competes
// again), and nil when ctx ended before this replica led.
func RunElected(ctx context.Context, e Election, run func(ctx context.Context) error) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(e),
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	// The elector runs on its own context, ended only once run has returned: with
	// ReleaseOnCancel it then gives the lease up at once instead of letting it expire.
	elCtx, elCancel := context.WithCancel(context.Background())
	defer elCancel()
	var (
		mu      sync.Mutex
		started bool
		runErr  error
		done    = make(chan struct{})
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            e.Name,
		LeaseDuration:   or(e.LeaseDuration, 15*time.Second),
		RenewDeadline:   or(e.RenewDeadline, 10*time.Second),
		RetryPeriod:     or(e.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				defer close(done)
				mu.Lock()
				started = true
				mu.Unlock()
				if leading.Err() != nil || ctx.Err() != nil {
					return
				}
				rctx, cancel := context.WithCancel(leading)
				stop := context.AfterFunc(ctx, cancel)
				err := run(rctx)
				stop()
				cancel()
				mu.Lock()
				runErr = err
				mu.Unlock()
				elCancel()
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	// Before this replica leads, ctx ending stops the campaign.
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			elCancel()
		}
	})
	defer stop()
	le.Run(elCtx)
	mu.Lock()
	led := started
	mu.Unlock()
	if !led {
		return nil
	}
	<-done // a lost lease ends run's context; wait until it has stopped
	mu.Lock()
	defer mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return runErr
	}
	return ErrLeaseLost
}

func metaFor(e Election) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name}
}

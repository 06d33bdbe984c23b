package process

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Poll calls cond every interval, each call bounded by attempt, until it returns nil (Poll
// returns nil), returns StopPolling(err) (Poll returns err at once), or timeout passes: the
// error then names what was awaited and cond's last error.
func Poll(ctx context.Context, timeout, interval, attempt time.Duration, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, attempt)
		err := cond(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		var stop stopPolling
		if errors.As(err, &stop) {
			return stop.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited %s for %s: %w (last: %v)", timeout, what, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// StopPolling wraps err so that Poll returns it at once instead of trying again.
func StopPolling(err error) error { return stopPolling{err} }

type stopPolling struct{ err error }

func (s stopPolling) Error() string { return s.err.Error() }
func (s stopPolling) Unwrap() error { return s.err }

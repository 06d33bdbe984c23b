package process

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := Poll(ctx, time.Minute, time.Millisecond, time.Second, "three calls", func(context.Context) error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll: %v after %d calls, want nil after 3", err, n)
	}
	stop := errors.New("the process exited")
	if err := Poll(ctx, time.Minute, time.Millisecond, time.Second, "a stop", func(context.Context) error {
		return StopPolling(stop)
	}); !errors.Is(err, stop) || err.Error() != stop.Error() {
		t.Fatalf("Poll with StopPolling: %v, want %v at once", err, stop)
	}
	err := Poll(ctx, 50*time.Millisecond, time.Millisecond, time.Second, "never", func(context.Context) error {
		return errors.New("still waiting")
	})
	if err == nil || !strings.Contains(err.Error(), "for never") || !strings.Contains(err.Error(), "still waiting") {
		t.Fatalf("Poll past its timeout: %v, want the awaited thing and the last error named", err)
	}
}

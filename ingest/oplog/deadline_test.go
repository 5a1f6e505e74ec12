package oplog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAppendContextKeepsTheContextContract: whether or not something
// started its timer, an append's context is done with an error after
// release, when its deadline passes and when its parent is cancelled; and
// a context derived from it (a read's WithTimeout) ends with it.
func TestAppendContextKeepsTheContextContract(t *testing.T) {
	done := func(t *testing.T, ctx context.Context, want error) {
		t.Helper()
		<-ctx.Done() // a test that hangs here has failed
		if err := ctx.Err(); !errors.Is(err, want) {
			t.Fatalf("Err after Done: %v, want %v", err, want)
		}
	}
	for _, early := range []bool{false, true} {
		name := "timer not started"
		if early {
			name = "timer started"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("released", func(t *testing.T) {
				c, release := boundAppend(context.Background(), time.Hour)
				if early {
					_ = c.Done()
				}
				derived, cancel := context.WithTimeout(c, time.Hour)
				defer cancel()
				if c.Err() != nil || derived.Err() != nil {
					t.Fatalf("before release: %v, %v", c.Err(), derived.Err())
				}
				release()
				done(t, c, context.Canceled)
				done(t, derived, context.Canceled)
			})
			t.Run("deadline", func(t *testing.T) {
				c, release := boundAppend(context.Background(), 20*time.Millisecond)
				defer release()
				if early {
					_ = c.Done()
				}
				done(t, c, context.DeadlineExceeded)
			})
			t.Run("parent cancelled", func(t *testing.T) {
				parent, cancelParent := context.WithCancel(context.Background())
				c, release := boundAppend(parent, time.Hour)
				defer release()
				if early {
					_ = c.Done()
				}
				cancelParent()
				done(t, c, context.Canceled)
			})
		})
	}
	// The parent's deadline, when earlier, is the append's.
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, release := boundAppend(parent, time.Hour)
	defer release()
	if pd, _ := parent.Deadline(); !deadlineOf(c).Equal(pd) {
		t.Fatalf("deadline %v, want the parent's %v", deadlineOf(c), pd)
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

package oplog

import (
	"context"
	"sync"
	"time"
)

// appendCtx is the context of one append: its parent's values and
// cancellation, bounded by the append's deadline, with no timer until
// something waits on Done. Most appends wait only for their PubAck, and
// the publisher reads the deadline itself (waitFor) and lets its sweeper
// end a wait that outlives it; a read from the broker, a backoff or any
// other wait calls Done, which starts the timer then. Why: a timer per
// append (context.WithTimeout, and its cancel registering with the
// request's context) was 2.4% of a /message's CPU and 1.9% of an update's
// (make bench's profiles, 2 December), for a deadline almost never
// reached.
//
// It keeps the contract of the context WithDeadline would have given:
// once Done is closed, Err is not nil; after release, Done is closed and
// Err is context.Canceled (unless the deadline or the parent ended it
// first).
type appendCtx struct {
	parent   context.Context
	deadline time.Time // the earlier of the append's and the parent's

	mu       sync.Mutex
	timed    context.Context // WithDeadline(parent, deadline), from the first Done
	cancel   context.CancelFunc
	released bool
}

// boundAppend returns the context of an append that must end by
// timeout from now, and the function that releases it (the caller MUST
// call it): context.WithTimeout's contract, with no timer until Done.
func boundAppend(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	c := &appendCtx{parent: parent, deadline: time.Now().Add(timeout)}
	if d, ok := parent.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	return c, c.release
}

// started returns the timed context, starting it (cancelled at once
// after release).
func (c *appendCtx) started() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		c.timed, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.released {
			c.cancel()
		}
	}
	return c.timed
}

// release ends the context: Done is closed from now on, and a timer
// Done started is stopped.
func (c *appendCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *appendCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done starts the timer: it is closed when the parent is done, the
// deadline passes or the append is released.
func (c *appendCtx) Done() <-chan struct{} { return c.started().Done() }

func (c *appendCtx) Err() error {
	c.mu.Lock()
	timed, released := c.timed, c.released
	c.mu.Unlock()
	switch {
	case timed != nil:
		return timed.Err()
	case c.parent.Err() != nil:
		return c.parent.Err()
	case !time.Now().Before(c.deadline):
		return context.DeadlineExceeded
	case released:
		return context.Canceled
	}
	return nil
}

func (c *appendCtx) Value(key any) any { return c.parent.Value(key) }

// AfterFunc is how a context derived from this one (a read's
// WithTimeout) follows it: through the timed context's own AfterFunc,
// not with a goroutine of its own that waits on Done.
func (c *appendCtx) AfterFunc(f func()) func() bool { return context.AfterFunc(c.started(), f) }

// waitFor is what a wait bounded by ctx selects on and until when: for an
// append's context, its parent's Done and the deadline, so that no timer
// is started; for any other, its own Done and deadline (zero: none).
func waitFor(ctx context.Context) (<-chan struct{}, time.Time) {
	if c, ok := ctx.(*appendCtx); ok {
		return c.parent.Done(), c.deadline
	}
	d, _ := ctx.Deadline()
	return ctx.Done(), d
}

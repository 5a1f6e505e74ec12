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
type appendCtx struct {
	parent   context.Context
	deadline time.Time // the earlier of the append's and the parent's

	once   sync.Once
	timed  context.Context // WithDeadline(parent, deadline), from the first Done
	cancel context.CancelFunc
}

// boundAppend returns the context of an append that must end by
// timeout from now, and the function that releases it (the caller MUST
// call it).
func boundAppend(parent context.Context, timeout time.Duration) (*appendCtx, context.CancelFunc) {
	c := &appendCtx{parent: parent, deadline: time.Now().Add(timeout)}
	if d, ok := parent.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	return c, c.release
}

func (c *appendCtx) start() {
	c.once.Do(func() { c.timed, c.cancel = context.WithDeadline(c.parent, c.deadline) })
}

// release stops the timer, if Done started one.
func (c *appendCtx) release() {
	c.once.Do(func() {}) // no timer from now on
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *appendCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done starts the timer: it is closed when the parent is done or the
// deadline passes. After release it is the parent's.
func (c *appendCtx) Done() <-chan struct{} {
	c.start()
	if c.timed == nil {
		return c.parent.Done()
	}
	return c.timed.Done()
}

func (c *appendCtx) Err() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *appendCtx) Value(key any) any { return c.parent.Value(key) }

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

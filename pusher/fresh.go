package pusher

import (
	"context"
	"sync"
	"time"
)

// freshness makes the in-memory views (audience, device routes) current as
// of a moment, sharing one sync among every operation taken before it
// started.
//
// The contract: once after(ctx, t) returns nil, the views hold every write
// their buckets had at t. An operation taken at t was appended after every
// subscription and route write made before it (those were acknowledged
// first), so its audience and routes are complete. One sync (a stream-info
// round trip per bucket, and the wait for the watch to apply up to it) is
// shared by all the operations of all partitions taken before it began,
// not paid per operation.
type freshness struct {
	sync func(ctx context.Context) error

	mu   sync.Mutex
	good time.Time // start of the last sync that succeeded
	cur  *syncCall // the sync in flight, or nil
}

type syncCall struct {
	start time.Time
	done  chan struct{}
	err   error
}

// syncTimeout bounds one shared sync; a caller whose context ends sooner
// stops waiting for it.
const syncTimeout = 10 * time.Second

// after returns once a sync that began after t has succeeded, or the
// error of one that failed, or ctx's error.
func (f *freshness) after(ctx context.Context, t time.Time) error {
	for {
		f.mu.Lock()
		if f.good.After(t) {
			f.mu.Unlock()
			return nil
		}
		c := f.cur
		if c == nil {
			c = &syncCall{start: time.Now(), done: make(chan struct{})}
			f.cur = c
			go f.run(c) // owned by c: it ends within syncTimeout
		}
		f.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.start.After(t) && c.err != nil {
			return c.err
		}
		// It succeeded (and after sees it next turn), or it began too
		// early: go round for the next one.
	}
}

func (f *freshness) run(c *syncCall) {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	c.err = f.sync(ctx)
	cancel()
	f.mu.Lock()
	if c.err == nil && c.start.After(f.good) {
		f.good = c.start
	}
	f.cur = nil
	f.mu.Unlock()
	close(c.done)
}

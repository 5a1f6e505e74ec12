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
// not paid per operation. Syncs begin at most every syncSpacing: under a
// steady stream of operations (each taken after the last sync began, so
// each needing a new one) the operations taken within syncSpacing share
// one sync, at the cost of at most syncSpacing of delay before their
// sends.
type freshness struct {
	sync func(ctx context.Context) error

	mu        sync.Mutex
	good      time.Time // start of the last sync that succeeded
	lastStart time.Time // start of the last sync
	cur       *syncCall // the sync in flight, or nil
}

type syncCall struct {
	start time.Time
	done  chan struct{}
	err   error
}

// syncTimeout bounds one shared sync; a caller whose context ends sooner
// stops waiting for it.
const syncTimeout = 10 * time.Second

// syncSpacing is the least time between the starts of two syncs.
const syncSpacing = 2 * time.Millisecond

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
			// Its start is set when it begins, which may be later:
			// every caller that joins it until then is covered too.
			c = &syncCall{done: make(chan struct{})}
			f.cur = c
			go f.run(c, f.lastStart) // owned by c: it ends within syncSpacing + syncTimeout
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

// run waits until syncSpacing after the last sync's start, then syncs.
// c.start is written here, before done is closed, and read by the
// callers after.
func (f *freshness) run(c *syncCall, last time.Time) {
	if wait := time.Until(last.Add(syncSpacing)); wait > 0 {
		time.Sleep(wait)
	}
	f.mu.Lock()
	c.start = time.Now()
	f.lastStart = c.start
	f.mu.Unlock()
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

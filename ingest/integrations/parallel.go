package integrations

import (
	"context"
	"errors"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/pushgo/gateway/schemas/apierr"
)

// eachBounded calls fn for 0..n-1, at most limit at once, and returns the
// first error; the first error cancels the ctx given to the calls not yet
// done, and no goroutine takes another index after it (one taken as it
// came may still start). Appends already made stay made: the tool's retry
// is idempotent.
// A single call runs on the caller's goroutine: most reports are about one
// Thing or one group, and a goroutine and a cancellable context for it
// were a handoff per request for nothing to run beside.
//
// Otherwise min(n, limit) goroutines take the indexes in order, each as
// many as it can: a report's goroutine is costly to start (it grows its
// stack by doubling deep in the JSON encoder, each growth copying the
// stack: 7.0% of the CPU of 100-alert Alertmanager notifications with a
// goroutine per alert, 5.8% with one per place), so a 100-alert
// notification starts 64 goroutines, not 100. What would take the rest:
// workers that outlive a request and keep their grown stacks.
func eachBounded(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) *apierr.Error) *apierr.Error {
	if n == 1 {
		return fn(ctx, 0)
	}
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(n, max(limit, 1)) {
		g.Go(func() error {
			for gctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if aerr := fn(gctx, i); aerr != nil {
					return aerr
				}
			}
			return nil
		})
	}
	var aerr *apierr.Error
	if err := g.Wait(); errors.As(err, &aerr) {
		return aerr
	}
	return nil
}

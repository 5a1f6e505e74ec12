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
// many as it can: a report's goroutine is costly to start (its stack,
// growStack), so a 100-alert notification starts one goroutine per place
// (64), not one per alert.
func eachBounded(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) *apierr.Error) *apierr.Error {
	if n == 1 {
		return fn(ctx, 0)
	}
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(n, max(limit, 1)) {
		g.Go(func() error {
			growStack(n)
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

// reportStackBytes is about the stack a report's append path needs: the
// tracker's update, the operation's validation and its JSON encoding
// (go-json-experiment's encoder recurses deeply with large frames).
const reportStackBytes = 32 << 10

// growStack grows the calling goroutine's stack to hold a report's append
// path, in one step and while the stack is nearly empty. A goroutine
// starts with the average of the stacks the last collection scanned
// (the runtime's adaptive start), 8 KiB in the gateway, whose goroutines
// are mostly the broker's and the HTTP server's, shallow; it grows by
// doubling when a call does not fit: deep in the encoder, each growth
// copies the stack and adjusts every frame below it, which cost 7% of the
// CPU of 100-alert Alertmanager notifications (-integprofile, the row's
// runtime.copystack). One frame of reportStackBytes near the goroutine's
// root makes the runtime allocate the final size at once with two frames
// to copy. i only keeps the compiler from dropping the frame (which the
// language does not promise: TestGrowStackGrowsTheStackAtOnce checks it).
//
//go:noinline
func growStack(i int) byte {
	var frame [reportStackBytes]byte
	return frame[i%len(frame)]
}

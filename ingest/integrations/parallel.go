package integrations

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"

	"github.com/pushgo/gateway/schemas/apierr"
)

// eachBounded calls fn for 0..n-1, at most limit at once, and returns the
// first error; the first error cancels the ctx given to the calls not yet
// done. Appends already made stay made: the tool's retry is idempotent.
// A single call runs on the caller's goroutine: most reports are about one
// Thing or one group, and a goroutine and a cancellable context for it
// were a handoff per request for nothing to run beside.
func eachBounded(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) *apierr.Error) *apierr.Error {
	if n == 1 {
		return fn(ctx, 0)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if aerr := fn(gctx, i); aerr != nil {
				return aerr
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

package integrations

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// eachBounded calls fn once per index, never more than limit at once, and
// answers the first error; a single call gets the caller's context.
func TestEachBounded(t *testing.T) {
	for _, n := range []int{0, 1, 2, 40} {
		var mu sync.Mutex
		seen := map[int]int{}
		var running, peak atomic.Int32
		aerr := eachBounded(context.Background(), n, 4, func(ctx context.Context, i int) *apierr.Error {
			if r := running.Add(1); r > peak.Load() {
				peak.Store(r)
			}
			defer running.Add(-1)
			mu.Lock()
			seen[i]++
			mu.Unlock()
			return nil
		})
		if aerr != nil || len(seen) != n || peak.Load() > 4 {
			t.Fatalf("n=%d: %v, seen %v, peak %d", n, aerr, seen, peak.Load())
		}
		for i, c := range seen {
			if c != 1 || i < 0 || i >= n {
				t.Fatalf("n=%d: index %d called %d times", n, i, c)
			}
		}
	}
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "caller")
	want := apierr.New(apierr.AppendUnavailable)
	got := eachBounded(ctx, 1, 4, func(ctx context.Context, i int) *apierr.Error {
		if ctx.Value(key{}) != "caller" || i != 0 {
			t.Errorf("single call: ctx %v, i %d", ctx, i)
		}
		return want
	})
	if got != want {
		t.Fatalf("single call answered %v, want %v", got, want)
	}
	var called []int
	if got := eachBounded(ctx, 3, 1, func(ctx context.Context, i int) *apierr.Error {
		called = append(called, i)
		if i == 1 {
			return want
		}
		return nil
	}); got != want {
		t.Fatalf("three calls answered %v, want the second's error", got)
	}
	if !slices.Equal(called, []int{0, 1}) {
		t.Fatalf("one at a time, the second failing: called %v, want [0 1] (nothing starts after a failure)", called)
	}
}

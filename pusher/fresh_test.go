package pusher

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestFreshnessCoversEachCallerAndSharesSyncs: after(t) returns only
// once a sync that began after t succeeded; and the callers that came
// while one sync was in flight (each after it began, so it does not cover
// them) share the next one: 100 such callers cost 2 syncs, not 101.
func TestFreshnessCoversEachCallerAndSharesSyncs(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Time
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	f := &freshness{sync: func(ctx context.Context) error {
		mu.Lock()
		starts = append(starts, time.Now())
		first := len(starts) == 1
		mu.Unlock()
		entered <- struct{}{}
		if first {
			<-release
		}
		return nil
	}}
	ctx := context.Background()

	// checkCovered fails unless a sync began after t.
	checkCovered := func(t0 time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range starts {
			if s.After(t0) {
				return true
			}
		}
		return false
	}

	firstDone := make(chan time.Time, 1)
	t0 := time.Now()
	go func() {
		if err := f.after(ctx, t0); err != nil {
			t.Error(err)
		}
		firstDone <- t0
	}()
	<-entered // the first sync is in flight, held

	const callers = 100
	var wg sync.WaitGroup
	errs := make(chan string, callers)
	for range callers {
		tc := time.Now() // after the first sync began
		wg.Go(func() {
			if err := f.after(ctx, tc); err != nil {
				errs <- err.Error()
				return
			}
			if !checkCovered(tc) {
				errs <- "returned before a sync that began after the caller"
			}
		})
	}
	// Each caller, whether it reached after before the first sync ended
	// or not, began before the second sync can begin.
	close(release)
	if got := <-firstDone; !checkCovered(got) {
		t.Fatal("the first caller returned before a sync that began after it")
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	mu.Lock()
	n := len(starts)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("%d syncs for 1 caller and %d callers waiting on its sync, want 2", n, callers)
	}
}

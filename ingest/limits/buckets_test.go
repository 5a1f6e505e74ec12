package limits

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Refusals at once leave the bucket as they found it: once a token is due,
// the next request gets it (refusals made as cancelled reservations put the
// bucket in debt whenever they overlapped).
func TestBucketRefusalsAtOnceTakeNothing(t *testing.T) {
	b := newAddrBuckets(60) // a token a second
	now := time.Now()
	// Overlapping refusals are a matter of scheduling: many rounds, each
	// on a bucket of its own.
	for round := range 30 {
		key := fmt.Sprint("addr-", round)
		for i := range 60 {
			if _, ok := b.take(key, now); !ok {
				t.Fatalf("take %d of a full bucket refused", i)
			}
		}
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				if wait, ok := b.take(key, now); ok || wait <= 0 || wait > time.Second {
					t.Errorf("an empty bucket: ok %v, wait %v (want a refusal, a token due within 1 s)", ok, wait)
				}
			})
		}
		wg.Wait()
		if _, ok := b.take(key, now.Add(time.Second)); !ok {
			t.Fatalf("round %d: a token due after a second was refused: the refusals took tokens", round)
		}
		if wait, ok := b.take(key, now.Add(time.Second)); ok || wait != time.Second {
			t.Fatalf("round %d: the bucket emptied again: ok %v, wait %v, want a second", round, ok, wait)
		}
	}
}

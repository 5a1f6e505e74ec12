package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Refusals at once leave the bucket as they found it: once a token is due,
// the next request gets it (refusals made as cancelled reservations put the
// bucket in debt whenever they overlapped).
func TestBucketRefusalsAtOnceTakeNothing(t *testing.T) {
	b := newAddrBuckets(60, 0) // a token a second
	now := time.Now()
	// Overlapping refusals are a matter of scheduling: many rounds, each
	// on a bucket of its own.
	for round := range 30 {
		key := fmt.Sprint("addr-", round)
		for i := range 60 {
			if _, _, ok := b.take(Client{Key: key}, now); !ok {
				t.Fatalf("take %d of a full bucket refused", i)
			}
		}
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				if wait, _, ok := b.take(Client{Key: key}, now); ok || wait <= 0 || wait > time.Second {
					t.Errorf("an empty bucket: ok %v, wait %v (want a refusal, a token due within 1 s)", ok, wait)
				}
			})
		}
		wg.Wait()
		if _, _, ok := b.take(Client{Key: key}, now.Add(time.Second)); !ok {
			t.Fatalf("round %d: a token due after a second was refused: the refusals took tokens", round)
		}
		if wait, _, ok := b.take(Client{Key: key}, now.Add(time.Second)); ok || wait != time.Second {
			t.Fatalf("round %d: the bucket emptied again: ok %v, wait %v, want a second", round, ok, wait)
		}
	}
}

// TestDeviceRoomAsksTheRegistryOnce: while one registration counts the
// devices (the registry slow: its bucket without a leader), the others are
// answered at once by the last count, none waiting behind it; a count that
// failed is not asked again within the second.
func TestDeviceRoomAsksTheRegistryOnce(t *testing.T) {
	var calls atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	now := time.Now()
	l := New(Config{Devices: 10}, Options{Now: func() time.Time { return now }, CountDevices: func(ctx context.Context) (int64, error) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return 0, errors.New("no leader")
	}})
	first := make(chan bool)
	go func() { first <- l.DeviceRoom(context.Background()) }()
	<-entered
	for i := range 4 { // answered while the first count is still under way
		if !l.DeviceRoom(context.Background()) {
			t.Fatalf("registration %d refused with no count known", i)
		}
	}
	close(release)
	if !<-first {
		t.Fatal("the counting registration refused after a failed count")
	}
	if !l.DeviceRoom(context.Background()) || calls.Load() != 1 {
		t.Fatalf("%d counts within the second, want 1", calls.Load())
	}
}

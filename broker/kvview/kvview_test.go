package kvview_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/kvview"
	"github.com/pushgo/gateway/broker/leaderread"
)

func decodeString(_ string, v []byte, _ uint64) (string, error) { return string(v), nil }

func bucket(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "TEST", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestMapSeesEveryEarlierWrite: after Sync, a map fed by one connection
// holds every write made before through another, deletions included.
func TestMapSeesEveryEarlierWrite(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t, brokertest.NoEnsure())
	kv := bucket(t, b.JS)
	_, otherJS := b.Conn(t)
	m, err := kvview.OpenMap(ctx, b.JS, kv.Bucket(), decodeString, kvview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	other, err := otherJS.KeyValue(ctx, kv.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := other.Put(ctx, "k"+strconv.Itoa(i), []byte("v"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Delete(ctx, "k7"); err != nil {
		t.Fatal(err)
	}
	if err := m.Watch().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		v, ok, known := m.Get("k" + strconv.Itoa(i))
		switch {
		case i == 7 && (ok || !known):
			t.Errorf("k7: deleted, yet ok=%v known=%v", ok, known)
		case i != 7 && (!ok || v != "v"+strconv.Itoa(i)):
			t.Errorf("k%d = %q, %v", i, v, ok)
		}
	}
}

// TestLookupReadsTheBucketOnAMiss: a key the watch has not brought (here:
// a map whose watch is stopped) is read from the bucket.
func TestLookupReadsTheBucketOnAMiss(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t, brokertest.NoEnsure())
	kv := bucket(t, b.JS)
	m, err := kvview.OpenMap(ctx, b.JS, kv.Bucket(), decodeString, kvview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close() // the bucket stays readable; the view no longer changes
	if _, err := kv.Put(ctx, "late", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, _, known := m.Get("late"); known {
		t.Fatal("a stopped watch saw the write")
	}
	v, ok, err := m.Lookup(ctx, "late")
	if err != nil || !ok || v != "hello" {
		t.Fatalf("Lookup = %q, %v, %v", v, ok, err)
	}
	if v, ok, err := m.Lookup(ctx, "absent"); err != nil || ok {
		t.Fatalf("Lookup(absent) = %q, %v, %v", v, ok, err)
	}
}

// TestRevisionOrder: an older write never replaces a newer one, and with
// DeletesAreFinal a deletion is never undone.
func TestRevisionOrder(t *testing.T) {
	m := kvview.NewMap[string](decodeString, kvview.Options{})
	m.Remember("k", "new", 5)
	m.Remember("k", "old", 4)
	if v, _, _ := m.Get("k"); v != "new" {
		t.Fatalf("older write won: %q", v)
	}
	m.Delete("k", 6)
	m.Remember("k", "newer", 7)
	if v, ok, _ := m.Get("k"); !ok || v != "newer" {
		t.Fatalf("a write after a deletion is the value: got %q, %v", v, ok)
	}
	final := kvview.NewMap[string](decodeString, kvview.Options{DeletesAreFinal: true})
	final.Remember("k", "v", 5)
	final.Delete("k", 5)
	final.Remember("k", "v", 9)
	if _, ok, known := final.Get("k"); ok || !known {
		t.Fatalf("final deletion undone: ok=%v known=%v", ok, known)
	}
}

// TestUpdateRetriesLostRaces: writers racing on one key by
// compare-and-swap lose no increment; a missing key is ErrNotFound.
func TestUpdateRetriesLostRaces(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t, brokertest.NoEnsure())
	kv := bucket(t, b.JS)
	if _, err := kv.Put(ctx, "n", []byte("0")); err != nil {
		t.Fatal(err)
	}
	reads, err := leaderread.NewBucket(ctx, b.JS, kv)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				_, err := kvview.Update(ctx, reads, "n", func(v []byte, _ uint64) ([]byte, bool, error) {
					n, err := strconv.Atoi(string(v))
					return []byte(strconv.Itoa(n + 1)), true, err
				}, kvview.UpdateOptions{Attempts: 1000})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "n")
	if err != nil || string(e.Value()) != strconv.Itoa(writers*each) {
		t.Fatalf("n = %s, %v; want %d", e.Value(), err, writers*each)
	}
	_, err = kvview.Update(ctx, reads, "missing", func(v []byte, _ uint64) ([]byte, bool, error) { return v, true, nil }, kvview.UpdateOptions{})
	if !errors.Is(err, kvview.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if !cas.Lost(jetstream.ErrKeyExists) || cas.Lost(errors.New("other")) || cas.Lost(nil) {
		t.Fatal("cas.Lost misjudges")
	}
}

// A deleted key's tombstone is dropped after Options.TombstonesKept: a
// tombstone for every key ever deleted (a revoked token each) grew without
// end. Within that time a late read cannot bring the key back; after it,
// the key is unknown to the view and Lookup's bucket read answers not
// found.
func TestTombstonesAreDroppedAfterTheirTime(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t, brokertest.NoEnsure())
	kv := bucket(t, b.JS)
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	m, err := kvview.OpenMap(ctx, b.JS, kv.Bucket(), decodeString,
		kvview.Options{DeletesAreFinal: true, TombstonesKept: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const n = 300
	revs := make([]uint64, n)
	for i := range n {
		if revs[i], err = kv.Put(ctx, "k"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := kv.Delete(ctx, "k"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Watch().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.Tombstones(); got != n {
		t.Fatalf("%d tombstones after %d deletions", got, n)
	}
	// A read that raced with the deletion remembers what it read late.
	m.Remember("k5", "v", revs[5])
	if _, ok, known := m.Get("k5"); ok || !known {
		t.Fatalf("k5 came back within its tombstone's time: ok=%v known=%v", ok, known)
	}

	advance(time.Minute)
	if _, err := kv.Put(ctx, "after", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := m.Watch().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.Tombstones(); got != 0 {
		t.Fatalf("%d tombstones a minute after the deletions, want none", got)
	}
	for _, i := range []int{0, 5, n - 1} {
		key := "k" + strconv.Itoa(i)
		if _, _, known := m.Get(key); known {
			t.Errorf("%s still known to the view", key)
		}
		if v, ok, err := m.Lookup(ctx, key); err != nil || ok {
			t.Errorf("Lookup(%s) = %q, %v, %v: want not found", key, v, ok, err)
		}
	}
}

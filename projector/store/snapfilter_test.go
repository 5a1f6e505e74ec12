package store

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// waitSnapshotFilter waits until s has a snapshot filter in use sized for
// at least keys keys.
func waitSnapshotFilter(t *testing.T, s *Store, keys int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if f := s.snapFilter.Load(); f != nil && f.sized >= keys {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot filter sized for %d keys after 30s", keys)
		}
		time.Sleep(time.Millisecond)
	}
}

func putEvents(t *testing.T, s *Store, from, to int, applied uint64) {
	t.Helper()
	b := s.NewBatch()
	for i := from; i < to; i++ {
		if err := b.PutEvent(nil, &fold.Event{ChannelID: ch, EventID: fmt.Sprintf("%032x", i), State: "ONGOING"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(applied); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotFilterNeverLosesAKey: a key added is always reported as
// possibly held (the hash of the fold's string key and of the scan's byte
// key agree), and a key never added is reported absent nearly always at
// the load the filter was sized for.
func TestSnapshotFilterNeverLosesAKey(t *testing.T) {
	seed := maphash.MakeSeed()
	const n = 10_000
	f := newSnapFilter(seed, n)
	for i := range n {
		f.add(maphash.String(seed, fmt.Sprintf("e\x00%s\x00%032x", ch, i)))
	}
	for i := range n {
		if !f.mayHold(hashKey(seed, []byte(fmt.Sprintf("e\x00%s\x00%032x", ch, i)))) {
			t.Fatalf("key %d added, reported absent", i)
		}
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if f.mayHold(hashKey(seed, []byte(fmt.Sprintf("e\x00%s\x00%032x", ch, i)))) {
			fp++
		}
	}
	if fp > n/50 {
		t.Fatalf("%d of %d keys never added reported possibly held: want under 2%%", fp, n)
	}
}

// TestNewEntityLookupSkipsPebble: once the filter is built, the lookup of
// an entity the store never held is answered without asking Pebble (no
// table's filter consulted), and an entity it holds is still found.
func TestNewEntityLookupSkipsPebble(t *testing.T) {
	s := open(t)
	waitSnapshotFilter(t, s, 1)
	if hits, misses := missingLookups(t, s); hits+misses > 10 {
		t.Fatalf("%d of 100 lookups of entities never written reached a table: want only the snapshot filter's false positives", hits+misses)
	}
	s.cache = NewCache(10, DefaultCachedSnapshotBytes, nil) // read back from Pebble, not the decoded cache
	s.cache.mu = new(sync.Mutex)
	for i := range 100 {
		if ev, err := s.NewBatch().Event(ch, fmt.Sprintf("%032x", i)); err != nil || ev == nil {
			t.Fatalf("event %d: %v, %v; want it", i, ev, err)
		}
	}
}

// TestSnapshotFilterScansTheStore: a store reopened builds its filter
// from the snapshots on disk: every one of them is still found.
func TestSnapshotFilterScansTheStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	putEvents(t, s, 0, 1000, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitSnapshotFilter(t, s, 1)
	for i := range 1000 {
		if ev, err := s.NewBatch().Event(ch, fmt.Sprintf("%032x", i)); err != nil || ev == nil {
			t.Fatalf("event %d after reopening: %v, %v; want it", i, ev, err)
		}
	}
	if ev, err := s.NewBatch().Event(ch, fmt.Sprintf("%032x", 1000)); err != nil || ev != nil {
		t.Fatalf("event never written: %v, %v; want none", ev, err)
	}
}

// TestSnapshotFilterGrowsUnderWrites: a filter sized for 64 keys is
// rebuilt larger, several times, while commits go on; at every point
// each snapshot committed is reported as possibly held, by whichever
// filter is in use, and the last one is sized for all of them.
func TestSnapshotFilterGrowsUnderWrites(t *testing.T) {
	s, err := Open("", Options{InMemory: true, SnapshotFilterKeys: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const batches, per = 200, 50
	for i := range batches {
		putEvents(t, s, i*per, (i+1)*per, uint64(i+1))
		// The batch just committed, and a stride through the earlier ones
		// (every key of every batch is checked at the end).
		for j := 0; j < (i+1)*per; j++ {
			if j < i*per && j%7 != i%7 {
				continue
			}
			if s.snapshotAbsent(snapshotKey(ops.KindEvent, ch, fmt.Sprintf("%032x", j))) {
				t.Fatalf("after commit %d: event %d committed, reported absent", i, j)
			}
		}
	}
	waitSnapshotFilter(t, s, batches*per)
	for j := range batches * per {
		if s.snapshotAbsent(snapshotKey(ops.KindEvent, ch, fmt.Sprintf("%032x", j))) {
			t.Fatalf("event %d committed, reported absent by the grown filter", j)
		}
	}
}

// TestSnapshotFilterNotUsedAfterAFailedScan: a scan that meets a read error
// puts no filter in use, even when the error is in its first key range and
// the second reads nothing (Pebble's First clears the error of the range
// before); the store answers from Pebble, and every event is still found.
func TestSnapshotFilterNotUsedAfterAFailedScan(t *testing.T) {
	mem := vfs.NewMem()
	s, err := Open("", Options{InMemory: true, memFS: mem})
	if err != nil {
		t.Fatal(err)
	}
	putEvents(t, s, 0, 1000, 1) // events only: the thing range is empty
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	failTables := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind == errorfs.OpFileReadAt && strings.HasSuffix(op.Path, ".sst") {
			return errorfs.ErrInjected
		}
		return nil
	})
	s, err = Open("", Options{InMemory: true, memFS: errorfs.Wrap(mem, failTables)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for s.filterRetryAt.Load() == 0 && s.snapFilter.Load() == nil { // the build's end, failed or not
		if time.Now().After(deadline) {
			t.Fatal("the snapshot filter's build did not end in 30s")
		}
		time.Sleep(time.Millisecond)
	}
	if s.snapFilter.Load() != nil {
		t.Fatal("a filter built by a scan that failed is in use")
	}
	failing.Store(false)
	for i := range 1000 {
		ev, err := s.NewBatch().Event(ch, fmt.Sprintf("%032x", i))
		for try := 0; try < 3 && errors.Is(err, errorfs.ErrInjected); try++ {
			// Pebble's file cache may still hold a table's open that failed
			// while the failures were on; a later read opens it again. What
			// matters is that the store never answers "no such event".
			ev, err = s.NewBatch().Event(ch, fmt.Sprintf("%032x", i))
		}
		if err != nil || ev == nil {
			t.Fatalf("event %d: %v, %v; want it", i, ev, err)
		}
	}
}

package store

import (
	"fmt"
	"testing"
)

// TestMissingSnapshotSkipsTablesByFilter: the lookup of a snapshot that no
// table holds (the fold's lookup for each new entity) is answered by the
// tables' Bloom filters, not by reading their data blocks. It runs
// without the store's own snapshot filter (snapfilter.go), which answers
// such a lookup before Pebble is asked once it is built: until then, and
// for its false positives, the tables' filters do.
func TestMissingSnapshotSkipsTablesByFilter(t *testing.T) {
	s, err := Open("", Options{InMemory: true, SnapshotFilterKeys: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if hits, misses := missingLookups(t, s); hits < 90 {
		t.Fatalf("%d of 100 lookups of missing snapshots answered by a table's filter (misses %d): want nearly all", hits, misses)
	}
}

// missingLookups writes events 0-99 and flushes them to a table, then looks
// up events 100-199, never written, each of which must come back empty,
// and returns how many of those lookups a table's filter answered (hits)
// or passed on to its data (misses).
func missingLookups(t *testing.T, s *Store) (hits, misses int64) {
	t.Helper()
	putEvents(t, s, 0, 100, 1)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := s.db.Metrics().Filter
	for i := 100; i < 200; i++ {
		ev, err := s.NewBatch().Event(ch, fmt.Sprintf("%032x", i))
		if err != nil || ev != nil {
			t.Fatalf("event %d: %v, %v; want none", i, ev, err)
		}
	}
	after := s.db.Metrics().Filter
	return after.Hits - before.Hits, after.Misses - before.Misses
}

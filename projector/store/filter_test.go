package store

import (
	"fmt"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
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
	b := s.NewBatch()
	for i := range 100 {
		id := fmt.Sprintf("%032x", i)
		if err := b.PutEvent(nil, &fold.Event{ChannelID: ch, EventID: id, State: "ONGOING"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
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
	if hits := after.Hits - before.Hits; hits < 90 {
		t.Fatalf("%d of 100 lookups of missing snapshots answered by a table's filter (misses %d): want nearly all",
			hits, after.Misses-before.Misses)
	}
}

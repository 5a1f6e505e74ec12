package store

import (
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestDueDeadlinesReadsTheRefreshedEvent: an event refreshed to a later
// deadline between the scan's index read and its snapshot read is not
// due: the closer would close it (timed_out, ended in the future), since
// the fresh snapshot's LastSeq lets its conditional close through.
func TestDueDeadlinesReadsTheRefreshedEvent(t *testing.T) {
	s := open(t)
	const ch, id = "01ARZ3NDEKTSV4RRFFQ69G5FAV", "e1"
	put := func(prev *fold.Event, deadline int64, seq uint64) *fold.Event {
		t.Helper()
		ev := &fold.Event{ChannelID: ch, EventID: id, State: ops.EventOngoing, Deadline: &deadline, LastSeq: seq, Version: seq}
		b := s.NewBatch()
		if err := b.PutEvent(prev, ev); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(seq); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	const before = 2_000
	first := put(nil, 1_000, 1)
	s.hooks.afterDueIndex = func() {
		s.hooks.afterDueIndex = nil
		put(first, before+3_600_000, 2) // the refresh, as the scan runs
	}
	due, err := s.DueDeadlines(before, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 0 {
		t.Fatalf("due after the refresh: %+v, want none", due)
	}
}

package store

import (
	"slices"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
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
	due, err := s.DueDeadlines(before, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 0 {
		t.Fatalf("due after the refresh: %+v, want none", due)
	}
}

// TestDueDeadlinesPages: a page starts after the event its cursor names,
// so paging visits every due event once, in deadline order, ties by
// channel and event id, and none after the bound.
func TestDueDeadlinesPages(t *testing.T) {
	s := open(t)
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	b := s.NewBatch()
	deadlines := map[string]int64{"e1": 100, "e2": 200, "e3": 200, "e4": 300, "e5": 400, "late": 5_000}
	seq := uint64(0)
	for id, d := range deadlines {
		seq++
		ev := &fold.Event{ChannelID: ch, EventID: id, State: ops.EventOngoing, Deadline: &d, LastSeq: seq, Version: 1}
		if err := b.PutEvent(nil, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(seq); err != nil {
		t.Fatal(err)
	}
	want := []string{"e1", "e2", "e3", "e4", "e5"}
	if got := pageDue(t, s, 1_000, 2); !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
}

// TestDueDeadlinesPagesPastARefresh: an event refreshed to a later
// deadline, still due, while a page is read is left to the next scan: the
// page's cursor is its last event's deadline, and with the refreshed
// deadline it skipped the events due between the two.
func TestDueDeadlinesPagesPastARefresh(t *testing.T) {
	s := open(t)
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	events := map[string]*fold.Event{}
	seq := uint64(0)
	put := func(id string, deadline int64) {
		t.Helper()
		seq++
		ev := &fold.Event{ChannelID: ch, EventID: id, State: ops.EventOngoing, Deadline: &deadline, LastSeq: seq, Version: seq}
		b := s.NewBatch()
		if err := b.PutEvent(events[id], ev); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(seq); err != nil {
			t.Fatal(err)
		}
		events[id] = ev
	}
	put("e1", 100)
	put("e2", 200)
	put("e3", 300)
	s.hooks.afterDueIndex = func() {
		s.hooks.afterDueIndex = nil
		put("e2", 350) // refreshed as the first page is read: still due
	}
	seen := map[string]int{}
	for _, id := range pageDue(t, s, 1_000, 2) {
		seen[id]++
	}
	if seen["e3"] != 1 || seen["e1"] != 1 || seen["e2"] > 1 {
		t.Fatalf("paged %v: want e1 and e3 once each (e2 at most once)", seen)
	}
}

// pageDue reads the events due before before, limit a page, each page
// after the last one's last event, as the closer does (ten pages at
// most), and returns their ids in the order read.
func pageDue(t *testing.T, s *Store, before int64, limit int) []string {
	t.Helper()
	var got []string
	var after *reads.DueEvent
	for range 10 {
		page, err := s.DueDeadlines(before, limit, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			got = append(got, d.EventID)
		}
		if len(page) < limit {
			break
		}
		after = &page[len(page)-1]
	}
	return got
}

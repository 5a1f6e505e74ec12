package store

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// groupEvent is event id of ch at version v (its title says which).
func groupEvent(id string, v uint64) *fold.Event {
	return &fold.Event{ChannelID: ch, EventID: id, State: ops.EventOngoing, Title: fmt.Sprintf("v%d", v), Version: v, LastSeq: v}
}

// putGroupEvent folds the next version of event id into b as the fold
// does: read its snapshot, put the one after it.
func putGroupEvent(t *testing.T, b *Batch, id string) {
	t.Helper()
	prev, err := b.Event(ch, id)
	if err != nil {
		t.Fatal(err)
	}
	v := uint64(1)
	if prev != nil {
		v = prev.Version + 1
	}
	if err := b.PutEvent(prev, groupEvent(id, v)); err != nil {
		t.Fatal(err)
	}
}

// wantTitle checks what a batch reads of event id.
func wantTitle(t *testing.T, b *Batch, id, want, when string) {
	t.Helper()
	got, err := b.Event(ch, id)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case want == "" && got != nil:
		t.Fatalf("%s: event %s reads %q, want none", when, id, got.Title)
	case want != "" && (got == nil || got.Title != want):
		t.Fatalf("%s: event %s reads %+v, want %q", when, id, got, want)
	}
}

// A batch of a goroutine's own cache writes its snapshots through the
// cache: the batch reads its own writes, and a batch discarded (a fold
// that stops mid-group) leaves none of them there: the next batch reads
// what the store holds.
func TestDiscardedBatchLeavesNothingInItsCache(t *testing.T) {
	s := open(t)
	var committed atomic.Uint64
	c := NewCache(1000, &committed)
	b := s.NewBatchWith(c)
	putGroupEvent(t, b, "e1")
	b.Seal(1)
	if err := s.CommitGroup([]*Batch{b}, 1); err != nil {
		t.Fatal(err)
	}
	committed.Store(1)

	b = s.NewBatchWith(c)
	putGroupEvent(t, b, "e1")
	putGroupEvent(t, b, "e2")
	wantTitle(t, b, "e1", "v2", "in the batch that wrote it")
	b.Discard()

	b = s.NewBatchWith(c)
	wantTitle(t, b, "e1", "v1", "after a discarded batch")
	wantTitle(t, b, "e2", "", "after a discarded batch")
	b.Discard()
}

// A cache smaller than what the fold writes before a commit evicts none
// of the snapshots not yet committed (a batch's, or a sealed group's): the
// store does not hold them yet, and a snapshot read back from it would be
// an older one.
func TestCacheKeepsWhatIsNotCommitted(t *testing.T) {
	s := open(t)
	var committed atomic.Uint64
	c := NewCache(2, &committed)
	ids := []string{"e1", "e2", "e3", "e4", "e5"}
	first := s.NewBatchWith(c)
	for _, id := range ids {
		putGroupEvent(t, first, id)
	}
	for _, id := range ids {
		wantTitle(t, first, id, "v1", "in the open batch")
	}
	first.Seal(1)

	second := s.NewBatchWith(c) // group 1 sealed, not committed
	for _, id := range ids {
		putGroupEvent(t, second, id)
		putGroupEvent(t, second, id+"-new")
	}
	second.Seal(2)
	if err := s.CommitGroup([]*Batch{first}, 5); err != nil {
		t.Fatal(err)
	}
	committed.Store(1)
	if err := s.CommitGroup([]*Batch{second}, 15); err != nil {
		t.Fatal(err)
	}
	committed.Store(2)

	third := s.NewBatchWith(c)
	for _, id := range ids {
		wantTitle(t, third, id, "v2", "after both groups")
		wantTitle(t, third, id+"-new", "v1", "after both groups")
	}
	third.Discard()
}

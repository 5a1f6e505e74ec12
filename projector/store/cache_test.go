package store

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

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
	c := NewCache(1000, DefaultCachedSnapshotBytes, &committed)
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
	c := NewCache(2, DefaultCachedSnapshotBytes, &committed)
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

// bigThing is thing id of ch with one attrs member of size bytes.
func bigThing(id string, size int) *fold.Thing {
	value := jsontext.Value(`"` + strings.Repeat("x", size) + `"`)
	return &fold.Thing{ChannelID: ch, ThingID: id, State: ops.ThingActive, Attrs: fold.Attrs{{Name: "blob", Value: value}},
		Version: 1, LastSeq: 1}
}

// The cache is bounded by its snapshots' memory as well as their count: a
// Thing's attrs may reach fold.MaxAttrsBytes, and 100,000 of them held by
// count alone took 155 GiB. What it evicts is read back from the store.
func TestCacheBoundedByBytes(t *testing.T) {
	s := open(t)
	const budget = 64 << 10
	c := NewCache(1000, budget, nil)
	for i := range 40 {
		b := s.NewBatchWith(c)
		if err := b.PutThing(nil, bigThing(fmt.Sprintf("t%d", i), 8<<10)); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(uint64(i + 1)); err != nil {
			t.Fatal(err)
		}
		if got := c.Bytes(); got > budget {
			t.Fatalf("after %d things the cache holds %d bytes, more than its %d", i+1, got, budget)
		}
	}
	if n := c.Len(); n == 0 || n >= 10 {
		t.Fatalf("the cache holds %d things of some 8 KiB within %d bytes", n, budget)
	}
	b := s.NewBatchWith(c)
	defer b.Discard()
	for i := range 40 {
		got, err := b.Thing(ch, fmt.Sprintf("t%d", i))
		if err != nil || got == nil || len(got.Attrs.Get("blob")) != 8<<10+2 {
			t.Fatalf("thing t%d reads %v, %v", i, got, err)
		}
	}
}

// A snapshot not yet committed stays in the cache past its bytes, as past
// its count (TestCacheKeepsWhatIsNotCommitted): the store does not hold it.
func TestCacheKeepsWhatIsNotCommittedPastItsBytes(t *testing.T) {
	s := open(t)
	var committed atomic.Uint64
	c := NewCache(1000, 16<<10, &committed)
	b := s.NewBatchWith(c)
	for i := range 5 {
		if err := b.PutThing(nil, bigThing(fmt.Sprintf("t%d", i), 8<<10)); err != nil {
			t.Fatal(err)
		}
	}
	b.Seal(1)
	if n := c.Len(); n != 5 {
		t.Fatalf("the cache holds %d of the 5 sealed things", n)
	}
	if err := s.CommitGroup([]*Batch{b}, 5); err != nil {
		t.Fatal(err)
	}
	committed.Store(1)
	next := s.NewBatchWith(c)
	if err := next.PutThing(nil, bigThing("t5", 8<<10)); err != nil {
		t.Fatal(err)
	}
	next.Seal(2)
	if got := c.Bytes(); got > 16<<10+snapshotBytes(bigThing("t5", 8<<10), 8<<10+64) {
		t.Fatalf("after the commit the cache holds %d bytes, more than its %d and the sealed thing", got, 16<<10)
	}
	next.Discard()
}

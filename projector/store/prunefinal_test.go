package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// lifecycle is an entity as the fold leaves it: created at seq, then for
// a final one closed or deleted at end (an archived Thing archived
// between).
type lifecycle struct {
	id       string
	kind     ops.Kind
	seq, end uint64 // end 0: still live (ONGOING, active or archived)
	archived bool
}

// foldLifecycles writes ls as the fold would (PutEvent, PutThing from
// each state to the next): events linked to a Thing and with a deadline
// while open, Things with a type and a relationship while not deleted.
func foldLifecycles(t *testing.T, s *Store, ls []lifecycle, applied uint64) {
	t.Helper()
	b := s.NewBatch()
	for _, l := range ls {
		if l.kind == ops.KindEvent {
			deadline := int64(5_000)
			e := &fold.Event{ChannelID: ch, EventID: l.id, State: ops.EventOngoing, ThingID: "t-link", Title: "e", Version: 1, LastSeq: l.seq, Deadline: &deadline}
			if err := b.PutEvent(nil, e); err != nil {
				t.Fatal(err)
			}
			if l.end != 0 {
				c := *e
				c.State, c.Deadline, c.Version, c.LastSeq = ops.EventClosed, nil, 2, l.end
				if err := b.PutEvent(e, &c); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		attrs := fold.Attrs{{Name: "relationships", Value: []byte(`{"runs_on":"t-other"}`)}, {Name: "type", Value: []byte(`"HOST"`)}}
		th := &fold.Thing{ChannelID: ch, ThingID: l.id, Title: "Thing " + l.id, State: ops.ThingActive, Attrs: attrs, Version: 1, LastSeq: l.seq}
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
		if l.archived {
			a := *th
			a.State, a.Version = ops.ThingArchived, 2
			if err := b.PutThing(th, &a); err != nil {
				t.Fatal(err)
			}
			th = &a
		}
		if l.end != 0 {
			d := *th
			d.State, d.Version, d.LastSeq = ops.ThingDeleted, th.Version+1, l.end
			if err := b.PutThing(th, &d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(applied); err != nil {
		t.Fatal(err)
	}
}

// keysOf lists the store's keys that name id (its snapshot and every
// index key), in key order.
func keysOf(t *testing.T, s *Store, id string) []string {
	t.Helper()
	var out []string
	if err := s.Raw(func(k, _ []byte) error {
		if bytes.HasSuffix(k, []byte("\x00"+id)) {
			out = append(out, fmt.Sprintf("%q", k))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func finalKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	if err := s.Raw(func(k, _ []byte) error {
		if _, _, _, id, ok := parseFinalKey(k); ok {
			out = append(out, id)
		} else if k[0] == 'F' {
			t.Errorf("F key of another shape: %q", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

var lifecycles = []lifecycle{
	{id: "ev-closed-old", kind: ops.KindEvent, seq: 1, end: 5},
	{id: "ev-closed-new", kind: ops.KindEvent, seq: 2, end: 15},
	{id: "ev-ongoing-old", kind: ops.KindEvent, seq: 3},
	{id: "th-deleted-old", kind: ops.KindThing, seq: 4, end: 6},
	{id: "th-deleted-new", kind: ops.KindThing, seq: 7, end: 12},
	{id: "th-active-old", kind: ops.KindThing, seq: 8},
	{id: "th-archived-old", kind: ops.KindThing, seq: 9, archived: true},
}

// TestPruneFinalDeletesWhatIsDueAndReadsNothingElse: the prune of a log
// whose first sequence is 10 deletes the CLOSED event and the deleted
// Thing whose last operation is below 10, with every key of theirs; the
// ones made final later and every live entity (ONGOING, active, archived,
// however old) stay. It reads only the due entities' index keys: one
// decision each, not one per entity of the store.
func TestPruneFinalDeletesWhatIsDueAndReadsNothingElse(t *testing.T) {
	s := open(t)
	foldLifecycles(t, s, lifecycles, 20)
	if got := strings.Join(finalKeys(t, s), " "); got != "ev-closed-old th-deleted-old th-deleted-new ev-closed-new" {
		t.Fatalf("final index: %s, want the final entities by the sequence that made them final", got)
	}
	if k := keysOf(t, s, "ev-closed-old"); len(k) != 4 { // snapshot, state, link, final
		t.Fatalf("keys of the closed event before the prune: %v", k)
	}
	if k := keysOf(t, s, "th-deleted-old"); len(k) != 3 { // snapshot, state, final
		t.Fatalf("keys of the deleted Thing before the prune: %v", k)
	}
	defer func(n int) { pruneFinalChunk = n }(pruneFinalChunk)
	pruneFinalChunk = 1
	decided := 0
	s.hooks.beforePruneFinal = func() { decided++ }

	n, err := s.PruneFinal(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || decided != 2 {
		t.Fatalf("pruned %d entities in %d decisions, want 2 in 2 (the due ones only)", n, decided)
	}
	for _, l := range lifecycles {
		snap, err := s.Snapshot(l.kind, ch, l.id)
		if err != nil {
			t.Fatal(err)
		}
		gone := strings.HasSuffix(l.id, "-old") && l.end != 0
		if gone != (snap == nil) {
			t.Errorf("%s: snapshot %s after the prune below 10", l.id, snap)
		}
		if k := keysOf(t, s, l.id); gone && len(k) != 0 {
			t.Errorf("%s: keys left after its prune: %v", l.id, k)
		}
	}
	p, err := s.List(ListFilter{Kind: ops.KindEvent, ChannelID: ch, State: ops.EventClosed, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, p.Items, "event_id"); fmt.Sprint(got) != "[ev-closed-new]" {
		t.Errorf("CLOSED events after the prune: %v", got)
	}
	if got := strings.Join(finalKeys(t, s), " "); got != "th-deleted-new ev-closed-new" {
		t.Errorf("final index after the prune: %s", got)
	}
	// The next pass, at the same first sequence, has nothing to read.
	decided = 0
	if n, err := s.PruneFinal(t.Context(), 10); err != nil || n != 0 || decided != 0 {
		t.Fatalf("a second pass: %d pruned in %d decisions (%v)", n, decided, err)
	}
}

// TestPruneFinalCommitsInChunks: a prune of many entities commits
// pruneFinalChunk at a time, each chunk's deletions visible before the
// next is read, so its memory is a chunk's however many are due.
func TestPruneFinalCommitsInChunks(t *testing.T) {
	s := tenClosedEvents(t)
	defer func(n int) { pruneFinalChunk = n }(pruneFinalChunk)
	pruneFinalChunk = 3
	var left []int
	s.hooks.beforePruneFinal = func() {
		p, err := s.List(ListFilter{Kind: ops.KindEvent, ChannelID: ch, State: ops.EventClosed, Limit: 100})
		if err != nil {
			t.Error(err)
		}
		left = append(left, len(p.Items))
	}
	n, err := s.PruneFinal(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 || fmt.Sprint(left) != "[10 7 4 1]" {
		t.Fatalf("pruned %d; CLOSED events before each chunk %v, want 10 in chunks of 3: [10 7 4 1]", n, left)
	}
}

// TestPruneFinalKeepsAnEntityACreateStartedAnew: a create folded onto a
// final entity (the retry of its create once another replica pruned it)
// and committed between the prune's read of the index and its decision
// makes it live again: the prune keeps it, and drops the index key that
// named it.
func TestPruneFinalKeepsAnEntityACreateStartedAnew(t *testing.T) {
	s := open(t)
	foldLifecycles(t, s, lifecycles[:1], 20)
	s.hooks.beforePruneFinal = func() {
		b := s.NewBatch()
		prev, err := b.Event(ch, "ev-closed-old")
		if err != nil || prev == nil {
			t.Errorf("the closed event before the prune's decision: %v %v", prev, err)
			return
		}
		again := &fold.Event{ChannelID: ch, EventID: "ev-closed-old", State: ops.EventOngoing, Title: "again", Version: 1, LastSeq: 21}
		if err := b.PutEvent(prev, again); err != nil {
			t.Error(err)
		}
		if err := b.Commit(21); err != nil {
			t.Error(err)
		}
	}
	if n, err := s.PruneFinal(t.Context(), 10); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v), want the entity started anew kept", n, err)
	}
	snap, err := s.Snapshot(ops.KindEvent, ch, "ev-closed-old")
	if err != nil || !bytes.Contains(snap, []byte(`"title":"again"`)) {
		t.Fatalf("the event started anew: %s %v", snap, err)
	}
	if got := strings.Join(keysOf(t, s, "ev-closed-old"), " "); strings.Contains(got, "CLOSED") || strings.Contains(got, `"F\x00`) || strings.Contains(got, "t-link") {
		t.Fatalf("keys of the event started anew: %s", got)
	}
}

// TestPrunedSnapshotIsNotReadFromTheCache: the fold's cache holds the
// snapshot of a closed event it committed; once the prune deleted it, a
// batch reads it as none, as a store that never cached it would (and as
// a rebuild of the trimmed log folds it).
func TestPrunedSnapshotIsNotReadFromTheCache(t *testing.T) {
	s := open(t)
	foldLifecycles(t, s, lifecycles[:1], 20)
	b := s.NewBatch()
	if e, err := b.Event(ch, "ev-closed-old"); err != nil || e == nil {
		t.Fatalf("the closed event before the prune: %v %v", e, err)
	}
	b.Discard()
	if n, err := s.PruneFinal(t.Context(), 10); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v)", n, err)
	}
	if _, _, ok := s.cache.lookup(snapshotKey(ops.KindEvent, ch, "ev-closed-old")); !ok {
		t.Fatal("the test needs the snapshot in the cache")
	}
	b = s.NewBatch()
	defer b.Discard()
	if e, err := b.Event(ch, "ev-closed-old"); err != nil || e != nil {
		t.Fatalf("the pruned event read through the cache: %+v %v, want none", e, err)
	}
}

// TestIndexFinalBackfillsAStoreFoldedBeforeTheIndex: a store folded by
// the version before has no F keys; PruneFinal finds nothing there, and
// IndexFinal, once, deletes the final entities that are due and indexes
// the others, then marks the store (kept across a reopen) and reads
// nothing again. A new store is marked from the start.
func TestIndexFinalBackfillsAStoreFoldedBeforeTheIndex(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("", Options{InMemory: true, memFS: fs})
	if err != nil {
		t.Fatal(err)
	}
	foldLifecycles(t, s, lifecycles, 20)
	// What the version before folded: no F keys, no mark.
	b := s.db.NewBatch()
	_ = b.DeleteRange(finalPrefix, prefixEnd(finalPrefix), nil)
	if err := s.apply(b); err != nil {
		t.Fatal(err)
	}
	if s.FinalIndexed() {
		t.Fatal("a store opened without LayoutCurrent is marked indexed")
	}
	if n, err := s.PruneFinal(t.Context(), 10); err != nil || n != 0 {
		t.Fatalf("PruneFinal without the index: %d (%v)", n, err)
	}
	n, err := s.IndexFinal(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || !s.FinalIndexed() {
		t.Fatalf("IndexFinal pruned %d (marked %v), want the 2 due", n, s.FinalIndexed())
	}
	for _, id := range []string{"ev-closed-old", "th-deleted-old"} {
		if k := keysOf(t, s, id); len(k) != 0 {
			t.Errorf("%s: keys left after the backfill: %v", id, k)
		}
	}
	if got := strings.Join(finalKeys(t, s), " "); got != "th-deleted-new ev-closed-new" {
		t.Fatalf("final index after the backfill: %s", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open("", Options{InMemory: true, memFS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.FinalIndexed() {
		t.Fatal("the mark did not outlive a reopen")
	}
	s.hooks.beforePruneFinal = func() { t.Error("IndexFinal read the store again") }
	if n, err := s.IndexFinal(t.Context(), 100); err != nil || n != 0 {
		t.Fatalf("IndexFinal again: %d (%v)", n, err)
	}
	s.hooks.beforePruneFinal = nil
	// And the index it wrote serves the next prune.
	if n, err := s.PruneFinal(t.Context(), 100); err != nil || n != 2 {
		t.Fatalf("PruneFinal after the backfill: %d (%v), want the 2 indexed", n, err)
	}

	fresh := open(t)
	if cur, err := fresh.LayoutCurrent(); err != nil || !cur || !fresh.FinalIndexed() {
		t.Fatalf("a new store: current %v, indexed %v (%v)", cur, fresh.FinalIndexed(), err)
	}
}

// TestSnapshotFilterIsSizedForTheSnapshotsLeft: the snapshots a prune
// deletes stay in the filter until it is rebuilt, but a rebuild sizes the
// new filter for the snapshots left: a store whose final entities come
// and go does not grow its filter with every entity it ever held.
func TestSnapshotFilterIsSizedForTheSnapshotsLeft(t *testing.T) {
	s, err := Open("", Options{InMemory: true, SnapshotFilterKeys: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitSnapshotFilter(t, s, 0)
	var ls []lifecycle
	for i := range 40 {
		ls = append(ls, lifecycle{id: fmt.Sprintf("ev%02d", i), kind: ops.KindEvent, seq: uint64(2*i + 1), end: uint64(2*i + 2)})
	}
	foldLifecycles(t, s, ls, 100)
	if n, err := s.PruneFinal(t.Context(), 1000); err != nil || n != 40 {
		t.Fatalf("pruned %d (%v)", n, err)
	}
	f := s.snapFilter.Load()
	if f.keys.Load() != 40 || f.live() != 0 {
		t.Fatalf("filter keys %d, live %d after the prune: want 40 added, none left", f.keys.Load(), f.live())
	}
}

// TestAnEventStartedAnewKeepsItsLinkWhenThePruneCommitsFirst: the fold
// reads a CLOSED event and starts it anew (its create retried), linked to
// the same Thing, and the prune deletes the closed event's keys before the
// fold's batch commits. The event started anew still has every key a
// fresh one has, its link to the Thing among them; the batch used to skip
// the link (the same Thing as the snapshot it read), and lists by Thing
// never showed the event again.
func TestAnEventStartedAnewKeepsItsLinkWhenThePruneCommitsFirst(t *testing.T) {
	s := open(t)
	foldLifecycles(t, s, lifecycles[:1], 20)
	b := s.NewBatch()
	prev, err := b.Event(ch, "ev-closed-old")
	if err != nil || prev == nil || prev.ThingID == "" {
		t.Fatalf("the closed, linked event before the prune: %+v %v", prev, err)
	}
	again := &fold.Event{ChannelID: ch, EventID: "ev-closed-old", ThingID: prev.ThingID, State: ops.EventOngoing, Title: "again", Version: 1, LastSeq: 21}
	if err := b.PutEvent(prev, again); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneFinal(t.Context(), 10); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the closed event", n, err)
	}
	if err := b.Commit(21); err != nil {
		t.Fatal(err)
	}
	fresh := open(t)
	nb := fresh.NewBatch()
	if err := nb.PutEvent(nil, again); err != nil {
		t.Fatal(err)
	}
	if err := nb.Commit(21); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keysOf(t, s, "ev-closed-old"), " "), strings.Join(keysOf(t, fresh, "ev-closed-old"), " "); got != want {
		t.Fatalf("keys of the event started anew after the prune: %q, want a fresh one's %q", got, want)
	}
}

// TestPruneFinalStopsBetweenChunks: a prune (or the backfill) whose
// context ends stops after the chunk it is deciding, with what that chunk
// deleted committed: a projector stopping, or rebuilding, does not wait
// for a pass over millions of entities.
func TestPruneFinalStopsBetweenChunks(t *testing.T) {
	s := tenClosedEvents(t)
	defer func(n int) { pruneFinalChunk = n }(pruneFinalChunk)
	pruneFinalChunk = 3
	ctx, stop := context.WithCancel(t.Context())
	s.hooks.beforePruneFinal = stop // the projector stops while the first chunk is decided
	n, err := s.PruneFinal(ctx, 100)
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("a prune stopped during its first chunk: %d deleted, %v; want that chunk's 3 and context.Canceled", n, err)
	}
	s.hooks.beforePruneFinal = nil
	if n, err := s.PruneFinal(t.Context(), 100); err != nil || n != 7 {
		t.Fatalf("the next pass: %d deleted, %v; want the other 7", n, err)
	}
}

// tenClosedEvents is a store of ten events closed at sequences 2 to 20,
// folded to 30.
func tenClosedEvents(t *testing.T) *Store {
	t.Helper()
	s := open(t)
	var ls []lifecycle
	for i := range 10 {
		ls = append(ls, lifecycle{id: fmt.Sprintf("ev%02d", i), kind: ops.KindEvent, seq: uint64(2*i + 1), end: uint64(2*i + 2)})
	}
	foldLifecycles(t, s, ls, 30)
	return s
}

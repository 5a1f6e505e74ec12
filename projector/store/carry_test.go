package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/pushgo/gateway/schemas/ops"
)

// TestCarryLiveCopiesTheAgedLiveEntitiesInBoundedCommits: from a
// projection whose log now starts at 9, the carry-over copies the live
// entities whose last operation is below 9 (an ONGOING event linked to a
// Thing with a deadline, an active Thing with a type and relationships),
// with every key the fold writes for them, and nothing else: not the
// final ones, not a live one the log still has operations of (an
// archived Thing at 9), nor one changed past the log's last sequence. It
// commits a chunk at a time (2 here), and the new store holds what a fold
// of only those entities holds, byte for byte.
func TestCarryLiveCopiesTheAgedLiveEntitiesInBoundedCommits(t *testing.T) {
	defer func(n int) { carryChunk = n }(carryChunk)
	carryChunk = 2
	old := open(t)
	if _, err := old.LayoutCurrent(); err != nil {
		t.Fatal(err)
	}
	extra := []lifecycle{
		{id: "ev-ongoing-old2", kind: ops.KindEvent, seq: 5},
		{id: "th-active-old2", kind: ops.KindThing, seq: 6},
		{id: "th-active-past", kind: ops.KindThing, seq: 30},
	}
	foldLifecycles(t, old, append(append([]lifecycle(nil), lifecycles...), extra...), 30)
	var due []lifecycle
	for _, l := range append(append([]lifecycle(nil), lifecycles...), extra...) {
		if l.end == 0 && l.seq < 9 {
			due = append(due, l)
		}
	}
	want := open(t)
	foldLifecycles(t, want, due, 0)

	s := open(t)
	if _, err := s.LayoutCurrent(); err != nil {
		t.Fatal(err)
	}
	c, err := s.CarryLive(context.Background(), old, 0, 9, 20)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Carried{Events: 2, Things: 2, PastLog: 1}) {
		t.Errorf("carried %+v, want 2 events, 2 things, 1 past the log", c)
	}
	if got, w := entityKeyDump(t, s), entityKeyDump(t, want); !bytes.Equal(got, w) {
		t.Errorf("carried:\n%s\nwant what a fold of the aged live entities writes:\n%s", got, w)
	}
	if applied, err := s.Applied(); err != nil || applied != 0 {
		t.Errorf("applied after the carry-over: %d %v, want 0", applied, err)
	}
}

// TestCarryLiveRefusesAnOlderLayout: the snapshots of a projection of a
// layout before carryLayout are not of the encoding this version reads.
func TestCarryLiveRefusesAnOlderLayout(t *testing.T) {
	old := open(t)
	b := old.db.NewBatch()
	_ = b.Set(layoutKey, []byte{0, 0, 0, 0, 0, 0, 0, carryLayout - 1}, nil)
	if err := old.apply(b); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t).CarryLive(context.Background(), old, 0, 9, 20); err != ErrCarryLayout {
		t.Fatalf("carry from layout %d: %v, want ErrCarryLayout", carryLayout-1, err)
	}
}

// entityKeyDump is the store's keys and values but the m keys (the
// positions, the layout), one a line.
func entityKeyDump(t *testing.T, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Raw(func(k, v []byte) error {
		if k[0] != 'm' {
			fmt.Fprintf(&buf, "%q=%q\n", k, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCarryLiveFromCarriesOnlyWhatLeftTheLogSince: a pass after another
// (from above 0: the log's first sequence when the pass before began)
// carries only the live snapshots whose last operation is at or past
// from and below the log's first sequence now: those that left the log
// while the pass before ran, which it did not carry and the fold, starting
// at the log's first sequence now, does not fold.
func TestCarryLiveFromCarriesOnlyWhatLeftTheLogSince(t *testing.T) {
	old := open(t)
	if _, err := old.LayoutCurrent(); err != nil {
		t.Fatal(err)
	}
	extra := []lifecycle{
		{id: "ev-ongoing-old2", kind: ops.KindEvent, seq: 5},
		{id: "th-active-old2", kind: ops.KindThing, seq: 6},
	}
	foldLifecycles(t, old, append(append([]lifecycle(nil), lifecycles...), extra...), 30)
	s := open(t)
	if _, err := s.LayoutCurrent(); err != nil {
		t.Fatal(err)
	}
	c, err := s.CarryLive(context.Background(), old, 5, 9, 20)
	if err != nil {
		t.Fatal(err)
	}
	// ev-ongoing-old2 (5), th-active-old2 (6), th-active-old (8); not
	// ev-ongoing-old (3, the pass before's), th-archived-old (9, still in the log).
	if c != (Carried{Events: 1, Things: 2}) {
		t.Errorf("carried %+v, want 1 event and 2 things", c)
	}
}

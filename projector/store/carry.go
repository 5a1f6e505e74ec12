package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// The carry-over of a rebuild. A projection folded again from a log that
// has lost operations to its retention lacks every live entity whose
// operations have all aged out (a Thing not updated for a retention, an
// incident open as long), which the live projection keeps for good: the
// write path reads their snapshots. A rebuild that can still read the
// projection it replaces copies those snapshots into the new store
// (CarryLive) before it folds the log from its first sequence.
//
// A live snapshot whose LastSeq is below the log's first sequence is the
// entity's state after every operation below it (the fold writes an
// entity's snapshot with each of its operations), and no operation the
// log still holds names it: folding the log onto the carried snapshots
// makes the entity what a projection never rebuilt holds. Final entities
// (a CLOSED event, a deleted Thing) are not carried: the retention prunes
// them once their operations have left the log (PruneFinal), so a
// projection that pruned holds none of them.

// carryLayout is the oldest layout whose snapshots CarryLive reads: from
// layout 5 on they are in fold's binary form, which DecodeEvent and
// DecodeThing read; before, they were JSON. A change of that form must
// raise it (or teach CarryLive the older one), or a rebuild after an
// upgrade skips every snapshot as undecodable.
const carryLayout = 5

// carryChunk and carryChunkBytes bound one commit of the carry-over (and
// the decoded snapshots it holds): whichever comes first.
var (
	carryChunk      = 1024
	carryChunkBytes = 8 << 20
)

// ErrCarryLayout is CarryLive's answer for a store of a layout whose
// snapshots this version does not read (carryLayout).
var ErrCarryLayout = errors.New("the old projection's snapshots are of a layout this version does not read")

// CarrySourceError is a failure to read the store carried from: what was
// committed before it stays, and the rest of its live entities whose
// operations have all left the log are not carried.
type CarrySourceError struct{ Err error }

func (e *CarrySourceError) Error() string { return "read the old projection: " + e.Err.Error() }
func (e *CarrySourceError) Unwrap() error { return e.Err }

// Carried is what CarryLive did.
type Carried struct {
	// Events and Things are the live snapshots carried.
	Events, Things int
	// Undecodable counts the snapshots left behind because they do not
	// decode (corrupt, or of an encoding this version does not read).
	Undecodable int
	// PastLog counts the snapshots, live or final, whose LastSeq is past
	// last: changed by operations the log does not hold (a broker
	// restored from a backup older than the projection). Not carried;
	// those with operations the log still holds are folded from them,
	// the others are lost.
	PastLog int
}

// CarryLive copies into s, a new store that nothing folds yet, every
// live snapshot of old (an ONGOING event, an active or archived Thing)
// whose LastSeq is below first, the log's first sequence, with every
// index key the fold writes for a new entity (PutEvent and PutThing
// without prev), so that s holds them byte for byte as the projection
// they come from and as one never rebuilt. It commits every carryChunk
// snapshots or carryChunkBytes of them, so its memory is bounded however
// many there are; each commit sets s's applied sequence to 0 (the fold
// starts at the log's first sequence), and flushes them to the disk at
// the end. last is the log's last sequence (Carried.PastLog). With from
// above 0 it carries only the snapshots whose LastSeq is at least from
// (and counts no PastLog): a pass after another, for the entities whose
// last operation left the log while the one before ran.
//
// old must be a projection of the same log (the caller checks its
// LogCreated). A failure to read old is a *CarrySourceError, and what
// was committed stays; any other error is s's.
func (s *Store) CarryLive(ctx context.Context, old *Store, from, first, last uint64) (c Carried, err error) {
	v, err := old.get(layoutKey)
	if err != nil {
		return c, &CarrySourceError{fmt.Errorf("layout version: %w", err)}
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) < carryLayout || binary.BigEndian.Uint64(v) > Layout {
		return c, ErrCarryLayout
	}
	var src *CarrySourceError
	var srcErr error
	for _, kind := range [...]ops.Kind{ops.KindEvent, ops.KindThing} {
		// A read error in one kind's pass (a corrupt table) leaves the
		// other's to try: each reads with an iterator of its own.
		if err := s.carryKind(ctx, old, kind, from, first, last, &c); err != nil {
			if !errors.As(err, &src) {
				return c, err
			}
			if srcErr == nil {
				srcErr = err
			}
		}
	}
	err = srcErr
	if c.Events+c.Things > 0 {
		// The store's commits are not synced (the log is the source of
		// truth, but not of these): flushed, they outlive a crash of the
		// machine once old is deleted.
		// Pebble retries a failed flush without end, and Flush waits for
		// it: bounded by ctx (the projector stopping), the rebuild is
		// done again from the projection set aside.
		flushed, err := s.db.AsyncFlush()
		if err != nil {
			return c, fmt.Errorf("flush the carried snapshots: %w", err)
		}
		select {
		case <-flushed:
		case <-ctx.Done():
			return c, ctx.Err()
		}
	}
	return c, err
}

// carryKind is CarryLive's pass over the snapshots of one kind. It reads
// them with one iterator: old is a store no one writes, about to be
// deleted, whose obsolete tables it could keep on the disk only as long
// as the pass.
func (s *Store) carryKind(ctx context.Context, old *Store, kind ops.Kind, from, first, last uint64, c *Carried) error {
	prefix := snapshotKey(kind, "", "")[:2] // e 0 or t 0
	it, err := old.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return &CarrySourceError{err}
	}
	defer it.Close()
	b, n, size := s.NewBatch(), 0, 0
	commit := func() error {
		if n == 0 {
			return nil
		}
		if err := b.Commit(0); err != nil {
			return fmt.Errorf("carry the live snapshots over: %w", err)
		}
		b, n, size = s.NewBatch(), 0, 0
		return nil
	}
	for ok := it.First(); ok; ok = it.Next() {
		raw := it.Value()
		var live bool
		var seq uint64
		var snap any
		switch kind {
		case ops.KindEvent:
			e, err := fold.DecodeEvent(raw)
			if err != nil {
				c.Undecodable++
				continue
			}
			live, seq, snap = e.State == ops.EventOngoing, e.LastSeq, e
		default:
			t, err := fold.DecodeThing(raw)
			if err != nil {
				c.Undecodable++
				continue
			}
			live, seq, snap = t.State != ops.ThingDeleted, t.LastSeq, t
		}
		if seq > last && from == 0 {
			c.PastLog++
		}
		if !live || seq >= first || seq < from {
			continue
		}
		switch v := snap.(type) {
		case *fold.Event:
			_ = b.PutEvent(nil, v)
			c.Events++
		case *fold.Thing:
			_ = b.PutThing(nil, v)
			c.Things++
		}
		n, size = n+1, size+len(raw)
		if n >= carryChunk || size >= carryChunkBytes {
			if err := ctx.Err(); err != nil {
				b.Discard()
				return err
			}
			if err := commit(); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		// What was read before the failure passed Pebble's checksums and
		// decoded: it is kept.
		if cerr := commit(); cerr != nil {
			return cerr
		}
		return &CarrySourceError{err}
	}
	return commit()
}

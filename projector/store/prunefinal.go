package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// The retention's prune of final entities. A CLOSED event or a deleted
// Thing takes no operation but a create that starts it anew (ingest
// refuses the others), so once its last operation has left the log
// (its LastSeq below the log's first sequence) nothing of it is left to
// fold, and its snapshot and index keys would stay for ever: at
// integration volumes (every Dynatrace info event and every alert
// occurrence ends CLOSED) they filled the disk while the log stayed
// bounded, and a disk that refuses a write makes the projector rebuild
// (which, before the carry-over, lost every entity whose operations had
// all aged out: carry.go).
// PruneFinal deletes them through the F index (keys.go), which holds
// each final entity under the sequence that made it final, so a pass
// reads only what is due. Live entities (ONGOING events, active or
// archived Things) are never pruned: the write path reads their
// snapshots once their operations have all aged out.
//
// After the prune the entity is as one that never was: reads answer 404,
// a write naming it 404, and a create with its op_id (the entity's id is
// derived from it) is appended again and folded as a new entity (Fold
// folds a create onto a final snapshot as onto none, so a replica that
// has not pruned yet, or never will, folds it the same).

// pruneFinalChunk is how many final entities a prune (or IndexFinal)
// decides and deletes in one hold of the commit lock and one commit:
// milliseconds of point reads, and a batch of a few keys each.
var pruneFinalChunk = 1024

// finalOf reports whether snap (a *fold.Event or *fold.Thing, nil for
// none) is final, and the sequence that made it so: its LastSeq.
func finalOf(snap any) (uint64, bool) {
	switch v := snap.(type) {
	case *fold.Event:
		if v != nil && v.State == ops.EventClosed {
			return v.LastSeq, true
		}
	case *fold.Thing:
		if v != nil && v.State == ops.ThingDeleted {
			return v.LastSeq, true
		}
	}
	return 0, false
}

// eventFinalKey and thingFinalKey are the F key of a snapshot, nil when
// it is not final (or nil).
func eventFinalKey(e *fold.Event) []byte {
	if seq, ok := finalOf(e); ok {
		return finalKey(seq, ops.KindEvent, e.ChannelID, e.EventID)
	}
	return nil
}

func thingFinalKey(t *fold.Thing) []byte {
	if seq, ok := finalOf(t); ok {
		return finalKey(seq, ops.KindThing, t.ChannelID, t.ThingID)
	}
	return nil
}

// moveFinal keeps the F index in step with a snapshot's change, from the
// F key of prev to that of next (nil: not final).
func (b *Batch) moveFinal(prev, next []byte) {
	if bytes.Equal(prev, next) {
		return
	}
	if prev != nil {
		_ = b.del(prev)
	}
	if next != nil {
		_ = b.set(next, nil)
	}
}

// entityKeys are every key the fold writes for the snapshot snap: the
// snapshot's own and each of its index keys (PutEvent, PutThing).
func entityKeys(snap any) [][]byte {
	switch v := snap.(type) {
	case *fold.Event:
		keys := [][]byte{snapshotKey(ops.KindEvent, v.ChannelID, v.EventID), stateKey(ops.KindEvent, v.ChannelID, v.State, v.EventID)}
		if v.ThingID != "" {
			keys = append(keys, linkKey(v.ChannelID, v.ThingID, v.EventID))
		}
		if d, ok := deadlineOf(v); ok {
			keys = append(keys, deadlineKey(d, v.ChannelID, v.EventID))
		}
		if k := eventFinalKey(v); k != nil {
			keys = append(keys, k)
		}
		return keys
	case *fold.Thing:
		keys := [][]byte{snapshotKey(ops.KindThing, v.ChannelID, v.ThingID), stateKey(ops.KindThing, v.ChannelID, v.State, v.ThingID)}
		for _, k := range selectorIndexKeys(v) {
			keys = append(keys, []byte(k))
		}
		if k := thingFinalKey(v); k != nil {
			keys = append(keys, k)
		}
		return keys
	}
	return nil
}

// finalEntity is an entity a prune looks at: found by its F key (key), or
// by its state index key (key nil: IndexFinal).
type finalEntity struct {
	kind          ops.Kind
	channelID, id string
	key           []byte
}

// raiseFinalBelow records that a prune of the final entities below first
// begins: from now on a final snapshot older than first that the fold
// finds in a cache is read again from the store, which may have lost it.
func (s *Store) raiseFinalBelow(first uint64) {
	for {
		cur := s.finalBelow.Load()
		if first <= cur || s.finalBelow.CompareAndSwap(cur, first) {
			return
		}
	}
}

// PruneFinal deletes the final entities (CLOSED events, deleted Things)
// whose last operation is below first, the log's first sequence: each
// snapshot with every index key of it. It reads the F index below first
// only (an entity made final at a later sequence is not read), and
// decides and commits pruneFinalChunk entities at a time under the commit
// lock, each on its snapshot as the store holds it then: one that a
// create has started anew since (Fold) is kept, and the F key that named
// it goes. Its memory is a chunk's; each chunk is read with an iterator
// of its own (one held for the whole pass would keep every table the
// pass's own deletions make obsolete on the disk until it ends). It stops
// between chunks when ctx ends. It returns the number of entities deleted.
//
// A store folded before the F index lacks the keys of the entities that
// were final then: IndexFinal finds those.
func (s *Store) PruneFinal(ctx context.Context, first uint64) (int, error) {
	s.raiseFinalBelow(first)
	return s.pruneChunks(ctx, first, finalPrefix, func(from []byte) ([]finalEntity, []byte, error) {
		return s.finalChunk(from, finalSeqPrefix(first))
	})
}

// pruneChunks decides (pruneFinalEntities) the chunks read returns, from
// from on, until none is left or ctx ends between two; read returns a
// chunk and where the next starts (nil: none).
func (s *Store) pruneChunks(ctx context.Context, first uint64, from []byte, read func(from []byte) ([]finalEntity, []byte, error)) (int, error) {
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		chunk, next, err := read(from)
		if err != nil {
			return n, err
		}
		m, err := s.pruneFinalEntities(chunk, first)
		if n += m; err != nil || next == nil {
			return n, err
		}
		from = next
	}
}

// finalChunk reads up to pruneFinalChunk F keys from from (included) to
// upper. next is the key after the chunk's last, nil when none is left.
func (s *Store) finalChunk(from, upper []byte) (chunk []finalEntity, next []byte, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if len(chunk) == pruneFinalChunk {
			next = slices.Clone(it.Key())
			break
		}
		k := slices.Clone(it.Key())
		_, kind, channelID, id, valid := parseFinalKey(k)
		if !valid {
			_ = it.Close()
			return nil, nil, fmt.Errorf("%w: final index key %q", ErrCorrupt, k)
		}
		chunk = append(chunk, finalEntity{kind: kind, channelID: channelID, id: id, key: k})
	}
	return chunk, next, it.Close()
}

// FinalIndexed reports whether every final entity of the store has its F
// key: a store folded before the index has not until IndexFinal ran.
func (s *Store) FinalIndexed() bool { return s.finalIndexed.Load() }

// IndexFinal gives the final entities of a store folded before the F
// index their keys, once: it pages through the state indexes' CLOSED
// events and deleted Things, channel by channel (no live entity's key and
// no snapshot of a live entity is read), and for each, in chunks decided
// under the commit lock as PruneFinal's, deletes the entity when its last
// operation is below first and writes its F key otherwise. Its cost is one
// point read of each final entity's snapshot, once; its memory a chunk's.
// Once every chunk has committed it marks the store (m 0 final), and it
// does nothing again; a pass cut short (an error, a stop) is done again
// from the start by the next, which finds what the last one deleted gone
// and what it indexed indexed. It stops between chunks when ctx ends. It
// returns the number of entities deleted.
func (s *Store) IndexFinal(ctx context.Context, first uint64) (int, error) {
	if s.finalIndexed.Load() {
		return 0, nil
	}
	s.raiseFinalBelow(first)
	n := 0
	for _, x := range [...]struct {
		kind   ops.Kind
		prefix string
		state  string
	}{{ops.KindEvent, "E", ops.EventClosed}, {ops.KindThing, "T", ops.ThingDeleted}} {
		m, err := s.indexFinal(ctx, x.kind, x.prefix, x.state, first)
		if n += m; err != nil {
			return n, err
		}
	}
	b := s.db.NewBatch()
	defer s.closeBatch(b)
	_ = b.Set(finalIndexedKey, nil, nil)
	if err := s.apply(b); err != nil {
		return n, err
	}
	s.finalIndexed.Store(true)
	return n, nil
}

// indexFinal is IndexFinal's pass over one state index (prefix, E or T):
// the entities of kind in the final state, a chunk at a time, each read
// with an iterator of its own (as PruneFinal's).
func (s *Store) indexFinal(ctx context.Context, kind ops.Kind, prefix, state string, first uint64) (int, error) {
	return s.pruneChunks(ctx, first, key(prefix, ""), func(from []byte) ([]finalEntity, []byte, error) {
		return s.stateChunk(kind, prefix, state, from)
	})
}

// stateChunk reads up to pruneFinalChunk entities of kind in state from
// the state index prefix, from key from (included), channel by channel
// (seeking past every other state's keys). next is where the next chunk
// starts, nil when none is left.
func (s *Store) stateChunk(kind ops.Kind, prefix, state string, from []byte) (chunk []finalEntity, next []byte, err error) {
	all := key(prefix, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: prefixEnd(all)})
	if err != nil {
		return nil, nil, err
	}
	for ok := it.First(); ok; {
		rest := it.Key()[len(all):]
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			ok = it.Next()
			continue
		}
		channelID := string(rest[:i])
		final := stateKey(kind, channelID, state, "")
		// A seek below the iterator's lower bound (a chunk resumed inside
		// this channel's final keys) lands on the bound.
		for ok = it.SeekGE(final); ok && bytes.HasPrefix(it.Key(), final); ok = it.Next() {
			if len(chunk) == pruneFinalChunk {
				return chunk, slices.Clone(it.Key()), it.Close()
			}
			chunk = append(chunk, finalEntity{kind: kind, channelID: channelID, id: lastPart(it.Key())})
		}
		ok = it.SeekGE(prefixEnd(key(prefix, channelID, ""))) // the next channel
	}
	return chunk, nil, it.Close()
}

// pruneFinalEntities decides each entity of chunk on its snapshot as the
// store holds it, under the commit lock, and commits: a final entity made
// final below first is deleted with every key of it; another final one
// keeps (or gets) its F key; the F key the entity was found by goes when
// it is no longer the entity's. It returns the number deleted.
func (s *Store) pruneFinalEntities(chunk []finalEntity, first uint64) (int, error) {
	if len(chunk) == 0 {
		return 0, nil
	}
	// Read once before the commit lock: the snapshots of final entities
	// are cold, and the reads under the lock, which the fold's commits
	// wait on, then find their blocks cached.
	for _, e := range chunk {
		_, _ = s.get(snapshotKey(e.kind, e.channelID, e.id))
	}
	if s.hooks.beforePruneFinal != nil {
		s.hooks.beforePruneFinal()
	}
	b := s.db.NewBatch()
	defer s.closeBatch(b)
	n := 0
	err := s.applyAfter(b, func() error {
		for _, e := range chunk {
			raw, err := s.get(snapshotKey(e.kind, e.channelID, e.id))
			if err != nil {
				return err
			}
			var snap any
			if raw != nil {
				if snap, err = decodeSnapshot(e.kind, raw); err != nil {
					return fmt.Errorf("%w: %s snapshot %s/%s: %v", ErrCorrupt, e.kind, e.channelID, e.id, err)
				}
			}
			seq, final := finalOf(snap)
			own := []byte(nil)
			if final {
				own = finalKey(seq, e.kind, e.channelID, e.id)
			}
			if e.key != nil && !bytes.Equal(e.key, own) {
				_ = b.Delete(e.key, nil) // no longer the entity's (a create started it anew)
			}
			switch {
			case !final:
			case seq < first:
				for _, k := range entityKeys(snap) {
					_ = b.Delete(k, nil)
				}
				n++
			case e.key == nil:
				_ = b.Set(own, nil, nil)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.snapshotsGone(n)
	return n, nil
}

// markFinalIndexed marks a new store's F index complete (LayoutCurrent):
// every entity it will hold is indexed by the fold.
func markFinalIndexed(b *pebble.Batch) { _ = b.Set(finalIndexedKey, nil, nil) }

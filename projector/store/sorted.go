package store

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// sortedWrites holds the writes of a batch until it is committed (Commit,
// or its group's CommitGroup), to hand them to Pebble in key order: Pebble inserts a batch
// into its memtable (a skiplist) one key after the other, remembering
// where the last one went, so keys in order cost a few comparisons each
// instead of a search of the whole memtable (most of a commit's time), and
// a key written twice in the batch is inserted once. In the partitioned
// fold each partition sorts its part, in parallel (Batch.Seal), and the
// committing goroutine writes every part's sorted writes into the group's
// one Pebble batch (CommitGroup): each byte is copied into a batch once.
type sortedWrites struct {
	arena []byte // the keys and values, one after the other
	ents  []sortedWrite
}

type sortedWrite struct {
	key, val span
	del      bool
	ord      uint32 // position in the batch: of two writes of one key, the later wins
}

type span struct{ off, n uint32 }

func (w *sortedWrites) add(k, v []byte, del bool) {
	e := sortedWrite{key: span{uint32(len(w.arena)), uint32(len(k))}, del: del, ord: uint32(len(w.ents))}
	w.arena = append(w.arena, k...)
	e.val = span{uint32(len(w.arena)), uint32(len(v))}
	w.arena = append(w.arena, v...)
	w.ents = append(w.ents, e)
}

// size is what the writes take in a Pebble batch, at most.
func (w *sortedWrites) size() int {
	return 12 + len(w.arena) + len(w.ents)*(1+2*binary.MaxVarintLen32)
}

func (w *sortedWrites) bytes(s span) []byte { return w.arena[s.off : s.off+s.n : s.off+s.n] }

// writeTo sorts the writes by key and writes them to b, each key once (its
// last write), and empties w.
func (w *sortedWrites) writeTo(b *pebble.Batch) {
	w.sort()
	w.writeSorted(b)
	w.reset()
}

// sort orders the writes by key and keeps each key's last write only.
func (w *sortedWrites) sort() {
	slices.SortFunc(w.ents, func(x, y sortedWrite) int {
		if c := bytes.Compare(w.bytes(x.key), w.bytes(y.key)); c != 0 {
			return c
		}
		return int(x.ord) - int(y.ord)
	})
	kept := w.ents[:0] // in place: the i-th kept entry is written at or before i
	for i, e := range w.ents {
		if i+1 < len(w.ents) && bytes.Equal(w.bytes(e.key), w.bytes(w.ents[i+1].key)) {
			continue // written again later in the batch
		}
		kept = append(kept, e)
	}
	w.ents = kept
}

// writeSorted writes the writes to b in their order (sort's).
func (w *sortedWrites) writeSorted(b *pebble.Batch) {
	for _, e := range w.ents {
		if e.del {
			_ = b.Delete(w.bytes(e.key), nil)
		} else {
			_ = b.Set(w.bytes(e.key), w.bytes(e.val), nil)
		}
	}
}

// reset empties w, keeping its space.
func (w *sortedWrites) reset() { w.arena, w.ents = w.arena[:0], w.ents[:0] }

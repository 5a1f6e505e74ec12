// Package store keeps the projections in Pebble: entity snapshots, the
// indexes the read API pages through, the channel history, and the last
// applied stream sequence, always written in the same batch as the state
// it describes.
//
// Durability of the store does not matter for correctness: batches commit
// without fsync, and after a crash the projector resumes from the last
// applied sequence that made it to disk; the log is the source of truth.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// Options configure a Store.
type Options struct {
	// InMemory keeps the store in memory (tests, and replicas that accept
	// a full rebuild on every start).
	InMemory bool
	// Logger receives Pebble's messages. Default: discard.
	Logger *slog.Logger
	// CachedSnapshots bounds the decoded-snapshot cache the fold reads
	// through. Default 100,000.
	CachedSnapshots int
}

// Store is the Pebble-backed projection store. The caller MUST call Close.
type Store struct {
	db   *pebble.DB
	opts Options

	mu    sync.Mutex // guards cache
	cache map[string]any
}

// Open opens (or creates) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.CachedSnapshots <= 0 {
		opts.CachedSnapshots = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	po := &pebble.Options{
		Logger: pebbleLogger{opts.Logger},
		// Large memtables absorb the overwrites of hot snapshots before they
		// reach sstables, which is most of what compaction would rewrite.
		MemTableSize: 64 << 20,
	}
	if opts.InMemory {
		po.FS = vfs.NewMem()
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	return &Store{db: db, opts: opts, cache: map[string]any{}}, nil
}

// Close flushes the memtables, so a restart does not replay the WAL, and
// closes the store.
func (s *Store) Close() error {
	ferr := s.db.Flush()
	if err := s.db.Close(); err != nil {
		return err
	}
	return ferr
}

// Layout is the version of the key layout. A store folded under another
// layout lacks indexes this code reads (or has ones it no longer
// maintains) and must be folded again. Bump it with every change to keys.go.
// 3: the op_id index of /send_status (O keys). 4: delivery summaries in
// the counts (x), outcome keys (d) by sequence, the send-status index by
// sequence (s keys) that pruning reads.
const Layout = 4

var layoutKey = []byte("m\x00layout")

// LayoutCurrent reports whether the store was folded under Layout: true
// for a new, empty store (which it then marks), false for one folded by an
// older version.
func (s *Store) LayoutCurrent() (bool, error) {
	v, err := s.get(layoutKey)
	if err != nil {
		return false, err
	}
	if v != nil {
		return len(v) == 8 && binary.BigEndian.Uint64(v) == Layout, nil
	}
	applied, err := s.Applied()
	if err != nil || applied > 0 {
		return false, err
	}
	return true, s.db.Set(layoutKey, binary.BigEndian.AppendUint64(nil, Layout), pebble.Sync)
}

// Applied returns the last applied PUSHGO_OPS sequence (0 for a new store).
func (s *Store) Applied() (uint64, error) { return s.cursor(appliedKey) }

// ReceiptsApplied returns the last applied PUSHGO_RECEIPTS sequence.
func (s *Store) ReceiptsApplied() (uint64, error) { return s.cursor(receiptsAppliedKey) }

func (s *Store) cursor(k []byte) (uint64, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("applied sequence: %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// get returns a copy of the value at k, or nil.
func (s *Store) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// Batch accumulates the effects of folded operations. Reads through a
// batch see its own writes. Commit writes them, with the applied sequence,
// atomically. A Batch is used by one goroutine.
type Batch struct {
	s       *Store
	b       *pebble.Batch
	overlay map[string]any // snapshot key → *fold.Event | *fold.Thing written in this batch
	n       int

	receipts map[string]sendCounts // counts written in this batch (receipts fold)
	outcomes map[string]struct{}   // outcome keys written in this batch
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, b: s.db.NewBatch(), overlay: map[string]any{}, receipts: map[string]sendCounts{}, outcomes: map[string]struct{}{}}
}

// Count adds one folded record (a receipt) to Len.
func (b *Batch) Count() { b.n++ }

// Len is the number of operations added.
func (b *Batch) Len() int { return b.n }

func (b *Batch) snapshot(k []byte, decode func([]byte) (any, error)) (any, error) {
	if v, ok := b.overlay[string(k)]; ok {
		return v, nil
	}
	b.s.mu.Lock()
	v, ok := b.s.cache[string(k)]
	b.s.mu.Unlock()
	if ok {
		return v, nil
	}
	raw, err := b.s.get(k)
	if err != nil || raw == nil {
		return nil, err
	}
	return decode(raw)
}

// Event returns the current snapshot of an event, or nil.
func (b *Batch) Event(channelID, id string) (*fold.Event, error) {
	v, err := b.snapshot(snapshotKey(ops.KindEvent, channelID, id), func(raw []byte) (any, error) { return fold.DecodeEvent(raw) })
	if v == nil || err != nil {
		return nil, err
	}
	return v.(*fold.Event), nil
}

// Thing returns the current snapshot of a thing, or nil.
func (b *Batch) Thing(channelID, id string) (*fold.Thing, error) {
	v, err := b.snapshot(snapshotKey(ops.KindThing, channelID, id), func(raw []byte) (any, error) { return fold.DecodeThing(raw) })
	if v == nil || err != nil {
		return nil, err
	}
	return v.(*fold.Thing), nil
}

// PutEvent records next and moves its index entries from prev (nil if
// new). The snapshot is encoded once per batch, at Commit, however many
// operations of the batch touch it.
func (b *Batch) PutEvent(prev, next *fold.Event) error {
	k := snapshotKey(ops.KindEvent, next.ChannelID, next.EventID)
	if prev != nil && prev.State != next.State {
		_ = b.b.Delete(stateKey(ops.KindEvent, prev.ChannelID, prev.State, prev.EventID), nil)
	}
	if prev == nil || prev.State != next.State {
		_ = b.b.Set(stateKey(ops.KindEvent, next.ChannelID, next.State, next.EventID), nil, nil)
	}
	if prev != nil && prev.ThingID != next.ThingID && prev.ThingID != "" {
		_ = b.b.Delete(linkKey(prev.ChannelID, prev.ThingID, prev.EventID), nil)
	}
	if next.ThingID != "" && (prev == nil || prev.ThingID != next.ThingID) {
		_ = b.b.Set(linkKey(next.ChannelID, next.ThingID, next.EventID), nil, nil)
	}
	b.moveDeadline(prev, next)
	b.overlay[string(k)] = next
	return nil
}

// PutThing records next and moves its index entries from prev (nil if
// new): the state index, and the entitySelector indexes (type, name,
// relationships) that a deleted thing leaves.
func (b *Batch) PutThing(prev, next *fold.Thing) error {
	k := snapshotKey(ops.KindThing, next.ChannelID, next.ThingID)
	if prev != nil && prev.State != next.State {
		_ = b.b.Delete(stateKey(ops.KindThing, prev.ChannelID, prev.State, prev.ThingID), nil)
	}
	if prev == nil || prev.State != next.State {
		_ = b.b.Set(stateKey(ops.KindThing, next.ChannelID, next.State, next.ThingID), nil, nil)
	}
	b.putSelectorIndex(prev, next)
	b.overlay[string(k)] = next
	return nil
}

// PutHistory appends an operation to its channel's history.
func (b *Batch) PutHistory(channelID string, kind ops.Kind, seq uint64, item []byte) {
	v := make([]byte, 0, len(item)+1)
	v = append(v, kindByte(kind))
	v = append(v, item...)
	_ = b.b.Set(historyKey(channelID, seq), v, nil)
	_ = b.b.Set(globalKey(seq), []byte(channelID), nil)
	b.n++
}

// Commit writes the batch and the applied sequence atomically, without
// fsync (the log is the source of truth), and publishes the batch's
// snapshots to the fold cache.
func (b *Batch) Commit(applied uint64) error { return b.commit(appliedKey, applied) }

// CommitReceipts commits a batch of folded receipts with their applied
// PUSHGO_RECEIPTS sequence.
func (b *Batch) CommitReceipts(applied uint64) error { return b.commit(receiptsAppliedKey, applied) }

func (b *Batch) commit(cursor []byte, applied uint64) error {
	for k, snap := range b.overlay {
		raw, err := fold.Encode(snap)
		if err != nil {
			return fmt.Errorf("encode snapshot %q: %w", k, err)
		}
		_ = b.b.Set([]byte(k), raw, nil)
	}
	_ = b.b.Set(cursor, binary.BigEndian.AppendUint64(nil, applied), nil)
	if err := b.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit batch at %d: %w", applied, err)
	}
	_ = b.b.Close()
	s := b.s
	s.mu.Lock()
	for k, v := range b.overlay {
		if len(s.cache) >= s.opts.CachedSnapshots {
			for old := range s.cache { // random eviction: map order is random
				delete(s.cache, old)
				break
			}
		}
		s.cache[k] = v
	}
	s.mu.Unlock()
	b.overlay = nil
	return nil
}

// Discard drops an uncommitted batch.
func (b *Batch) Discard() { _ = b.b.Close() }

// PruneHistory deletes the history of every operation with a sequence
// below first (the stream's first retained sequence), so history ages out
// with the log while snapshots remain. It returns the number of items
// removed.
func (s *Store) PruneHistory(first uint64) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: globalKey(0), UpperBound: globalKey(first)})
	if err != nil {
		return 0, err
	}
	b := s.db.NewBatch()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[2:])
		_ = b.Delete(historyKey(string(it.Value()), seq), nil)
		_ = b.Delete(it.Key(), nil)
		n++
	}
	if err := it.Close(); err != nil {
		b.Close()
		return 0, err
	}
	if n == 0 {
		return 0, b.Close()
	}
	return n, b.Commit(pebble.NoSync)
}

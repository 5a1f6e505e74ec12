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
	"os"
	"sync"
	"sync/atomic"

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
	// OnCorruption, when set, is called when Pebble finds a corrupt file
	// (a checksum that does not match), from whichever goroutine read it
	// (a read, the fold, a background compaction): it must not block. The
	// read itself fails with an error IsCorruption recognises.
	OnCorruption func(error)
}

// ErrCorrupt marks a stored value this code cannot read back (a snapshot
// or a sequence that does not decode): the projection is corrupt.
var ErrCorrupt = errors.New("projection store is corrupt")

// IsCorruption reports whether err says the store is corrupt: a Pebble
// checksum mismatch or a stored value that does not decode. The
// projection is disposable: such a store is thrown away and folded again
// from the log.
func IsCorruption(err error) bool {
	return errors.Is(err, ErrCorrupt) || pebble.IsCorruptionError(err)
}

// FatalError is what Pebble's fatal reports (Fatalf) become: a write the
// disk refused (the commit pipeline, the MANIFEST), after which the store
// cannot be used, nor even closed. The store panics with it, as Pebble's
// contract requires (Fatalf does not return), in the goroutine that made
// the call; the fold recovers it and reports the store unusable.
type FatalError struct{ Msg string }

func (e *FatalError) Error() string { return "projection store failed: " + e.Msg }

// Store is the Pebble-backed projection store. The caller MUST call Close.
type Store struct {
	db   *pebble.DB
	opts Options
	// lock is the directory lock, taken before Pebble opens the store, so
	// that an abandoned store (fatal) can release it for its replacement.
	lock *pebble.Lock
	// fatal is set when Pebble reported a fatal failure: the store is
	// abandoned (Close cannot close it).
	fatal atomic.Pointer[FatalError]

	mu    sync.Mutex // guards cache
	cache map[string]any
}

// Open opens (or creates) the store in dir. A corrupt store may open
// (Pebble reads most files lazily) or fail with an error IsCorruption
// recognises; a fatal failure while opening (a disk that refuses the
// MANIFEST) is returned as a *FatalError, never a panic.
func Open(dir string, opts Options) (_ *Store, err error) {
	if opts.CachedSnapshots <= 0 {
		opts.CachedSnapshots = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: opts, cache: map[string]any{}}
	po := &pebble.Options{
		Logger: pebbleLogger{l: opts.Logger, fatal: &s.fatal},
		// Large memtables absorb the overwrites of hot snapshots before they
		// reach sstables, which is most of what compaction would rewrite.
		MemTableSize: 64 << 20,
		// Pebble's default for a corrupt file is a fatal report (a panic
		// that takes the process down): here it is an error of the read
		// that found it, and the projector rebuilds the projection.
		EventListener: &pebble.EventListener{DataCorruption: s.corrupt},
	}
	if opts.InMemory {
		po.FS = vfs.NewMem()
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open pebble %s: %w", dir, err)
		}
		if s.lock, err = pebble.LockDirectory(dir, vfs.Default); err != nil {
			return nil, fmt.Errorf("open pebble %s: %w", dir, err)
		}
		po.Lock = s.lock
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*FatalError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("open pebble %s: %w", dir, f)
		}
		if err != nil && s.lock != nil {
			_ = s.lock.Close()
		}
	}()
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	s.db = db
	return s, nil
}

// corrupt is Pebble's report of a corrupt file.
func (s *Store) corrupt(info pebble.DataCorruptionInfo) {
	err := fmt.Errorf("%w: %s", ErrCorrupt, info.String())
	s.opts.Logger.Error("projection store: corrupt file", "path", info.Path, "err", info.Details)
	if s.opts.OnCorruption != nil {
		s.opts.OnCorruption(err)
	}
}

// Failed is the fatal failure that made the store unusable, or nil.
func (s *Store) Failed() error {
	if f := s.fatal.Load(); f != nil {
		return f
	}
	return nil
}

// Close flushes the memtables, so a restart does not replay the WAL, and
// closes the store. A store that failed fatally is abandoned instead:
// Pebble cannot close it (it waits forever for a commit that failed), and
// the process is about to rebuild or end anyway.
func (s *Store) Close() error {
	if err := s.abandon(); err != nil {
		return err
	}
	ferr := s.db.Flush()
	if err := s.close(); err != nil {
		return err
	}
	return ferr
}

// Discard closes a store that is about to be deleted: without flushing
// what it holds.
func (s *Store) Discard() error {
	if err := s.abandon(); err != nil {
		return err
	}
	return s.close()
}

func (s *Store) close() error {
	err := s.db.Close()
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

// abandon gives up a store that failed fatally, releasing its directory
// lock (Pebble's own reference too: it will never close), and returns its
// failure; nil for a store that did not fail.
func (s *Store) abandon() error {
	err := s.Failed()
	if err != nil && s.lock != nil {
		_ = s.lock.Close()
		_ = s.lock.Close()
		s.lock = nil
	}
	return err
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
	b := s.db.NewBatch()
	_ = b.Set(layoutKey, binary.BigEndian.AppendUint64(nil, Layout), nil)
	return true, s.apply(b)
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
		return 0, fmt.Errorf("%w: applied sequence of %d bytes", ErrCorrupt, len(v))
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
	v, err = decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot %q: %v", ErrCorrupt, k, err)
	}
	return v, nil
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
	if err := b.s.Failed(); err != nil {
		return err // Pebble would wait forever for a failed commit pipeline
	}
	for k, snap := range b.overlay {
		raw, err := fold.Encode(snap)
		if err != nil {
			return fmt.Errorf("encode snapshot %q: %w", k, err)
		}
		_ = b.b.Set([]byte(k), raw, nil)
	}
	_ = b.b.Set(cursor, binary.BigEndian.AppendUint64(nil, applied), nil)
	if err := b.s.apply(b.b); err != nil {
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

// apply commits pb without fsync. Pebble panics when the WAL refuses the
// write (and leaves its commit pipeline unusable): that panic, like a
// fatal report, marks the store failed and is returned as a *FatalError.
func (s *Store) apply(pb *pebble.Batch) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		f, ok := r.(*FatalError)
		if !ok {
			f = &FatalError{Msg: fmt.Sprint(r)}
			s.opts.Logger.Error("projection store: fatal failure", "err", f.Msg)
		}
		s.fatal.CompareAndSwap(nil, f)
		err = f
	}()
	return pb.Commit(pebble.NoSync)
}

// Discard drops an uncommitted batch.
func (b *Batch) Discard() {
	if b.s.Failed() != nil {
		return // Pebble may still hold it, committing
	}
	_ = b.b.Close()
}

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
	return n, s.apply(b)
}

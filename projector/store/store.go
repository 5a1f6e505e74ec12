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
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// Options configure a Store.
type Options struct {
	// InMemory keeps the store in memory (tests, and replicas that accept
	// a full rebuild on every start).
	InMemory bool
	// ReadOnly opens the store to read only (a rebuild's carry-over reads
	// the projection it replaces): Pebble replays its log in memory and
	// writes nothing, no flush, no compaction, on a disk that may be full;
	// every write of the store fails.
	ReadOnly bool
	// Logger receives Pebble's messages. Default: discard.
	Logger *slog.Logger
	// CachedSnapshots bounds the decoded-snapshot cache that NewBatch's
	// batches read through. Default 100,000.
	CachedSnapshots int
	// CachedSnapshotBytes bounds the same cache by an estimate of the
	// snapshots' memory (snapshotBytes). Default
	// DefaultCachedSnapshotBytes.
	CachedSnapshotBytes int64
	// BlockCacheBytes sizes Pebble's block cache, shared by every read
	// and the fold's lookups. Default DefaultBlockCacheBytes.
	BlockCacheBytes int64
	// OnCorruption, when set, is called when Pebble finds a corrupt file
	// (a checksum that does not match), from whichever goroutine read it
	// (a read, the fold, a background compaction): it must not block. The
	// read itself fails with an error IsCorruption recognises.
	OnCorruption func(error)
	// SnapshotFilterKeys sizes the snapshot filter (snapfilter.go) for
	// this many entities at first, 10 bits each; it grows with the store.
	// Default DefaultSnapshotFilterKeys; negative: no filter, every
	// lookup of a new entity asks Pebble.
	SnapshotFilterKeys int
	// SelectionCacheBytes bounds the answers Select keeps
	// (selectcache.go), across channels, by an estimate of their bytes.
	// Default DefaultSelectionCacheBytes; negative: none kept.
	SelectionCacheBytes int
	// MinFreeBytes is the free space Open requires on the store's disk;
	// with less it fails with ErrDiskFull at once. Default: what Pebble
	// takes to open (a write-ahead log, 110% of a memtable) and 16 MiB
	// for a flush, 86 MiB; negative: no check.
	MinFreeBytes int64

	// memFS, for tests, is the file system of an InMemory store: one
	// that outlives the store (reopened), or that fails on purpose.
	memFS vfs.FS
	// memTableSize, for tests, replaces the memtables' 64 MiB (a write
	// stall within a few MiB of writes).
	memTableSize int
}

// DefaultCachedSnapshotBytes is the default Options.CachedSnapshotBytes
// and the fold's (shared among its partitions), 512 MiB: 100,000 snapshots
// of a few attrs take some 150 MiB, but a Thing's attrs may reach
// fold.MaxAttrsBytes (256 KiB, up to 1.7 MB decoded), and 100,000 of those
// held by count alone took 155 GiB.
const DefaultCachedSnapshotBytes = 512 << 20

// DefaultSelectionCacheBytes is the default Options.SelectionCacheBytes,
// 32 MiB: about 90,000 answers of one Thing each (a problem reported
// about one entity), or 790 of 1,000 Things.
const DefaultSelectionCacheBytes = 32 << 20

// groupBatchRetained bounds the space of CommitGroup's batch that the store
// keeps between groups: a catch-up's groups of 10,000 operations take about
// 10 MB, allocated afresh for each (about 100 MB a second at a rebuild's
// rate, for the collector to reclaim) before the batch was kept. The batch
// of a group over half of it is let go after its commit.
const groupBatchRetained = 32 << 20

// DefaultBlockCacheBytes is the default Options.BlockCacheBytes: 256 MiB.
// Pebble's own default (8 MiB) held too little of a store of 100,000
// things for its index blocks to stay cached: a selection or a
// /thing/get read its sstable blocks from the page cache again, with
// their checksums and decompression, at each request.
const DefaultBlockCacheBytes = 256 << 20

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
	// prunedBelow is the first sequence of the log as of the last prune
	// (prunedKey): a receipt of an operation before it records nothing.
	prunedBelow atomic.Uint64
	// finalBelow is the first sequence of the last prune of final
	// entities (PruneFinal, IndexFinal), raised before it deletes: a
	// committed final snapshot older than it that a batch finds in its
	// cache may be gone from the store, and is read again (Batch.snapshot).
	finalBelow atomic.Uint64
	// finalIndexed is set when every final entity has its F key (m 0
	// final): IndexFinal has nothing to do.
	finalIndexed atomic.Bool
	// applyMu makes the store's commits one at a time (apply). Pebble
	// panics on a write the WAL refuses while holding its commit
	// pipeline's lock, which nothing releases: a second commit already
	// inside Pebble would wait for ever, and with it the fold that made it
	// (the projector waits for every fold before it rebuilds the store).
	// Behind applyMu, a commit after the failure sees it and returns it.
	applyMu sync.Mutex

	// hooks run, when set (by tests only, before the store is used), where
	// a race with a commit turns.
	hooks struct {
		beforePruneCommit func() // after Prune built its batch, before its commits
		afterPruneRecords func() // after Prune's op_id records, before its history
		afterDueIndex     func() // after DueDeadlines opened its index's iterator
		beforePruneFinal  func() // before each chunk of PruneFinal or IndexFinal is decided
	}

	// cache is the decoded-snapshot cache of NewBatch's batches.
	cache *Cache
	// groupBatch is CommitGroup's Pebble batch, reset and kept from one
	// group to the next (nil while a commit holds it): a group's batch is
	// megabytes, which Pebble would not keep for reuse (groupBatchRetained).
	// It is never closed: a closed batch goes back to Pebble's pool with
	// its space and its retention option, for any other batch to take.
	groupBatch atomic.Pointer[pebble.Batch]
	// selections caches Select's answers (selectcache.go).
	selections *selectionCache

	// closeMu orders Background's reads of Pebble's metrics before the
	// close that would free what they read; closed is set under it.
	closeMu sync.RWMutex
	closed  bool

	// The snapshot filter (snapfilter.go). snapFilter is the one in use
	// (nil until the first is built); building, the one being built,
	// under filterMu, which an apply holds for reading and a build's scan
	// takes to begin. filterCtx ends at Close, which waits for filterWG.
	filterSeed     maphash.Seed
	snapFilter     atomic.Pointer[snapFilter]
	filterMu       sync.RWMutex
	building       *snapFilter
	filterBuilding atomic.Bool
	filterCtx      context.Context
	filterStop     context.CancelFunc
	filterStartMu  sync.Mutex // orders a build's start (filterWG.Add) before Close's wait
	filterWG       sync.WaitGroup
	filterRetryAt  atomic.Int64 // unix ns: no build starts before it (after a failed one)

	// stalls counts Pebble's write stalls and slow disk operations
	// (stalls.go).
	stalls stallStats
	// refused is the disk's refusal of a flush or compaction
	// (diskfull.go).
	refused diskRefusal
	// dir and memTable are the store's directory ("" in memory) and its
	// memtables' size: the room a flush takes (roomToFlush).
	dir      string
	memTable uint64
}

// Open opens (or creates) the store in dir. A corrupt store may open
// (Pebble reads most files lazily) or fail with an error IsCorruption
// recognises; a fatal failure while opening (a disk that refuses the
// MANIFEST) is returned as a *FatalError, never a panic.
func Open(dir string, opts Options) (_ *Store, err error) {
	if opts.CachedSnapshots <= 0 {
		opts.CachedSnapshots = 100_000
	}
	if opts.CachedSnapshotBytes <= 0 {
		opts.CachedSnapshotBytes = DefaultCachedSnapshotBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BlockCacheBytes <= 0 {
		opts.BlockCacheBytes = DefaultBlockCacheBytes
	}
	if opts.SnapshotFilterKeys == 0 {
		opts.SnapshotFilterKeys = DefaultSnapshotFilterKeys
	}
	if opts.SelectionCacheBytes == 0 {
		opts.SelectionCacheBytes = DefaultSelectionCacheBytes
	}
	s := &Store{opts: opts, cache: NewCache(opts.CachedSnapshots, opts.CachedSnapshotBytes, nil), selections: newSelectionCache(opts.SelectionCacheBytes)}
	s.cache.mu = new(sync.Mutex)
	po := &pebble.Options{
		Logger: pebbleLogger{l: opts.Logger, fatal: &s.fatal},
		// Large memtables absorb the overwrites of hot snapshots before they
		// reach sstables, which is most of what compaction would rewrite.
		MemTableSize: 64 << 20,
		// The WAL is never synced (the log is the source of truth), so
		// without this its dirty pages pile up and the kernel writes tens
		// of MB at once; on a disk shared with the stream, every fsync of a
		// sync=always append then waits behind them. Writing it out every
		// MiB (sync_file_range, in the background) keeps the device's queue
		// short: make bench's sync=always half-load p99 3.6-17.3 ms in six
		// runs against 55-163 ms in four of eight without (1 December).
		WALBytesPerSync: 1 << 20,
		// The fold's data is mostly each channel's history, appended in
		// sequence order: flushed tables fit between the older ones (level
		// 0 stays one sublevel deep), and what costs is pushing them down.
		// With Pebble's default base level (64 MiB) a million-operation
		// rebuild wrote 2.3 GB of tables and spent a quarter of its CPU in
		// compactions; at 128, 256 or 512 MiB it wrote 1.7 GB, with the same
		// compaction debt left at its end, 16-18 µs of CPU per operation
		// instead of 21-24 (BenchmarkFold, FOLD_N=1000000), and reads as
		// fast (docs/performance-log.md, "1 December, afternoon").
		LBaseMaxBytes: 256 << 20,
		// Pebble's default for a corrupt file is a fatal report (a panic
		// that takes the process down): here it is an error of the read
		// that found it, and the projector rebuilds the projection.
		EventListener: &pebble.EventListener{DataCorruption: s.corrupt,
			FlushBegin:      func(pebble.FlushInfo) { onBackgroundJob() },
			FlushEnd:        func(info pebble.FlushInfo) { s.flushed(info.Err); restoreBackgroundPriority() },
			BackgroundError: s.backgroundError,
			CompactionBegin: func(pebble.CompactionInfo) { onBackgroundJob() },
			CompactionEnd:   func(pebble.CompactionInfo) { restoreBackgroundPriority() }},
	}
	s.stallListener(po.EventListener)
	if opts.memTableSize > 0 {
		po.MemTableSize = uint64(opts.memTableSize)
	}
	s.memTable = po.MemTableSize
	if !opts.InMemory {
		s.dir = dir
	}
	// Pebble takes a reference of its own; this one is dropped when Open
	// returns, so the DB's is the last and Close frees the cache.
	cache := pebble.NewCache(opts.BlockCacheBytes)
	defer cache.Unref()
	po.Cache = cache
	// Compression only where the data comes to rest: every byte the fold
	// writes passes through the upper levels on its way down, and
	// compressing it at each (snappy) was a tenth of a rebuild's CPU; the
	// last level holds most of the data, compressed.
	for i := range po.Levels {
		po.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
		// A Bloom filter in every table, L0 included (Pebble's default is
		// none): the fold looks up the snapshot of each entity an operation
		// names, and the receipts fold each outcome key, and for a new
		// event or a new outcome the key is in no table. Without filters
		// such a miss searched every level's index: under make bench's
		// Dynatrace rows the fold's snapshot lookups, nearly all misses,
		// took 1.0-1.1 s of the gateway's 18 s of CPU, 0.7-0.8 s with the
		// filters (what is left is the memtables' search, which no filter
		// skips); a rebuild's rate did not move.
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		// 32 KiB data blocks instead of Pebble's 4 KiB: a flush or a
		// compaction writes each block with a write system call of its own,
		// and on this machine a call costs as much as copying 8 KiB (dd of
		// 1 GiB: 0.88 s of system time in 4 KiB writes, 0.29 s in 32 KiB).
		// In make bench's fold the tables' writes fell from 9.5% to 4.1% of
		// the profile and Pebble's share from 29% to 23%: 16.4 -> 15.3 us of
		// CPU an operation. Reads read whole blocks: /thing/get and history
		// p99 did not move in four alternated pairs (performance log, 5
		// December evening).
		po.Levels[i].BlockSize = 32 << 10
	}
	po.Levels[len(po.Levels)-1].Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
	if opts.InMemory {
		po.FS = vfs.NewMem()
		if opts.memFS != nil {
			po.FS = opts.memFS
		}
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open pebble %s: %w", dir, err)
		}
		if s.lock, err = pebble.LockDirectory(dir, vfs.Default); err != nil {
			return nil, fmt.Errorf("open pebble %s: %w", dir, err)
		}
		// After the lock: a directory another process holds is said so,
		// whatever the room.
		if !opts.ReadOnly && opts.MinFreeBytes >= 0 {
			need := uint64(opts.MinFreeBytes)
			if need == 0 {
				need = walRoom(po.MemTableSize) + minFreeSlack
			}
			if err := checkRoom(dir, need); err != nil {
				_ = s.lock.Close()
				return nil, fmt.Errorf("open pebble %s: %w", dir, err)
			}
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
	po.ReadOnly = opts.ReadOnly
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	s.db = db
	pruned, err := s.cursor(prunedKey)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	s.prunedBelow.Store(pruned)
	indexed, err := s.has(finalIndexedKey)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	s.finalIndexed.Store(indexed)
	s.filterSeed = maphash.MakeSeed()
	s.filterCtx, s.filterStop = context.WithCancel(context.Background())
	if opts.SnapshotFilterKeys > 0 {
		s.startSnapshotFilter(0)
	}
	return s, nil
}

// onBackgroundJob runs on the goroutine of each flush and compaction of a
// store as the job begins (a variable for the test that watches it).
var onBackgroundJob = lowerBackgroundPriority

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
// closes the store; on a disk without room for the flush it only closes
// (the restart replays the WAL): a flush there panicked inside Pebble past
// any recover ("sync: unlock of unlocked mutex" as it rotated the WAL). A store that failed fatally is abandoned instead:
// Pebble cannot close it (it waits forever for a commit that failed), and
// the process is about to rebuild or end anyway.
func (s *Store) Close() error {
	s.stopSnapshotFilter()
	if err := s.abandon(); err != nil {
		return err
	}
	var ferr error
	if s.roomToFlush() {
		ferr = s.db.Flush()
	}
	if err := s.close(); err != nil {
		return err
	}
	return ferr
}

// Background is the store's own work behind the writes it took: what
// Pebble still has to flush and compact, and the room it takes.
type Background struct {
	// Compactions is the number of compactions running.
	Compactions int64
	// CompactionDebtBytes is Pebble's estimate of the bytes to compact
	// before the tree is back in shape; it grows when writes outrun the
	// compactions.
	CompactionDebtBytes uint64
	// Flushing is set while a memtable is written to a table.
	Flushing bool
	// L0Sublevels is the depth of level 0: every read looks in each
	// sublevel, and Pebble slows writes down past 20.
	L0Sublevels int
	// DiskBytes is the room the store takes on disk (tables, WAL,
	// manifest).
	DiskBytes uint64
	// WriteStalls counts the times since the store opened that Pebble
	// delayed writes because its flushes or compactions fell behind, and
	// WriteStalled is how long writes waited in all (the stall in progress
	// included). SlowDiskOps counts the disk operations Pebble's health
	// check reported slow (stalls.go).
	WriteStalls  int64
	WriteStalled time.Duration
	SlowDiskOps  int64
}

// Idle reports whether nothing is being flushed or compacted. Debt may
// remain: Pebble counts every byte of level 0 as owed, and leaves a few
// tables there until more arrive.
func (b Background) Idle() bool { return b.Compactions == 0 && !b.Flushing }

// Background reports the store's background work now; the zero value once
// the store is closed or failed fatally. It takes Pebble's metrics lock:
// for monitoring, not for a hot path.
func (s *Store) Background() Background {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed || s.fatal.Load() != nil {
		return Background{}
	}
	m := s.db.Metrics()
	b := Background{
		Compactions:         m.Compact.NumInProgress,
		CompactionDebtBytes: m.Compact.EstimatedDebt,
		Flushing:            m.Flush.NumInProgress > 0,
		L0Sublevels:         int(m.Levels[0].Sublevels),
		DiskBytes:           m.DiskSpaceUsage(),
	}
	b.WriteStalls, b.WriteStalled, b.SlowDiskOps = s.stallTotals()
	return b
}

// Discard closes a store that is about to be deleted: without flushing
// what it holds.
func (s *Store) Discard() error {
	s.stopSnapshotFilter()
	if err := s.abandon(); err != nil {
		return err
	}
	return s.close()
}

func (s *Store) close() error {
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	s.groupBatch.Store(nil)
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
	if err != nil {
		// Pebble's goroutines, which never end, keep the store reachable
		// (its logger): let the kept batch go at least.
		s.groupBatch.Store(nil)
	}
	if err != nil && s.lock != nil {
		_ = s.lock.Close()
		_ = s.lock.Close()
		s.lock = nil
	}
	return err
}

// Layout is the version of the key layout. A store folded under another
// layout lacks indexes this code reads (or has ones it no longer
// maintains) and must be folded again. Bump it with every change to keys.go
// that a store folded before cannot be brought to in place (keys.go says
// which keys need none, and how such a store gets them): a refold keeps
// the live entities whose operations have all aged out of the log only
// when it reads the old snapshots (carryLayout), and has only the
// retained part of the others.
// 3: the op_id index of /send_status (O keys). 4: delivery summaries in
// the counts (x), outcome keys (d) by sequence, the send-status index by
// sequence (s keys) that pruning reads. 5: snapshots in their binary form
// (fold.EncodeEvent), the operation record in the O key (no o keys), no
// g keys and no s keys of operations (history pruned channel by channel).
// 6: the operation's sequence in its O key's record (Store.Op).
const Layout = 6

var layoutKey = []byte("m\x00layout")

// LayoutCurrent reports whether the store was folded under Layout: true
// for a new, empty store (which it then marks, with its F index complete:
// the fold indexes every final entity it makes), false for one folded by
// an older version.
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
	markFinalIndexed(b)
	if err := s.apply(b); err != nil {
		return false, err
	}
	s.finalIndexed.Store(true)
	return true, nil
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
		return 0, fmt.Errorf("%w: %q of %d bytes, want 8", ErrCorrupt, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// get returns a copy of the value at k, or nil.
func (s *Store) get(k []byte) ([]byte, error) { return getFrom(s.db, k) }

// has reports whether the store holds k (an empty value included).
func (s *Store) has(k []byte) (bool, error) {
	_, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// getFrom is get through r (the store, or a snapshot of it).
func getFrom(r pebble.Reader, k []byte) ([]byte, error) {
	v, closer, err := r.Get(k)
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
// atomically; or Seal closes it as one part of a group that CommitGroup
// writes with the parts of other goroutines. A Batch is used by one
// goroutine.
type Batch struct {
	s       *Store
	b       *pebble.Batch
	cache   *Cache
	overlay map[string]any // snapshot key → *fold.Event | *fold.Thing written in this batch
	// written are the overlay's snapshots with their weights for the
	// cache (snapshotBytes), as writeSnapshots encoded them.
	written []cachedSnapshot
	n       int
	// ops are the send-status records of the batch's operations, in
	// sequence order; written at commit in the order of the log (an
	// op_id a channel used twice keeps its later operation, whichever
	// part of a group folded which).
	ops    []opRecord
	buf    []byte       // encoding scratch
	kbuf   []byte       // snapshot key scratch (Event, Thing, PutEvent, PutThing)
	writes sortedWrites // the writes, until Commit or the group's CommitGroup

	receipts map[string]sendCounts // counts written in this batch (receipts fold)
	outcomes map[string]struct{}   // outcome keys written in this batch

	// snapHashes are the hashes of the snapshot keys the batch writes,
	// for the snapshot filter; born counts the snapshots it wrote that
	// were new to the store (PutEvent or PutThing without prev), the
	// filter's estimate of the keys it holds.
	snapHashes []uint64
	born       int

	// reselect holds the channels whose selector answers the batch
	// changes (PutThing: sameSelection), for the selection cache's
	// invalidation at its commit.
	reselect map[string]struct{}
}

// opRecord is a key of the op_id index and its value, written for the
// operation at seq.
type opRecord struct {
	seq        uint64
	key, value []byte
}

// NewBatch starts a batch that reads through the store's shared snapshot
// cache and commits itself (Commit).
func (s *Store) NewBatch() *Batch { return s.NewBatchWith(s.cache) }

// NewBatchWith starts a batch that reads snapshots through c: a cache of
// the goroutine that uses the batch, for batches sealed into groups.
func (s *Store) NewBatchWith(c *Cache) *Batch {
	b := &Batch{s: s, cache: c, overlay: map[string]any{}, receipts: map[string]sendCounts{}, outcomes: map[string]struct{}{}}
	b.writes = c.writeSpace() // a committed batch's space when c is one goroutine's
	return b
}

// pebbleBatch writes the batch's writes, in key order, to a Pebble batch
// of their size.
func (b *Batch) pebbleBatch() {
	b.b = b.s.db.NewBatchWithSize(b.writes.size())
	b.writes.writeTo(b.b)
	b.cache.giveBack(&b.writes)
}

// Count adds one folded record (a receipt) to Len.
func (b *Batch) Count() { b.n++ }

// Len is the number of operations added.
func (b *Batch) Len() int { return b.n }

func (b *Batch) snapshot(k []byte, decode func([]byte) (any, error)) (any, error) {
	if v, ok := b.overlay[string(k)]; ok {
		return v, nil
	}
	if v, committed, ok := b.cache.lookup(k); ok {
		// A committed final snapshot older than the last prune of final
		// entities may have been deleted by it (PruneFinal): the store
		// says. One not yet committed is newer than the store's.
		if seq, final := finalOf(v); !final || !committed || seq >= b.s.finalBelow.Load() {
			return v, nil
		}
	}
	if b.s.snapshotAbsent(k) {
		return nil, nil
	}
	raw, err := b.s.get(k)
	if err != nil || raw == nil {
		return nil, err
	}
	v, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot %q: %v", ErrCorrupt, k, err)
	}
	return v, nil
}

// Event returns the current snapshot of an event, or nil.
func (b *Batch) Event(channelID, id string) (*fold.Event, error) {
	b.kbuf = appendSnapshotKey(b.kbuf[:0], ops.KindEvent, channelID, id)
	v, err := b.snapshot(b.kbuf, func(raw []byte) (any, error) { return fold.DecodeEvent(raw) })
	if v == nil || err != nil {
		return nil, err
	}
	return v.(*fold.Event), nil
}

// Thing returns the current snapshot of a thing, or nil.
func (b *Batch) Thing(channelID, id string) (*fold.Thing, error) {
	b.kbuf = appendSnapshotKey(b.kbuf[:0], ops.KindThing, channelID, id)
	v, err := b.snapshot(b.kbuf, func(raw []byte) (any, error) { return fold.DecodeThing(raw) })
	if v == nil || err != nil {
		return nil, err
	}
	return v.(*fold.Thing), nil
}

// PutEvent records next and moves its index entries from prev (nil if
// new): its state, link, deadline and final (F) keys. The snapshot is
// encoded once per batch, at Commit or Seal, however many operations of
// the batch touch it.
func (b *Batch) PutEvent(prev, next *fold.Event) error {
	if prev != nil && prev.State != next.State {
		_ = b.del(stateKey(ops.KindEvent, prev.ChannelID, prev.State, prev.EventID))
	}
	if prev == nil || prev.State != next.State {
		_ = b.set(stateKey(ops.KindEvent, next.ChannelID, next.State, next.EventID), nil)
	}
	if prev != nil && prev.ThingID != next.ThingID && prev.ThingID != "" {
		_ = b.del(linkKey(prev.ChannelID, prev.ThingID, prev.EventID))
	}
	// A create folded onto a CLOSED event (started anew) sets the link
	// again even to the same Thing: the prune (PruneFinal) may have deleted
	// the closed event's keys, its link among them, between this batch's
	// read of it and its commit.
	if next.ThingID != "" && (prev == nil || prev.ThingID != next.ThingID || prev.State == ops.EventClosed && next.State != ops.EventClosed) {
		_ = b.set(linkKey(next.ChannelID, next.ThingID, next.EventID), nil)
	}
	b.moveDeadline(prev, next)
	b.moveFinal(eventFinalKey(prev), eventFinalKey(next))
	b.kbuf = appendSnapshotKey(b.kbuf[:0], ops.KindEvent, next.ChannelID, next.EventID)
	b.overlay[string(b.kbuf)] = next
	if prev == nil {
		b.born++
	}
	return nil
}

// PutThing records next and moves its index entries from prev (nil if
// new): the state index, the final index (F), and the entitySelector
// indexes (type, name, relationships) that a deleted thing leaves.
func (b *Batch) PutThing(prev, next *fold.Thing) error {
	if prev != nil && prev.State != next.State {
		_ = b.del(stateKey(ops.KindThing, prev.ChannelID, prev.State, prev.ThingID))
	}
	if prev == nil || prev.State != next.State {
		_ = b.set(stateKey(ops.KindThing, next.ChannelID, next.State, next.ThingID), nil)
	}
	b.moveFinal(thingFinalKey(prev), thingFinalKey(next))
	sameIndex := b.putSelectorIndex(prev, next)
	if prev == nil || !sameSelection(prev, next, sameIndex) {
		if b.reselect == nil {
			b.reselect = map[string]struct{}{}
		}
		b.reselect[next.ChannelID] = struct{}{}
	}
	b.kbuf = appendSnapshotKey(b.kbuf[:0], ops.KindThing, next.ChannelID, next.ThingID)
	b.overlay[string(b.kbuf)] = next
	if prev == nil {
		b.born++
	}
	return nil
}

// PutHistory appends an item to its channel's history.
func (b *Batch) PutHistory(channelID string, kind ops.Kind, seq uint64, item []byte) {
	b.buf = append(append(b.buf[:0], kindByte(kind)), item...)
	_ = b.set(historyKey(channelID, seq), b.buf)
	b.n++
}

// AppendHistory appends the operation env at seq, whose entry in the log
// is raw, to its channel's history (reads.AppendItem).
func (b *Batch) AppendHistory(env *ops.Envelope, raw []byte, seq uint64) {
	kind := env.Op.Kind()
	b.buf = append(b.buf[:0], kindByte(kind))
	if kind == ops.KindMessage {
		if ttl, ok := ops.MessageTTL(env.Payload); ok {
			b.buf = binary.BigEndian.AppendUint64(append(b.buf[:0], messageWithTTL), uint64(ttl))
		}
	}
	b.buf = reads.AppendItem(b.buf, seq, kind, raw)
	_ = b.set(historyKey(env.ChannelID, seq), b.buf)
	b.n++
}

// set and del write to the batch (in key order at commit, sorted.go).
func (b *Batch) set(k, v []byte) error {
	b.writes.add(k, v, false)
	return nil
}

func (b *Batch) del(k []byte) error {
	b.writes.add(k, nil, true)
	return nil
}

// cachedSnapshot is a snapshot the batch wrote, for its cache.
type cachedSnapshot struct {
	key   string
	snap  any // *fold.Event | *fold.Thing
	bytes int64
}

// Estimated memory of a decoded snapshot beyond its encoding
// (snapshotBytes): the struct and its strings' headers; each attrs member's
// Attr (a name and a value header) and its two allocations; each external
// id's map entry. Measured on 6 December: a Thing of 29,610 one-digit
// attrs members took 203 KB encoded and 1.66 MB decoded, about 49 bytes a
// member beyond its encoding.
const (
	snapshotOverhead = 512
	attrOverhead     = 64
	externalOverhead = 64
)

// snapshotBytes estimates the memory of the decoded snapshot whose
// encoding is encoded bytes long: what the cache counts it for.
func snapshotBytes(snap any, encoded int) int64 {
	n := snapshotOverhead + encoded
	switch v := snap.(type) {
	case *fold.Event:
		n += attrOverhead * len(v.Attrs)
	case *fold.Thing:
		n += attrOverhead*len(v.Attrs) + externalOverhead*len(v.ExternalIDs)
	}
	return int64(n)
}

// writeSnapshots encodes the batch's snapshots into it, and lists them
// with their weights for the cache (written).
func (b *Batch) writeSnapshots() {
	hashed := b.s.opts.SnapshotFilterKeys >= 0
	b.written = slices.Grow(b.written[:0], len(b.overlay))
	for k, snap := range b.overlay {
		if hashed {
			b.snapHashes = append(b.snapHashes, maphash.String(b.s.filterSeed, k))
		}
		b.buf = b.buf[:0]
		switch v := snap.(type) {
		case *fold.Event:
			b.buf = fold.EncodeEvent(b.buf, v)
		case *fold.Thing:
			b.buf = fold.EncodeThing(b.buf, v)
		}
		_ = b.set([]byte(k), b.buf)
		b.written = append(b.written, cachedSnapshot{key: k, snap: snap, bytes: snapshotBytes(snap, len(b.buf))})
	}
}

// Commit writes the batch and the applied sequence atomically, without
// fsync (the log is the source of truth), and publishes the batch's
// snapshots to its cache.
func (b *Batch) Commit(applied uint64) error { return b.commit(appliedKey, applied) }

// CommitReceipts commits a batch of folded receipts with their applied
// PUSHGO_RECEIPTS sequence.
func (b *Batch) CommitReceipts(applied uint64) error { return b.commit(receiptsAppliedKey, applied) }

func (b *Batch) commit(cursor []byte, applied uint64) error {
	if err := b.s.Failed(); err != nil {
		return err // Pebble would wait forever for a failed commit pipeline
	}
	b.writeSnapshots()
	for _, r := range b.ops {
		_ = b.set(r.key, r.value)
	}
	_ = b.set(cursor, binary.BigEndian.AppendUint64(nil, applied))
	b.pebbleBatch()
	if err := b.s.applyWithSnapshots(b.b, []*Batch{b}); err != nil {
		return fmt.Errorf("commit batch at %d: %w", applied, err)
	}
	_ = b.b.Close()
	for _, w := range b.written {
		b.cache.put(w, 0)
	}
	b.overlay, b.written, b.ops = nil, nil, nil
	return nil
}

// Seal ends a batch that is one part of group (numbered from 1, in commit
// order): its snapshots are encoded into it, its writes sorted (on the
// sealing goroutine, in parallel with the other parts), and the snapshots
// kept in its cache as written by group, which CommitGroup then commits
// with the other parts.
// The goroutine that sealed it goes on with a new batch on the same cache
// while the group commits.
func (b *Batch) Seal(group uint64) {
	b.writeSnapshots()
	b.writes.sort()
	for _, w := range b.written {
		b.cache.put(w, group)
	}
	b.overlay, b.written = nil, nil
}

// CommitGroup writes the sealed parts of one group and the applied
// sequence in one atomic batch (without fsync): after a crash the store
// holds every effect of the operations up to applied, and none of a later
// one. The parts may not be used afterwards; once committed, each part's
// write space goes back to its cache for the next batch of its goroutine.
func (s *Store) CommitGroup(parts []*Batch, applied uint64) error {
	if len(parts) == 0 {
		return errors.New("commit group: no parts")
	}
	if err := s.Failed(); err != nil {
		return err
	}
	size := 64
	for _, p := range parts {
		size += p.writes.size()
		for _, r := range p.ops {
			size += len(r.key) + len(r.value) + 2*binary.MaxVarintLen32 + 1
		}
	}
	// The parts' sorted writes go straight into the group's batch: a
	// Pebble batch of each part, applied to this one, copied every byte
	// twice and allocated a second batch the size of the group.
	all := s.groupBatch.Swap(nil)
	if all == nil {
		all = s.db.NewBatchWithSize(size, pebble.WithMaxRetainedSizeBytes(groupBatchRetained))
	}
	for _, p := range parts {
		p.writes.writeSorted(all)
	}
	// The op_id index records, in key order (sorted.go), of each key the
	// one of the latest operation, as a sequential fold leaves it.
	var recs []opRecord
	for _, p := range parts {
		recs = append(recs, p.ops...)
	}
	slices.SortFunc(recs, func(x, y opRecord) int {
		if c := bytes.Compare(x.key, y.key); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	for i, r := range recs {
		if i+1 < len(recs) && bytes.Equal(r.key, recs[i+1].key) {
			continue
		}
		_ = all.Set(r.key, r.value, nil)
	}
	_ = all.Set(appliedKey, binary.BigEndian.AppendUint64(nil, applied), nil)
	if err := s.applyWithSnapshots(all, parts); err != nil {
		return fmt.Errorf("commit batch at %d: %w", applied, err)
	}
	if size <= groupBatchRetained/2 {
		// Kept only when its space is kept (within groupBatchRetained,
		// with room to grow) and Pebble did not take its data (a batch the
		// size of half a memtable is applied as a memtable of its own):
		// a kept batch with no space would start the next group's from
		// nothing, by doublings, instead of at its size.
		all.Reset()
		s.groupBatch.Store(all)
	}
	for _, p := range parts {
		p.cache.giveBack(&p.writes)
		p.ops = nil
	}
	return nil
}

// apply commits pb without fsync. Pebble panics when the WAL refuses the
// write (and leaves its commit pipeline unusable): that panic, like a
// fatal report, marks the store failed and is returned as a *FatalError,
// as it is to every apply after it (applyMu).
func (s *Store) apply(pb *pebble.Batch) (err error) {
	return s.applyAfter(pb, nil)
}

// applyAfter is apply with last run first, under applyMu: what last adds
// to pb is decided on the store as no other commit can change it before
// pb's own. An error of last is returned, and pb not committed.
func (s *Store) applyAfter(pb *pebble.Batch, last func() error) (err error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.Failed(); err != nil {
		return err
	}
	if last != nil {
		if err := last(); err != nil {
			return err
		}
	}
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
	if b.b != nil { // nil: nothing written to Pebble
		b.s.closeBatch(b.b)
	}
}

// Prune deletes what the projection holds of the operations below first
// (the stream's first retained sequence): their history items, their send
// status (the op_id index, counts, outcomes). Snapshots remain: a live
// entity outlives its operations (final ones go by PruneFinal). It returns
// the number of history items and of send-status records removed.
//
// An op_id record is deleted only if it still names an operation below
// first when its deletion commits: a channel may use an op_id again (a
// sender's, past the duplicate window) just as its old operation leaves,
// and the record the fold wrote for the new one stays. Those deletions are
// decided under the commit lock, pruneChunk records at a time, so a prune
// of a minute of a busy log holds the folds back milliseconds at a time;
// they commit before the history that names them goes, so a prune cut
// short is taken up again by the next.
//
// The op_ids a prune goes through are held in memory until they commit,
// which it does whenever it holds pruneHold of them, with the deletions
// read up to there: a shortened retention's prune, or the first after a
// long stop, held every pruned operation's (millions) until its end.
func (s *Store) Prune(first uint64) (history, sendStatus int, err error) {
	// From now on a receipt of an operation before first records nothing
	// (ApplyReceipt): late outcomes of a pruned operation (its retries
	// ending "expired": it left the log) wrote its records again, and
	// /send_status answered for it until the next prune.
	moved := first > s.prunedBelow.Load()
	if moved {
		s.prunedBelow.Store(first)
	}
	p := &pruner{s: s, first: first, b: s.db.NewBatch()}
	defer func() { s.closeBatch(p.b) }()
	if moved {
		_ = p.b.Set(prunedKey, binary.BigEndian.AppendUint64(nil, first), nil)
	}
	if history, err = p.history(); err != nil {
		return 0, 0, err
	}
	if sendStatus, err = p.sendStatus(); err != nil {
		return 0, 0, err
	}
	if history+sendStatus == 0 && !p.committed {
		if moved {
			return 0, 0, s.apply(p.b)
		}
		return 0, 0, nil
	}
	return history, sendStatus, p.commit()
}

// pruneHold is how many operations' op_ids a prune holds before it
// commits what it read (a few hundred bytes each).
var pruneHold = 1 << 16

// pruner is one Prune: its batch of deletions (ranges, mostly) and the
// op_ids of the operations it read since its last commit.
type pruner struct {
	s         *Store
	first     uint64
	b         *pebble.Batch
	recs      opRecords
	committed bool // a commit was made before the last
}

// full reports whether the pruner should commit before it reads on.
func (p *pruner) full() bool { return len(p.recs.list) >= pruneHold }

// commit deletes the op_id records held, then applies the batch (the
// history and send-status deletions read so far), and starts a new one.
func (p *pruner) commit() error {
	s := p.s
	if s.hooks.beforePruneCommit != nil {
		s.hooks.beforePruneCommit()
	}
	for list := p.recs.list; len(list) > 0; {
		chunk := list[:min(len(list), pruneChunk)]
		list = list[len(chunk):]
		if err := s.pruneOpRecords(chunk, p.first); err != nil {
			return err
		}
	}
	p.recs = opRecords{}
	if s.hooks.afterPruneRecords != nil {
		s.hooks.afterPruneRecords()
	}
	err := s.apply(p.b)
	s.closeBatch(p.b)
	p.b, p.committed = s.db.NewBatch(), true
	return err
}

// closeBatch releases b, committed or not, unless the store failed: a
// commit Pebble panicked in may still hold it (Batch.Discard).
func (s *Store) closeBatch(b *pebble.Batch) {
	if s.Failed() == nil {
		_ = b.Close()
	}
}

// pruneChunk is how many operations' records a prune decides in one hold
// of the commit lock: milliseconds of point reads (more when they go to
// the disk), not a pass's.
const pruneChunk = 1024

// pruneOpRecords deletes the op_id records (with their counts) of recs
// that still name an operation below first, deciding and committing under
// the commit lock, and with them the operations' send-status index keys:
// in one commit, so that a receipt folded between two of a prune's
// commits, which writes counts and index key again, leaves both for the
// next pass, never counts that no index key leads to.
func (s *Store) pruneOpRecords(recs []prunedOp, first uint64) error {
	b := s.db.NewBatch()
	defer s.closeBatch(b)
	return s.applyAfter(b, func() error {
		for _, r := range recs {
			if err := s.pruneOpRecord(b, r.channelID, r.opID, first); err != nil {
				return err
			}
			for _, k := range r.seqKeys {
				_ = b.Delete(k, nil)
			}
		}
		return nil
	})
}

// opRecords are the op_ids whose records a prune goes through, each once,
// with the send-status index keys of their operations (an op_id a channel
// used again may have several below first).
type opRecords struct {
	list []prunedOp
	seen map[string]int // channel and op_id: its index in list
}

type prunedOp struct {
	channelID, opID string
	seqKeys         [][]byte // send-status index keys (s)
}

func (r *opRecords) add(channelID, opID string, seqKey []byte) {
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	k := channelID + "\x00" + opID
	if i, ok := r.seen[k]; ok {
		if seqKey != nil {
			r.list[i].seqKeys = append(r.list[i].seqKeys, seqKey)
		}
		return
	}
	r.seen[k] = len(r.list)
	op := prunedOp{channelID: channelID, opID: opID}
	if seqKey != nil {
		op.seqKeys = [][]byte{seqKey}
	}
	r.list = append(r.list, op)
}

// history deletes, channel by channel, the history items below first,
// and adds their operations' op_ids to the records held, committing when
// it holds enough (the items read so far of a channel deleted with them).
func (p *pruner) history() (int, error) {
	all := key("h", "")
	it, err := p.s.db.NewIter(&pebble.IterOptions{LowerBound: all, UpperBound: prefixEnd(all)})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; {
		k := it.Key()
		rest := k[len(all):]
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			ok = it.Next()
			continue
		}
		channelID := string(rest[:i])
		prefix := key("h", channelID, "")
		from, to := historyKey(channelID, 0), historyKey(channelID, p.first)
		for ; ok && bytes.Compare(it.Key(), to) < 0; ok = it.Next() {
			var env ops.Envelope
			if _, _, item, err := historyEntry(it.Value()); err == nil && fold.DecodeEnvelope(item, &env) == nil && env.OpID != "" {
				p.recs.add(channelID, env.OpID, nil)
			}
			n++
			if p.full() {
				// Pebble's iterator reads the store as it was when opened:
				// what the commit deletes is still read past.
				upTo := append(slices.Clone(it.Key()), 0) // the item read last, included
				_ = p.b.DeleteRange(from, upTo, nil)
				if err := p.commit(); err != nil {
					_ = it.Close()
					return 0, err
				}
				from = upTo
			}
		}
		_ = p.b.DeleteRange(from, to, nil)
		ok = it.SeekGE(prefixEnd(prefix)) // the next channel
	}
	return n, it.Close()
}

// LogCreated returns when the log stream the store folded was created
// (Unix ns; 0 when not recorded: a store of an older version, or a new
// one). A stream created again since (a broker wiped) holds another log
// whose sequences the store's positions do not name.
func (s *Store) LogCreated(stream string) (int64, error) {
	v, err := s.cursor(logKey(stream))
	return int64(v), err
}

// SetLogCreated records when the log stream the store folds was created
// (Unix ns).
func (s *Store) SetLogCreated(stream string, unixNano int64) error {
	b := s.db.NewBatch()
	_ = b.Set(logKey(stream), binary.BigEndian.AppendUint64(nil, uint64(unixNano)), nil)
	return s.apply(b)
}

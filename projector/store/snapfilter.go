package store

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The snapshot filter answers the fold's lookup of an entity it has never
// seen (every create: a new event, a new thing) without asking Pebble.
// Such a lookup is a miss, and Pebble's miss still searches each memtable
// (64 MiB skiplists, no filter) and asks each level's table filter: under
// make bench's /event/create row it was 6.8% of the gateway's CPU, about
// 15 µs of a create's 200, and 27 µs of a Dynatrace report's in the
// entityName row, where the store is larger.
//
// It is a Bloom filter over every snapshot key (e and t) the store holds,
// in memory: "absent" is certain, "present" is checked in Pebble as
// before. It holds every key because every snapshot written is added
// before the write is applied (Batch.commit, CommitGroup), and the keys
// written before it existed are read from the store by a scan that starts
// at a point no apply straddles (filterMu). Until that scan ends the fold
// asks Pebble for every lookup. A filter that has grown past the keys it
// was sized for is replaced by a larger one, built the same way.

const (
	// snapFilterBitsPerKey and snapFilterProbes: about 0.8% of misses
	// are checked in Pebble at the filter's sized load.
	snapFilterBitsPerKey = 10
	snapFilterProbes     = 7
	// DefaultSnapshotFilterKeys is Options.SnapshotFilterKeys' default:
	// 2 MiB of memory.
	DefaultSnapshotFilterKeys = 1 << 20
)

// snapFilter is a blocked Bloom filter of snapshot keys, safe for
// concurrent adds and checks: a key's probes all fall in one 512-bit
// block, one cache line, so a check costs at most one miss of the CPU's
// cache, not one a probe.
type snapFilter struct {
	seed   maphash.Seed
	words  []atomic.Uint64
	blocks uint64 // len(words) / blockWords, a power of two
	// sized is the keys it was sized for; keys counts the keys added that
	// were new to the store (an estimate: see Batch.born).
	sized int64
	keys  atomic.Int64
	// gone counts the snapshots deleted since it was built (PruneFinal):
	// their bits stay set, so they still count towards full, but a
	// larger filter is sized for the keys left (live), not for every
	// key the store ever held.
	gone atomic.Int64
}

// live estimates the keys the store holds: those added less those gone.
func (f *snapFilter) live() int64 { return max(f.keys.Load()-f.gone.Load(), 0) }

// snapshotsGone tells the filters that n snapshots were deleted.
func (s *Store) snapshotsGone(n int) {
	if n == 0 || s.opts.SnapshotFilterKeys < 0 {
		return
	}
	s.filterMu.RLock()
	defer s.filterMu.RUnlock()
	for _, f := range [...]*snapFilter{s.snapFilter.Load(), s.building} {
		if f != nil {
			f.gone.Add(int64(n))
		}
	}
}

// blockWords is the words of a block: 512 bits.
const blockWords = 8

func newSnapFilter(seed maphash.Seed, keys int) *snapFilter {
	n := (uint64(keys)*snapFilterBitsPerKey + 511) / 512
	blocks := uint64(1) << bits.Len64(max(n, 1)-1) // a power of two ≥ n
	return &snapFilter{seed: seed, words: make([]atomic.Uint64, blocks*blockWords), blocks: blocks, sized: int64(keys)}
}

// hashKey is a key's hash, shared by the adds and checks of every filter
// of one store (its seed).
func hashKey(seed maphash.Seed, k []byte) uint64 { return maphash.Bytes(seed, k) }

// probes returns the first word of h's block and the bits it sets: the
// block from h's high half, nine bits a probe from a remix of h.
func (f *snapFilter) probes(h uint64) (block []atomic.Uint64, p uint64) {
	b := (h >> 32) & (f.blocks - 1)
	return f.words[b*blockWords : (b+1)*blockWords], h * 0x9e3779b97f4a7c15
}

// add records the key of hash h.
func (f *snapFilter) add(h uint64) {
	block, p := f.probes(h)
	for range snapFilterProbes {
		bit := p & 511
		block[bit/64].Or(1 << (bit % 64))
		p >>= 9
	}
}

// mayHold reports whether the key of hash h may have been added; false is
// certain.
func (f *snapFilter) mayHold(h uint64) bool {
	block, p := f.probes(h)
	for range snapFilterProbes {
		bit := p & 511
		if block[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
		p >>= 9
	}
	return true
}

// full reports whether the filter holds more keys than it was sized for.
func (f *snapFilter) full() bool { return f.keys.Load() > f.sized }

// snapshotAbsent reports whether the store certainly holds no snapshot at
// k: false whenever it cannot say (no filter yet, or a possible match).
func (s *Store) snapshotAbsent(k []byte) bool {
	f := s.snapFilter.Load()
	return f != nil && !f.mayHold(hashKey(s.filterSeed, k))
}

// applyWithSnapshots applies pb, which holds the writes of parts (every
// commit of folded operations), and then drops the selection answers the
// parts changed.
func (s *Store) applyWithSnapshots(pb *pebble.Batch, parts []*Batch) error {
	if err := s.applyFiltered(pb, parts); err != nil {
		return err
	}
	// Before the fold publishes the batch's applied sequence: a read that
	// waits for it finds no selection answer from before it.
	var changed map[string]struct{}
	for _, p := range parts {
		if changed == nil {
			changed = p.reselect
		} else {
			maps.Copy(changed, p.reselect)
		}
		p.reselect = nil
	}
	s.selections.invalidate(changed)
	return nil
}

// applyFiltered applies pb after adding the hashes of the snapshot keys
// the parts write to the filters: the one in use and one being built.
// Their born counts, the snapshots new to the store, feed the filter's
// size.
func (s *Store) applyFiltered(pb *pebble.Batch, parts []*Batch) error {
	if s.opts.SnapshotFilterKeys < 0 {
		return s.apply(pb)
	}
	s.filterMu.RLock()
	cur := s.snapFilter.Load()
	for _, f := range [...]*snapFilter{cur, s.building} {
		if f == nil {
			continue
		}
		for _, p := range parts {
			for _, h := range p.snapHashes {
				f.add(h)
			}
			f.keys.Add(int64(p.born))
		}
	}
	err := s.apply(pb)
	s.filterMu.RUnlock()
	if err == nil && cur != nil && cur.full() {
		s.startSnapshotFilter(2 * cur.live())
	}
	return err
}

// stopSnapshotFilter stops a filter's build and waits for it: before the
// store closes, since its scan holds an iterator. A failed store is not
// waited for: it is never closed (abandon), and a build may wait for ever
// on filterMu behind an apply stuck in Pebble's broken commit pipeline.
func (s *Store) stopSnapshotFilter() {
	s.filterStartMu.Lock()
	s.filterStop()
	s.filterStartMu.Unlock()
	if s.Failed() == nil {
		s.filterWG.Wait()
	}
}

// filterRetry is the least time between a failed build and the next.
const filterRetry = time.Minute

// startSnapshotFilter builds a filter for at least keys keys in the
// background, unless one is being built or the store is closing.
func (s *Store) startSnapshotFilter(keys int64) {
	s.filterStartMu.Lock()
	defer s.filterStartMu.Unlock()
	if s.filterCtx.Err() != nil || s.Failed() != nil || time.Now().UnixNano() < s.filterRetryAt.Load() ||
		!s.filterBuilding.CompareAndSwap(false, true) {
		return
	}
	s.filterWG.Add(1)
	go func() { // owned by the store: Close cancels and waits for it
		defer s.filterWG.Done()
		for {
			if err := s.buildSnapshotFilterSafely(s.filterCtx, keys); err != nil {
				if s.filterCtx.Err() == nil {
					// The fold keeps asking Pebble: correct, only slower.
					s.filterRetryAt.Store(time.Now().Add(filterRetry).UnixNano())
					s.opts.Logger.Warn("projection store: snapshot filter not built; the fold looks up every new entity in the store until a later build", "err", err)
				}
				s.filterBuilding.Store(false)
				return
			}
			// Outgrown while it was built (a scan of a large store, or
			// a storm of creates): again, larger. The flag is cleared
			// before the last look, so that a commit that finds the
			// filter full after it starts the next build itself.
			s.filterBuilding.Store(false)
			f := s.snapFilter.Load()
			if !f.full() || !s.filterBuilding.CompareAndSwap(false, true) {
				return
			}
			keys = 2 * f.live()
		}
	}()
}

// buildSnapshotFilterSafely is buildSnapshotFilter with Pebble's fatal
// report (a panic, see FatalError) turned into the store's failure and an
// error, as apply does for a commit.
func (s *Store) buildSnapshotFilterSafely(ctx context.Context, keys int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*FatalError)
			if !ok {
				f = &FatalError{Msg: fmt.Sprint(r)}
			}
			s.fatal.CompareAndSwap(nil, f)
			err = f
		}
	}()
	return s.buildSnapshotFilter(ctx, keys)
}

// buildSnapshotFilter makes a filter of every snapshot key in the store
// and puts it in use. Its scan begins under filterMu, so every apply is
// either before it (and read by the scan) or after (and added to the new
// filter as it is built).
func (s *Store) buildSnapshotFilter(ctx context.Context, keys int64) error {
	f := newSnapFilter(s.filterSeed, int(max(keys, int64(s.opts.SnapshotFilterKeys))))
	s.filterMu.Lock()
	it, err := s.db.NewIter(nil)
	if err == nil {
		s.building = f
	}
	s.filterMu.Unlock()
	if err != nil {
		return fmt.Errorf("snapshot filter: %w", err)
	}
	done := false
	defer func() {
		if !done {
			s.filterMu.Lock()
			s.building = nil
			s.filterMu.Unlock()
		}
	}()
	var scanned int64
	for _, prefix := range [...]string{"e", "t"} {
		lower := []byte{prefix[0], sep}
		upper := []byte{prefix[0], sep + 1}
		it.SetBounds(lower, upper)
		for ok := it.First(); ok; ok = it.Next() {
			if scanned++; scanned%4096 == 0 && ctx.Err() != nil {
				_ = it.Close()
				return ctx.Err()
			}
			f.add(hashKey(s.filterSeed, it.Key()))
		}
		// Checked for each range: the next First clears the error, and a
		// range cut short by a failed read must never be put in use.
		if err := it.Error(); err != nil {
			_ = it.Close()
			return fmt.Errorf("snapshot filter: scan of %q keys: %w", prefix, err)
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("snapshot filter: scan: %w", err)
	}
	f.keys.Add(scanned)
	s.filterMu.Lock()
	s.snapFilter.Store(f)
	s.building, done = nil, true
	s.filterMu.Unlock()
	return nil
}

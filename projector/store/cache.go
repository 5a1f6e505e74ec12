package store

import (
	"sync"
	"sync/atomic"
)

// Cache holds decoded snapshots the fold reads through, so that an entity
// updated again is not read back from Pebble and decoded. It is bounded by
// a count and by an estimate of the snapshots' memory (snapshotBytes):
// past either, entries are evicted at random, but only those whose state
// the store already holds (committed), so a snapshot missing from the
// cache is always read back current. Snapshots not yet committed are kept
// whatever their count or bytes, until their commit.
type Cache struct {
	mu       *sync.Mutex // nil when one goroutine owns the cache
	max      int
	maxBytes int64
	bytes    int64 // the entries' weights
	m        map[string]cacheEntry
	// committed is the last group (see Batch.Seal) the store committed;
	// nil when only committed snapshots are put.
	committed *atomic.Uint64
	// returned brings the write space of the owner's committed batches
	// back for its next ones (a cache of one goroutine's only), from
	// whichever goroutine committed them (Commit, CommitGroup).
	returned chan sortedWrites
}

type cacheEntry struct {
	snap  any    // *fold.Event | *fold.Thing
	group uint64 // the group that wrote it (0: committed)
	bytes int64  // its weight (snapshotBytes)
}

// NewCache returns a cache of up to max snapshots and maxBytes of them
// (snapshotBytes) for one goroutine's batches. committed is the last group
// committed to the store, for the batches sealed into groups before their
// commit (Seal); nil when the batches commit themselves (Commit).
func NewCache(max int, maxBytes int64, committed *atomic.Uint64) *Cache {
	// Room for the parts of the groups that may be in flight at once (the
	// fold's groups ahead); a space that finds no room is dropped.
	return &Cache{max: max, maxBytes: maxBytes, m: make(map[string]cacheEntry), committed: committed,
		returned: make(chan sortedWrites, 4)}
}

// writeSpace is the write space for the owner's next batch: a committed
// one's, if any came back, else a new one.
func (c *Cache) writeSpace() sortedWrites {
	if c.mu != nil {
		return sortedWrites{}
	}
	select {
	case w := <-c.returned:
		return w
	default:
		return sortedWrites{}
	}
}

// giveBack returns the write space of a committed batch of the owner's
// (called by the committing goroutine); w is emptied. A shared cache's
// batches take new space (writeSpace): nothing is kept for them.
func (c *Cache) giveBack(w *sortedWrites) {
	if c.mu == nil {
		w.reset()
		select {
		case c.returned <- *w:
		default:
		}
	}
	*w = sortedWrites{}
}

func (c *Cache) lock() {
	if c.mu != nil {
		c.mu.Lock()
	}
}

func (c *Cache) unlock() {
	if c.mu != nil {
		c.mu.Unlock()
	}
}

// lookup returns the snapshot cached at k, and whether it is committed
// (the store holds it, or a later one).
func (c *Cache) lookup(k []byte) (snap any, committed, ok bool) {
	c.lock()
	e, ok := c.m[string(k)] // no string made: a lookup's conversion
	c.unlock()
	if !ok {
		return nil, false, false
	}
	committed = e.group == 0 || (c.committed != nil && e.group <= c.committed.Load())
	return e.snap, committed, true
}

// evictScan bounds the entries not evicted that a put looks at: when the
// cache is full of uncommitted snapshots (a group larger than the cache)
// it grows instead, until the commit.
const evictScan = 8

// put records w's snapshot, written by group (0: committed already),
// evicting committed entries at random until the cache is within its
// count and bytes with it.
func (c *Cache) put(w cachedSnapshot, group uint64) {
	c.lock()
	defer c.unlock()
	if old, ok := c.m[w.key]; ok {
		delete(c.m, w.key)
		c.bytes -= old.bytes
	}
	if len(c.m) >= c.max || c.bytes+w.bytes > c.maxBytes {
		var committed uint64
		if c.committed != nil {
			committed = c.committed.Load()
		}
		kept := 0
		for k, e := range c.m { // random eviction: map order is random
			if e.group <= committed {
				delete(c.m, k)
				c.bytes -= e.bytes
				if len(c.m) < c.max && c.bytes+w.bytes <= c.maxBytes {
					break
				}
				continue
			}
			if kept++; kept == evictScan {
				break
			}
		}
	}
	c.m[w.key] = cacheEntry{snap: w.snap, group: group, bytes: w.bytes}
	c.bytes += w.bytes
}

// Bytes is the weight of the snapshots held (snapshotBytes).
func (c *Cache) Bytes() int64 {
	c.lock()
	defer c.unlock()
	return c.bytes
}

// Len is the number of snapshots held.
func (c *Cache) Len() int {
	c.lock()
	defer c.unlock()
	return len(c.m)
}

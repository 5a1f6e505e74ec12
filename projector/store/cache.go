package store

import (
	"sync"
	"sync/atomic"
)

// Cache holds decoded snapshots the fold reads through, so that an entity
// updated again is not read back from Pebble and decoded. It is bounded:
// past its size, entries are evicted at random, but only those whose
// state the store already holds (committed), so a snapshot missing from
// the cache is always read back current.
type Cache struct {
	mu  *sync.Mutex // nil when one goroutine owns the cache
	max int
	m   map[string]cacheEntry
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
}

// NewCache returns a cache of up to max snapshots for one goroutine's
// batches. committed is the last group committed to the store, for the
// batches sealed into groups before their commit (Seal); nil when the
// batches commit themselves (Commit).
func NewCache(max int, committed *atomic.Uint64) *Cache {
	// Room for the parts of the groups that may be in flight at once (the
	// fold's groups ahead); a space that finds no room is dropped.
	return &Cache{max: max, m: make(map[string]cacheEntry), committed: committed, returned: make(chan sortedWrites, 4)}
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

func (c *Cache) get(k []byte) (any, bool) {
	c.lock()
	e, ok := c.m[string(k)] // no string made: a lookup's conversion
	c.unlock()
	return e.snap, ok
}

// evictScan bounds the entries looked at to find one to evict: when the
// cache is full of uncommitted snapshots (a group larger than the cache)
// it grows instead, until the commit.
const evictScan = 8

// put records snap, written by group (0: committed already).
func (c *Cache) put(k string, snap any, group uint64) {
	c.lock()
	defer c.unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		var committed uint64
		if c.committed != nil {
			committed = c.committed.Load()
		}
		seen := 0
		for old, e := range c.m { // random eviction: map order is random
			if e.group <= committed {
				delete(c.m, old)
				break
			}
			if seen++; seen == evictScan {
				break
			}
		}
	}
	c.m[k] = cacheEntry{snap: snap, group: group}
}

// Len is the number of snapshots held.
func (c *Cache) Len() int {
	c.lock()
	defer c.unlock()
	return len(c.m)
}

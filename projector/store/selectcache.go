package store

import (
	"sync"
)

// selectionCache keeps the answers of Select, per channel, until a commit
// changes what a selector sees of one of the channel's Things (its state,
// title, tags, type or relationships: sameSelection). A Dynatrace problem
// is reported again and again about the same entities while it lasts, and
// each report selects them anew; without the cache each selection reads
// the index and the Things' snapshots again (a third of the cost of an
// entityName report beyond an /event/create's, make bench, 5 December).
// Updates that only change a Thing's other attrs, the usual write of a
// sensor or a server, leave its channel's answers cached.
//
// An answer is exact: one evaluated from a Pebble snapshot taken before a
// commit that changed its channel is never kept after that commit's
// invalidation (stamp and put), and every commit invalidates before the
// fold publishes its applied sequence, so a read that waited for a write
// (reads.Request.MinSeq) never gets an answer from before it.
type selectionCache struct {
	mu sync.Mutex
	// epoch counts invalidations; an evaluation is stamped with it before
	// its snapshot is taken.
	epoch    uint64
	channels map[string]*selectionBucket
	size     int // answers held, across channels
	max      int // answers held at most; 0: no cache
}

// selectionBucket is one channel's answers, and the epoch when the bucket
// was made: after the channel's last invalidation, which dropped the
// bucket before it.
type selectionBucket struct {
	since   uint64
	answers map[selectionKey]Selection
}

type selectionKey struct {
	selector string
	limit    int
}

func newSelectionCache(max int) *selectionCache {
	return &selectionCache{channels: map[string]*selectionBucket{}, max: max}
}

// get returns the cached answer of selector in channelID, if any. The
// answer's slices are shared: callers must not modify them.
func (c *selectionCache) get(channelID, selector string, limit int) (Selection, bool) {
	if c.max <= 0 {
		return Selection{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.channels[channelID]
	if b == nil {
		return Selection{}, false
	}
	sel, ok := b.answers[selectionKey{selector, limit}]
	return sel, ok
}

// stamp returns the epoch to give put for an evaluation about to take its
// snapshot.
func (c *selectionCache) stamp() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// put keeps sel, evaluated from a snapshot taken after stamp, unless a
// commit may have invalidated channelID since stamp: then sel may predate
// that commit and is dropped. An invalidation drops the channel's bucket,
// so a channel without one keeps an answer only when nothing at all was
// invalidated since stamp, and a bucket made since stamp (since > stamp)
// may have been made after one.
func (c *selectionCache) put(channelID, selector string, limit int, sel Selection, stamp uint64) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.channels[channelID]
	switch {
	case b == nil && stamp != c.epoch, b != nil && stamp < b.since:
		return
	case b != nil:
		if _, ok := b.answers[selectionKey{selector, limit}]; ok {
			b.answers[selectionKey{selector, limit}] = sel
			return
		}
	}
	if c.size >= c.max {
		c.evictOne() // may drop b, when its only answer goes
	}
	if b = c.channels[channelID]; b == nil {
		b = &selectionBucket{since: stamp, answers: map[selectionKey]Selection{}}
		c.channels[channelID] = b
	}
	b.answers[selectionKey{selector, limit}] = sel
	c.size++
}

// evictOne drops one answer, chosen at random (map order), and its bucket
// when it was the last: no bucket is empty.
func (c *selectionCache) evictOne() {
	for ch, b := range c.channels {
		for k := range b.answers {
			delete(b.answers, k)
			c.size--
			break
		}
		if len(b.answers) == 0 {
			delete(c.channels, ch)
		}
		return
	}
}

// invalidate drops the answers of channels, after a commit that changed
// what their selectors see.
func (c *selectionCache) invalidate(channels map[string]struct{}) {
	if c.max <= 0 || len(channels) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for ch := range channels {
		if b := c.channels[ch]; b != nil {
			c.size -= len(b.answers)
			delete(c.channels, ch)
		}
	}
}

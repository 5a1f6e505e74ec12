package store

import (
	"hash/maphash"
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
//
// The answers are bounded by an estimate of the bytes they hold; when a
// new one would not fit, answers chosen at random (map order) across
// channels make room. An answer with TooMany is not kept: it is the
// largest (its limit of ids) and ingest only refuses the report.
type selectionCache struct {
	mu sync.Mutex
	// epoch counts invalidations; an evaluation is stamped with it before
	// its snapshot is taken.
	epoch uint64
	// invalidated holds, per slot of channels (slotOf), the epoch of the
	// last invalidation of a channel in it: an evaluation stamped before
	// it may predate that commit. Channels sharing a slot only drop each
	// other's evaluations in flight, never a kept answer.
	invalidated [invalidationSlots]uint64
	seed        maphash.Seed
	answers     map[selectionKey]cachedSelection
	byChannel   map[string]map[selectionKey]struct{}
	bytes       int // estimated, of the answers held
	maxBytes    int // 0: no cache
}

const invalidationSlots = 4096

type selectionKey struct {
	channelID, selector string
	limit               int
}

type cachedSelection struct {
	sel   Selection
	bytes int
}

func newSelectionCache(maxBytes int) *selectionCache {
	return &selectionCache{seed: maphash.MakeSeed(), answers: map[selectionKey]cachedSelection{},
		byChannel: map[string]map[selectionKey]struct{}{}, maxBytes: max(maxBytes, 0)}
}

// get returns the cached answer of selector in channelID, if any. The
// answer's slices are shared: callers must not modify them.
func (c *selectionCache) get(channelID, selector string, limit int) (Selection, bool) {
	if c.maxBytes == 0 {
		return Selection{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[selectionKey{channelID, selector, limit}]
	return a.sel, ok
}

// stamp returns the epoch to give put for an evaluation about to take its
// snapshot.
func (c *selectionCache) stamp() uint64 {
	if c.maxBytes == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// put keeps sel, evaluated from a snapshot taken after stamp, unless a
// commit may have changed channelID's answers since stamp (then sel may
// predate it), sel is TooMany, or it alone exceeds the bound.
func (c *selectionCache) put(channelID, selector string, limit int, sel Selection, stamp uint64) {
	if c.maxBytes == 0 || sel.TooMany {
		return
	}
	k := selectionKey{channelID, selector, limit}
	size := selectionBytes(k, sel)
	if size+channelSetBytes > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.invalidated[c.slotOf(channelID)] > stamp {
		return
	}
	c.remove(k)
	for c.bytes+size+channelSetBytes > c.maxBytes && len(c.answers) > 0 {
		for other := range c.answers {
			c.remove(other)
			break
		}
	}
	c.answers[k] = cachedSelection{sel, size}
	keys := c.byChannel[channelID]
	if keys == nil {
		keys = map[selectionKey]struct{}{}
		c.byChannel[channelID] = keys
		c.bytes += channelSetBytes
	}
	keys[k] = struct{}{}
	c.bytes += size
}

// remove drops the answer of k, if held.
func (c *selectionCache) remove(k selectionKey) {
	a, ok := c.answers[k]
	if !ok {
		return
	}
	delete(c.answers, k)
	c.bytes -= a.bytes
	keys := c.byChannel[k.channelID]
	delete(keys, k)
	if len(keys) == 0 {
		delete(c.byChannel, k.channelID)
		c.bytes -= channelSetBytes
	}
}

// invalidate drops the answers of channels, after a commit that changed
// what their selectors see.
func (c *selectionCache) invalidate(channels map[string]struct{}) {
	if c.maxBytes == 0 || len(channels) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for ch := range channels {
		c.invalidated[c.slotOf(ch)] = c.epoch
		for k := range c.byChannel[ch] {
			c.remove(k)
		}
	}
}

func (c *selectionCache) slotOf(channelID string) int {
	return int(maphash.String(c.seed, channelID) % invalidationSlots)
}

// channelSetBytes estimates a channel's set of keys (byChannel) beside
// its entries, which selectionBytes counts: a small map's header and
// first group.
const channelSetBytes = 400

// selectionBytes estimates what k and sel hold: their strings, the slice
// and string headers, and the two maps' entries with their slack (a heap
// profile of make bench's 100,000-Thing rows: 43 MB in use for a cache
// full at 32 MiB by an estimate of 160 bytes for those, so 250).
func selectionBytes(k selectionKey, sel Selection) int {
	n := 250 + len(k.channelID) + len(k.selector)
	for _, id := range sel.ThingIDs {
		n += 16 + len(id)
	}
	for _, t := range sel.UnknownTypes {
		n += 16 + len(t)
	}
	return n
}

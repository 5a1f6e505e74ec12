package oplog

import (
	"hash/maphash"
	"sync/atomic"
)

// thingMarkBuckets is the number of channel buckets ThingMarks keeps: a
// fixed 32 KiB however many channels there are. Channels sharing a bucket
// share its mark, which only makes a read wait for a later sequence than
// it needs.
const thingMarkBuckets = 4096

// ThingMarks remembers, per channel, the sequence of the last Thing
// operation this process appended (created, updated, deleted), so that a
// read that selects Things by their attributes (the Dynatrace
// entitySelector) reflects every Thing write this process acknowledged
// before it, without asking the broker for a barrier. A selection's
// natural barrier, the last message of the channel's Thing subjects, costs
// the broker a walk over every Thing subject of the channel; this costs an
// atomic load, and nothing when no Thing was written lately (the local
// projector has folded the mark already).
//
// It covers this process's writes only: a Thing written through another
// ingest replica a moment ago may still be missed, as Dynatrace's own
// selection lags its entity discovery. The zero value is not usable; use
// NewThingMarks. Safe for concurrent use.
type ThingMarks struct {
	seed  maphash.Seed
	marks [thingMarkBuckets]atomic.Uint64
}

// NewThingMarks returns marks that know of no write.
func NewThingMarks() *ThingMarks { return &ThingMarks{seed: maphash.MakeSeed()} }

func (m *ThingMarks) of(channelID string) *atomic.Uint64 {
	return &m.marks[maphash.String(m.seed, channelID)%thingMarkBuckets]
}

// Note records that a Thing operation of channelID is in the log at seq.
func (m *ThingMarks) Note(channelID string, seq uint64) {
	mark := m.of(channelID)
	for {
		cur := mark.Load()
		if seq <= cur || mark.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Last is a sequence at or after every Thing operation of channelID that
// Note was told of (0 when none): the barrier of a read that must see
// them.
func (m *ThingMarks) Last(channelID string) uint64 { return m.of(channelID).Load() }

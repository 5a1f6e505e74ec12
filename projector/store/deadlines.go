package store

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// Deadline index: open events with a deadline, in deadline order, so the
// gateway finds the events to time out without scanning open events:
//
//	D 0 <deadline ms, 8 bytes BE> 0 <channel> 0 <event_id> → ∅
func deadlineKey(deadline int64, channelID, eventID string) []byte {
	b := binary.BigEndian.AppendUint64([]byte("D\x00"), uint64(deadline))
	b = append(b, sep)
	return append(b, key(channelID, eventID)...)
}

// deadlineOf is the indexed deadline of an event snapshot: only open events
// with a deadline are in the index.
func deadlineOf(e *fold.Event) (int64, bool) {
	if e == nil || e.State != ops.EventOngoing || e.Deadline == nil || *e.Deadline < 0 {
		return 0, false
	}
	return *e.Deadline, true
}

// moveDeadline keeps the deadline index in step with an event's change.
func (b *Batch) moveDeadline(prev, next *fold.Event) {
	pd, pok := deadlineOf(prev)
	nd, nok := deadlineOf(next)
	if pok && nok && pd == nd {
		return
	}
	if pok {
		_ = b.del(deadlineKey(pd, prev.ChannelID, prev.EventID))
	}
	if nok {
		_ = b.set(deadlineKey(nd, next.ChannelID, next.EventID), nil)
	}
}

// DueDeadlines returns up to limit open events whose deadline is before
// before (ms), oldest deadline first: each as its snapshot says now, its
// deadline before before.
func (s *Store) DueDeadlines(before int64, limit int, after *reads.DueEvent) ([]reads.DueEvent, error) {
	upper := binary.BigEndian.AppendUint64([]byte("D\x00"), uint64(max(before, 0)))
	lower := []byte("D\x00")
	if after != nil {
		// The key right after after's: the page goes on past it.
		lower = append(deadlineKey(after.Deadline, after.ChannelID, after.EventID), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if s.hooks.afterDueIndex != nil {
		s.hooks.afterDueIndex()
	}
	var out []reads.DueEvent
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) < 11 {
			continue
		}
		rest := k[11:] // "D" 0 <8 bytes> 0
		var channelID, eventID string
		for i, c := range rest {
			if c == sep {
				channelID, eventID = string(rest[:i]), string(rest[i+1:])
				break
			}
		}
		raw, err := s.get(snapshotKey(ops.KindEvent, channelID, eventID))
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue
		}
		e, err := fold.DecodeEvent(raw)
		if err != nil {
			return nil, err
		}
		// The index was read as the iterator opened, the snapshot as it
		// is now: a refresh committed in between moved the deadline (past
		// before, and its LastSeq would let the close through; or within
		// it, and a page's cursor, its last event's deadline, would skip
		// the index keys between the two). The event waits for the next
		// scan, which reads its new index key.
		d, open := deadlineOf(e)
		if !open || d >= before || d != int64(binary.BigEndian.Uint64(k[2:10])) {
			continue
		}
		out = append(out, reads.DueEvent{ChannelID: channelID, EventID: eventID, Deadline: d, Severity: e.Severity, LastSeq: e.LastSeq})
	}
	return out, it.Error()
}

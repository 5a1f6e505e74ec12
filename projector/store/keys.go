package store

import (
	"encoding/binary"

	"github.com/pushgo/gateway/schemas/ops"
)

// Key layout. Channel and entity ids never contain 0x00 (ids are validated
// to [A-Za-z0-9_:-]), so 0x00 separates components and prefix scans are
// exact.
//
//	e 0 <channel> 0 <event_id>             → event snapshot
//	t 0 <channel> 0 <thing_id>             → thing snapshot
//	E 0 <channel> 0 <state> 0 <event_id>   → ∅   events by state
//	T 0 <channel> 0 <state> 0 <thing_id>   → ∅   things by state
//	R 0 <channel> 0 <thing_id> 0 <event_id> → ∅  events by linked thing
//	h 0 <channel> 0 <seq, 8 bytes BE>      → <kind byte> history item JSON
//	g 0 <seq, 8 bytes BE>                  → <channel>  history in log order, for pruning
//	m 0 applied                            → last applied PUSHGO_OPS sequence
//	m 0 receipts                           → last applied PUSHGO_RECEIPTS sequence
const sep = 0

var (
	appliedKey         = []byte("m\x00applied")
	receiptsAppliedKey = []byte("m\x00receipts")
)

// Send status keys (folded from the ops and the receipts):
//
//	o 0 <channel> 0 <op_id>                → sendOp: the operation, for "accepted"
//	x 0 <channel> 0 <op_id>                → sendCounts: expansion and counts
//	d 0 <channel> 0 <op_id> 0 <device_key> → outcome of one delivery (idempotency)
func opKey(channelID, opID string) []byte     { return key("o", channelID, opID) }
func countsKey(channelID, opID string) []byte { return key("x", channelID, opID) }
func outcomeKey(channelID, opID, deviceKey string) []byte {
	return key("d", channelID, opID, deviceKey)
}

func key(parts ...string) []byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, sep)
		}
		b = append(b, p...)
	}
	return b
}

func snapshotKey(kind ops.Kind, channelID, id string) []byte {
	if kind == ops.KindEvent {
		return key("e", channelID, id)
	}
	return key("t", channelID, id)
}

func stateKey(kind ops.Kind, channelID, state, id string) []byte {
	if kind == ops.KindEvent {
		return key("E", channelID, state, id)
	}
	return key("T", channelID, state, id)
}

func linkKey(channelID, thingID, eventID string) []byte { return key("R", channelID, thingID, eventID) }

func historyKey(channelID string, seq uint64) []byte {
	b := key("h", channelID, "")
	return binary.BigEndian.AppendUint64(b, seq)
}

func globalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("g\x00"), seq)
}

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// kindByte is the first byte of a history value, so that a kinds filter
// does not decode items it skips.
func kindByte(k ops.Kind) byte {
	switch k {
	case ops.KindEvent:
		return 'e'
	case ops.KindThing:
		return 't'
	}
	return 'm'
}

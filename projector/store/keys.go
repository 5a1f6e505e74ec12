package store

import (
	"bytes"
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
//	Y 0 <channel> 0 <type> 0 <thing_id>     → ∅  things by attrs.type
//	N 0 <channel> 0 <type> 0 <name> 0 <thing_id>
//	                                       → ∅  typed things by title
//	L 0 <channel> 0 <rel> 0 <target_id> 0 <source_id>
//	                                       → ∅  relationships by target
//	F 0 <seq, 8 bytes BE> 0 <e|t> 0 <channel> 0 <id>
//	                                       → ∅  final entities (a CLOSED event, a deleted
//	                                            Thing) by the sequence that made them final
//	h 0 <channel> 0 <seq, 8 bytes BE>      → <kind byte> history item JSON
//	m 0 applied                            → last applied PUSHGO_OPS sequence
//	m 0 receipts                           → last applied PUSHGO_RECEIPTS sequence
//	m 0 pruned                             → the log's first sequence at the last prune
//	m 0 final                              → ∅  every final entity has its F key (IndexFinal)
//	m 0 log 0 <stream>                     → when the folded stream was created (Unix ns, 8 bytes BE)
//	z 0 <stream> 0 <seq, 8 bytes BE>       → DeadLetter: an entry the fold set aside
//
// z keys need no layout change: a store folded before them cannot hold a
// dead letter (the fold used to stop at such an entry). Nor m 0 log keys:
// a store without them records them when it is next opened. Nor F keys: a
// store folded before them lacks those of the entities that were already
// final, and IndexFinal writes them once, in place, from the state indexes
// (it marks m 0 final when done; a new store is marked at once). A layout
// change folds the log again: it keeps the live entities whose operations
// have all aged out only as far as it can read the old store's snapshots
// (CarryLive, carryLayout), and has only the retained part of the others.
//
// F serves the retention's prune of final entities (prunefinal.go): an
// entity's F key is its snapshot's LastSeq, as long as the snapshot is
// final (the fold moves it with the snapshot, as the state index), so the
// entities whose every operation left the log are the F keys below the
// log's first sequence, read without scanning the others.
//
// Y, N and L serve entitySelector evaluation (select.go). Things that are
// not deleted have entries, archived ones included. <type> is attrs.type
// when it is a non-empty JSON string without 0x00; N holds only typed
// Things with a title, <name> being entityselector.NameKey(title), so an
// entityName equals, in or startsWith within a type is a prefix scan.
// A title may hold 0x00 (sent as \u0000); that only widens a scan, never
// loses an entry: the thing id is what follows the key's last 0x00, and
// every candidate is re-checked on its snapshot. L has one
// entry per (rel, target) a source declares in attrs.relationships, rel
// being a name a selector can spell and target a valid entity id.
const sep = 0

var (
	appliedKey         = []byte("m\x00applied")
	receiptsAppliedKey = []byte("m\x00receipts")
	// prunedKey holds the log's first sequence of the last prune: the
	// receipts fold leaves out what reports on an operation before it.
	prunedKey = []byte("m\x00pruned")
	// finalIndexedKey marks a store whose final entities all have their
	// F key (IndexFinal).
	finalIndexedKey = []byte("m\x00final")
)

// finalPrefix begins every F key; finalSeqPrefix(seq) the F keys of the
// entities made final at seq, after those of every earlier sequence.
var finalPrefix = []byte("F\x00")

func finalSeqPrefix(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("F\x00"), seq) }

// finalKey is the F key of the entity of kind (event or thing) made final
// at seq.
func finalKey(seq uint64, kind ops.Kind, channelID, id string) []byte {
	b := append(finalSeqPrefix(seq), sep, kindByte(kind), sep)
	b = append(append(b, channelID...), sep)
	return append(b, id...)
}

// parseFinalKey is finalKey's inverse; ok is false for a key of another
// shape.
func parseFinalKey(k []byte) (seq uint64, kind ops.Kind, channelID, id string, ok bool) {
	const head = len("F\x00") + 8 + 3 // the sequence, then 0 <e|t> 0
	if len(k) < head+3 || !bytes.HasPrefix(k, finalPrefix) || k[head-3] != sep || k[head-1] != sep {
		return 0, "", "", "", false
	}
	switch k[head-2] {
	case 'e':
		kind = ops.KindEvent
	case 't':
		kind = ops.KindThing
	default:
		return 0, "", "", "", false
	}
	rest := k[head:]
	i := bytes.IndexByte(rest, sep)
	if i <= 0 || i == len(rest)-1 {
		return 0, "", "", "", false
	}
	return binary.BigEndian.Uint64(k[2:10]), kind, string(rest[:i]), string(rest[i+1:]), true
}

// logKey is the key of the creation time of a log stream the store folds
// (LogCreated): one per stream, after the stream's name.
func logKey(stream string) []byte { return append([]byte("m\x00log\x00"), stream...) }

// Send status keys (folded from the ops and the receipts):
//
//	O 0 <op_id> 0 <channel>                → sendOp: the operation, for "accepted"; and the
//	                                          channels by op_id, for /send_status without channel_id
//	x 0 <channel> 0 <op_id>                → sendCounts: expansion, summaries and counts
//	d 0 <seq, 8 bytes BE> 0 <channel> 0 <op_id> 0 <device_key>
//	                                       → outcome of one delivery (idempotency)
//	s 0 <seq, 8 bytes BE> 0 <channel> 0 <op_id>
//	                                       → ∅  counts by the operation's sequence, for pruning
//
// <seq> is the operation's PUSHGO_OPS sequence. The send status of
// operations that left the log is pruned with their history (whose items
// name their op_id) and by the s and d key ranges. An operation costs the
// ops fold two writes beside its entity's: its history item and its O key.
func opChannelKey(opID, channelID string) []byte { return key("O", opID, channelID) }
func countsKey(channelID, opID string) []byte    { return key("x", channelID, opID) }
func outcomeKey(seq uint64, channelID, opID, deviceKey string) []byte {
	return append(outcomeSeqPrefix(seq), key("", channelID, opID, deviceKey)...)
}
func sendSeqKey(seq uint64, channelID, opID string) []byte {
	return append(sendSeqPrefix(seq), key("", channelID, opID)...)
}

// outcomeSeqPrefix and sendSeqPrefix begin the d and s keys of the
// operation at seq; the keys of every earlier operation sort before them.
func outcomeSeqPrefix(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("d\x00"), seq)
}
func sendSeqPrefix(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("s\x00"), seq) }

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

// appendSnapshotKey appends snapshotKey(kind, channelID, id) to dst: the
// fold builds each operation's key in its batch's scratch space.
func appendSnapshotKey(dst []byte, kind ops.Kind, channelID, id string) []byte {
	prefix := byte('t')
	if kind == ops.KindEvent {
		prefix = 'e'
	}
	dst = append(append(dst, prefix, sep), channelID...)
	return append(append(dst, sep), id...)
}

func stateKey(kind ops.Kind, channelID, state, id string) []byte {
	if kind == ops.KindEvent {
		return key("E", channelID, state, id)
	}
	return key("T", channelID, state, id)
}

func linkKey(channelID, thingID, eventID string) []byte { return key("R", channelID, thingID, eventID) }

func typeKey(channelID, typ, thingID string) []byte { return key("Y", channelID, typ, thingID) }

func nameKey(channelID, typ, name, thingID string) []byte {
	return key("N", channelID, typ, name, thingID)
}

func relKey(channelID, rel, targetID, sourceID string) []byte {
	return key("L", channelID, rel, targetID, sourceID)
}

// lastPart returns what follows k's last separator: the id that ends every
// index key.
func lastPart(k []byte) string { return string(k[bytes.LastIndexByte(k, sep)+1:]) }

func historyKey(channelID string, seq uint64) []byte {
	b := key("h", channelID, "")
	return binary.BigEndian.AppendUint64(b, seq)
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

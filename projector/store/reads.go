package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// Snapshot returns the JSON of one event or thing (fold.JSON), or nil.
func (s *Store) Snapshot(kind ops.Kind, channelID, id string) ([]byte, error) {
	raw, err := s.get(snapshotKey(kind, channelID, id))
	if err != nil || raw == nil {
		return nil, err
	}
	return snapshotJSON(kind, raw)
}

// snapshotJSON returns the JSON of a stored snapshot of kind.
func snapshotJSON(kind ops.Kind, raw []byte) ([]byte, error) {
	var b []byte
	var err error
	if kind == ops.KindEvent {
		var e *fold.Event
		if e, err = fold.DecodeEvent(raw); err == nil {
			b, err = fold.AppendEventJSON(nil, e)
		}
	} else {
		var t *fold.Thing
		if t, err = fold.DecodeThing(raw); err == nil {
			b, err = fold.AppendThingJSON(nil, t)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s snapshot: %v", ErrCorrupt, kind, err)
	}
	return b, nil
}

// Page is one page of a listing. Cursor is empty on the last page.
type Page struct {
	Items  [][]byte
	Cursor string
}

// ListFilter selects the snapshots of a listing.
type ListFilter struct {
	Kind      ops.Kind
	ChannelID string
	State     string // "" for every state
	ThingID   string // events only: those linked to this thing
	Cursor    string // the id after which the page starts
	Limit     int
	// MaxBytes bounds the page's items in bytes, one separator each
	// counted (0: no bound); a page holds at least one item however large.
	MaxBytes int
}

// fits reports whether an item of n bytes joins a page of count items and
// size bytes (the sum of its items' lengths) within limit and maxBytes: the
// first item always does.
func fits(count, size, n, limit, maxBytes int) bool {
	if count == 0 {
		return limit > 0
	}
	return count < limit && (maxBytes <= 0 || size+count+n <= maxBytes)
}

// List pages through a channel's events or things in id order, through
// the index that fits the filter, so a page costs O(limit) reads however
// many entities the channel holds in other states. The page ends before
// the item that would pass Limit or MaxBytes; then Cursor is the last id
// in it.
func (s *Store) List(f ListFilter) (Page, error) {
	var prefix []byte
	switch {
	case f.Kind == ops.KindEvent && f.ThingID != "":
		prefix = key("R", f.ChannelID, f.ThingID, "")
	case f.State != "":
		prefix = stateKey(f.Kind, f.ChannelID, f.State, "")
	default:
		prefix = snapshotKey(f.Kind, f.ChannelID, "")
	}
	direct := f.State == "" && f.ThingID == "" // the prefix holds the snapshots themselves
	lower := prefix
	if f.Cursor != "" {
		lower = append(append(append([]byte(nil), prefix...), f.Cursor...), sep)
	}
	// An index entry and the snapshot it names are read at one point of
	// the store's history: the fold commits between them otherwise, and a
	// listing of active things held one deleted a moment before, or an
	// event listed under a Thing it had just left.
	var r pebble.Reader = s.db
	if !direct {
		snap := s.db.NewSnapshot()
		defer snap.Close()
		r = snap
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return Page{}, err
	}
	defer it.Close()
	var page Page
	last, size := "", 0
	for ok := it.First(); ok; ok = it.Next() {
		id := string(it.Key()[len(prefix):])
		var raw []byte
		if direct {
			raw = it.Value()
		} else if raw, err = getFrom(r, snapshotKey(f.Kind, f.ChannelID, id)); err != nil {
			return Page{}, err
		}
		if raw == nil {
			continue
		}
		if f.ThingID != "" && f.State != "" {
			st, err := fold.StateOf(raw)
			if err != nil {
				return Page{}, fmt.Errorf("%w: %s snapshot %s: %v", ErrCorrupt, f.Kind, id, err)
			}
			if st != f.State {
				continue
			}
		}
		snap, err := snapshotJSON(f.Kind, raw)
		if err != nil {
			return Page{}, err
		}
		if !fits(len(page.Items), size, len(snap), f.Limit, f.MaxBytes) {
			page.Cursor = last
			break
		}
		page.Items = append(page.Items, snap)
		last, size = id, size+len(snap)
	}
	return page, it.Error()
}

// HistoryPage is one page of a channel's history.
type HistoryPage struct {
	Items     [][]byte
	NextAfter uint64
	HasMore   bool
	// FirstSeq is the sequence of the channel's oldest retained item (0 if
	// none): history before it has aged out.
	FirstSeq uint64
}

// History returns up to limit items of a channel with sequence > after,
// in log order, optionally only of some kinds.
func (s *Store) History(channelID string, after uint64, limit int, kinds map[ops.Kind]bool) (HistoryPage, error) {
	return s.ReadHistory(HistoryFilter{ChannelID: channelID, After: after, Limit: limit, Kinds: kinds})
}

// HistoryFilter selects a page of a channel's history.
type HistoryFilter struct {
	ChannelID string
	After     uint64 // the page starts after this sequence
	Limit     int
	// MaxBytes bounds the page's items in bytes, one separator each
	// counted (0: no bound); a page holds at least one item however large.
	MaxBytes int
	Kinds    map[ops.Kind]bool // nil: every kind
	// Now (Unix ms) leaves out the messages whose ttl is not after it
	// (0: none left out).
	Now int64
}

// ReadHistory returns the items of f.ChannelID with sequence > f.After in
// log order, optionally only of some kinds; the page ends before the item
// that would pass f.Limit or f.MaxBytes, with HasMore set and NextAfter the
// last sequence in it; or once it passed over f.skipBound() items it does
// not show, with HasMore set and NextAfter the last of them (a page may
// then hold none).
func (s *Store) ReadHistory(f HistoryFilter) (HistoryPage, error) {
	channelID := f.ChannelID
	prefix := key("h", channelID, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: historyKey(channelID, f.After+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return HistoryPage{}, err
	}
	defer it.Close()
	page := HistoryPage{NextAfter: f.After}
	size, skipped := 0, 0
	for ok := it.First(); ok; ok = it.Next() {
		kind, ttl, item, err := historyEntry(it.Value())
		if err != nil {
			return HistoryPage{}, fmt.Errorf("history %s: %w", channelID, err)
		}
		if !f.shown(kind, ttl) {
			if skipped++; skipped >= f.skipBound() {
				page.HasMore = true
				page.NextAfter = binary.BigEndian.Uint64(it.Key()[len(prefix):])
				break
			}
			continue
		}
		if !fits(len(page.Items), size, len(item), f.Limit, f.MaxBytes) {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, append([]byte(nil), item...))
		size += len(item)
		page.NextAfter = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	}
	if err := it.Error(); err != nil {
		return HistoryPage{}, err
	}
	first, err := s.firstHistorySeq(prefix)
	page.FirstSeq = first
	return page, err
}

func (s *Store) firstHistorySeq(prefix []byte) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.First() {
		return 0, it.Error()
	}
	return binary.BigEndian.Uint64(it.Key()[len(prefix):]), nil
}

// messageWithTTL is the kind byte of a history value of a message with a
// ttl: the byte, the ttl (ms, 8 bytes big-endian), then the item. Reads
// leave an item out once its ttl has passed (the spec: expired messages
// are not replayed). Values folded before it have the plain 'm'.
const messageWithTTL = 'M'

// historyEntry splits a history value into its kind, the ttl of a message
// that has one (0: none) and the item.
func historyEntry(v []byte) (kind ops.Kind, ttl int64, item []byte, err error) {
	switch {
	case len(v) == 0:
		return "", 0, nil, fmt.Errorf("%w: empty history value", ErrCorrupt)
	case v[0] == messageWithTTL:
		if len(v) < 9 {
			return "", 0, nil, fmt.Errorf("%w: history value of %d bytes", ErrCorrupt, len(v))
		}
		return ops.KindMessage, int64(binary.BigEndian.Uint64(v[1:9])), v[9:], nil
	}
	return kindOf(v[0]), 0, v[1:], nil
}

// skipBound is how many items a history page passes over unshown (another
// kind than its filter's, a message past its ttl) before it ends, with
// HasMore set and NextAfter the last one passed: a filtered page of a
// channel whose millions of items are all of another kind read them all,
// and its repeat read them again. At least 1,024, and 16 times the limit.
func (f HistoryFilter) skipBound() int { return max(1024, 16*f.Limit) }

// shown reports whether an item of kind with ttl goes into a page of f.
func (f HistoryFilter) shown(kind ops.Kind, ttl int64) bool {
	if len(f.Kinds) > 0 && !f.Kinds[kind] {
		return false
	}
	return ttl == 0 || f.Now == 0 || ttl > f.Now
}

func kindOf(b byte) ops.Kind {
	switch b {
	case 'e':
		return ops.KindEvent
	case 't':
		return ops.KindThing
	}
	return ops.KindMessage
}

// Dump calls fn for every snapshot and index entry in key order (not the
// history, not the applied sequence): what a rebuild must reproduce byte for
// byte. Snapshots are shown as their JSON (fold.JSON), each checked to be
// the one encoding of its snapshot (decoded and encoded again, it is the
// same bytes), so that equal dumps are equal stores.
func (s *Store) Dump(fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		switch k[0] {
		case 'h', 'm':
			continue
		case 'e', 't':
			kind := ops.KindThing
			if k[0] == 'e' {
				kind = ops.KindEvent
			}
			j, err := snapshotJSON(kind, v)
			if err != nil {
				return fmt.Errorf("snapshot %q: %w", k, err)
			}
			snap, _ := decodeSnapshot(kind, v)
			if again := fold.Encode(snap); !bytes.Equal(again, v) {
				return fmt.Errorf("%w: snapshot %q is not in its one encoding", ErrCorrupt, k)
			}
			v = j
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return it.Error()
}

// Raw calls fn for every key and value of the store, in key order, as
// stored: the whole projection (the history, the applied sequences and
// the layout included), for comparing two stores byte for byte.
func (s *Store) Raw(fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

func decodeSnapshot(kind ops.Kind, raw []byte) (any, error) {
	if kind == ops.KindEvent {
		return fold.DecodeEvent(raw)
	}
	return fold.DecodeThing(raw)
}

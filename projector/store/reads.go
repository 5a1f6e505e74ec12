package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pushgo/gateway/schemas/ops"
)

// Snapshot returns the encoded snapshot of one event or thing, or nil.
func (s *Store) Snapshot(kind ops.Kind, channelID, id string) ([]byte, error) {
	return s.get(snapshotKey(kind, channelID, id))
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
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return Page{}, err
	}
	defer it.Close()
	var page Page
	last, size := "", 0
	for ok := it.First(); ok; ok = it.Next() {
		id := string(it.Key()[len(prefix):])
		var snap []byte
		if direct {
			snap = append([]byte(nil), it.Value()...)
		} else if snap, err = s.get(snapshotKey(f.Kind, f.ChannelID, id)); err != nil {
			return Page{}, err
		}
		if snap == nil || (f.ThingID != "" && f.State != "" && !hasState(snap, f.State)) {
			continue
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

// hasState reports whether an encoded snapshot is in state; used only when
// filtering the by-thing index by state.
func hasState(snap []byte, state string) bool {
	return bytes.Contains(snap, []byte(`"state":"`+state+`"`))
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
}

// ReadHistory returns the items of f.ChannelID with sequence > f.After in
// log order, optionally only of some kinds; the page ends before the item
// that would pass f.Limit or f.MaxBytes, with HasMore set and NextAfter the
// last sequence in it.
func (s *Store) ReadHistory(f HistoryFilter) (HistoryPage, error) {
	channelID := f.ChannelID
	prefix := key("h", channelID, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: historyKey(channelID, f.After+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return HistoryPage{}, err
	}
	defer it.Close()
	page := HistoryPage{NextAfter: f.After}
	size := 0
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) == 0 {
			return HistoryPage{}, fmt.Errorf("history %s: empty value", channelID)
		}
		if len(f.Kinds) > 0 && !f.Kinds[kindOf(v[0])] {
			continue
		}
		if !fits(len(page.Items), size, len(v)-1, f.Limit, f.MaxBytes) {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, append([]byte(nil), v[1:]...))
		size += len(v) - 1
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
// byte.
func (s *Store) Dump(fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k[0] == 'h' || k[0] == 'g' || k[0] == 'm' {
			continue
		}
		if err := fn(k, it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

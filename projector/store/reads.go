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
}

// List pages through a channel's events or things in id order, through
// the index that fits the filter, so a page costs O(limit) reads however
// many entities the channel holds in other states.
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
	last := ""
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
		if len(page.Items) == f.Limit {
			page.Cursor = last
			break
		}
		page.Items = append(page.Items, snap)
		last = id
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
	prefix := key("h", channelID, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: historyKey(channelID, after+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return HistoryPage{}, err
	}
	defer it.Close()
	page := HistoryPage{NextAfter: after}
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) == 0 {
			return HistoryPage{}, fmt.Errorf("history %s: empty value", channelID)
		}
		if len(kinds) > 0 && !kinds[kindOf(v[0])] {
			continue
		}
		if len(page.Items) == limit {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, append([]byte(nil), v[1:]...))
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

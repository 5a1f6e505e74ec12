package store

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// HistoryItems is a page of a channel's history whose items AppendHistory
// wrote into the caller's buffer: ReadHistory's page, without the items.
type HistoryItems struct {
	Count     int    // items written
	NextAfter uint64 // the last sequence in the page (f.After when empty)
	HasMore   bool
	FirstSeq  uint64 // the channel's oldest retained item (0 if none)
	// PassedOver: the page ended after f.skipBound() items it does not
	// show (NextAfter the last of them), not by its count or bytes.
	PassedOver bool
}

// AppendHistory appends the items of the page ReadHistory(f) returns to
// dst, each as stored (the item's JSON) and after a comma but the first,
// which is the inside of the page's JSON array. It copies each item once,
// from the store into dst, where ReadHistory copies each into an
// allocation of its own: a read service writes the page around them.
func (s *Store) AppendHistory(dst []byte, f HistoryFilter) ([]byte, HistoryItems, error) {
	channelID := f.ChannelID
	prefix := key("h", channelID, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: historyKey(channelID, f.After+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return dst, HistoryItems{}, err
	}
	defer it.Close()
	page := HistoryItems{NextAfter: f.After}
	size, skipped := 0, 0
	for ok := it.First(); ok; ok = it.Next() {
		kind, ttl, item, err := historyEntry(it.Value())
		if err != nil {
			return dst, HistoryItems{}, fmt.Errorf("history %s: %w", channelID, err)
		}
		if !f.shown(kind, ttl) {
			if skipped++; skipped >= f.skipBound() {
				page.HasMore, page.PassedOver = true, true
				page.NextAfter = binary.BigEndian.Uint64(it.Key()[len(prefix):])
				break
			}
			continue
		}
		if !fits(page.Count, size, len(item), f.Limit, f.MaxBytes) {
			page.HasMore = true
			break
		}
		if page.Count > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, item...)
		page.Count++
		size += len(item)
		page.NextAfter = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	}
	if err := it.Error(); err != nil {
		return dst, HistoryItems{}, err
	}
	page.FirstSeq, err = s.firstHistorySeq(prefix)
	return dst, page, err
}

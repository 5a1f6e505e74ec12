package store

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestPagesCutByBytes: with MaxBytes, a history or list page ends before
// the item that would pass the budget (counting one separator per item),
// says there is more and where it ends, and the next page starts right
// after it: paging returns every item once, in order. An item larger than
// the budget is a page of its own; a kinds filter cuts on the items it
// keeps only.
func TestPagesCutByBytes(t *testing.T) {
	s := open(t)
	b := s.NewBatch()
	// Sizes in bytes of the history items, seq 1..n; seq 7 is larger than
	// the budget.
	sizes := []int{100, 100, 100, 250, 50, 49, 900, 20, 20, 300, 300, 20}
	item := func(seq, size int) []byte {
		head := fmt.Sprintf(`{"seq":%d,"x":"`, seq)
		return []byte(head + strings.Repeat("a", size-len(head)-2) + `"}`)
	}
	for i, n := range sizes {
		kind := ops.KindMessage
		if i%3 == 2 {
			kind = ops.KindEvent
		}
		b.PutHistory(ch, kind, uint64(i+1), item(i+1, n))
		th := &fold.Thing{ChannelID: ch, ThingID: fmt.Sprintf("t%02d", i), State: ops.ThingActive, Title: strings.Repeat("b", n)}
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(uint64(len(sizes))); err != nil {
		t.Fatal(err)
	}
	const budget = 303 // 100+100+100 and two separators fit; a third separator does not

	var pages []string
	var got []int
	after := uint64(0)
	for range len(sizes) + 1 {
		h, err := s.ReadHistory(HistoryFilter{ChannelID: ch, After: after, Limit: 100, MaxBytes: budget})
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, it := range h.Items {
			size += len(it) + 1
		}
		if len(h.Items) == 0 || size-1 > budget && len(h.Items) > 1 {
			t.Fatalf("page after %d: %d items of %d bytes", after, len(h.Items), size-1)
		}
		pages = append(pages, seqs(h.Items))
		for _, it := range h.Items {
			var seq int
			_, _ = fmt.Sscanf(string(it), `{"seq":%d`, &seq)
			got = append(got, seq)
		}
		if !h.HasMore {
			break
		}
		if h.NextAfter <= after {
			t.Fatalf("next_after %d after %d", h.NextAfter, after)
		}
		after = h.NextAfter
	}
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10 11 12]" {
		t.Fatalf("history paged by bytes returned %v", got)
	}
	// 1-3 fill 302 bytes; 4+5 = 301; 6 (49) then 7 (900) does not fit; 7
	// alone; 8,9 = 41 and 10 does not fit; 10 and 11 (300 each) alone.
	if p := strings.Join(pages, " | "); p != "1,2,3 | 4,5 | 6 | 7 | 8,9 | 10 | 11 | 12" {
		t.Fatalf("pages %s", p)
	}

	// The count limit still cuts first when it is smaller.
	h, _ := s.ReadHistory(HistoryFilter{ChannelID: ch, Limit: 2, MaxBytes: 1 << 20})
	if seqs(h.Items) != "1,2" || !h.HasMore || h.NextAfter != 2 {
		t.Fatalf("limit 2: %s more %v next %d", seqs(h.Items), h.HasMore, h.NextAfter)
	}
	// kinds: only the events (3, 6, 9, 12) count against the budget.
	h, _ = s.ReadHistory(HistoryFilter{ChannelID: ch, Limit: 100, MaxBytes: 160, Kinds: map[ops.Kind]bool{ops.KindEvent: true}})
	if seqs(h.Items) != "3,6" || !h.HasMore || h.NextAfter != 6 {
		t.Fatalf("events by bytes: %s more %v next %d", seqs(h.Items), h.HasMore, h.NextAfter)
	}

	// Lists: the same cut over snapshots, the cursor at the page's last id.
	var things []string
	cursor, n := "", 0
	for {
		p, err := s.List(ListFilter{Kind: ops.KindThing, ChannelID: ch, Cursor: cursor, Limit: 100, MaxBytes: 700})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) == 0 {
			t.Fatalf("empty page at cursor %q", cursor)
		}
		got := ids(t, p.Items, "thing_id")
		things = append(things, got...)
		if n++; p.Cursor == "" {
			break
		}
		if p.Cursor != got[len(got)-1] {
			t.Fatalf("cursor %q, last item %q", p.Cursor, got[len(got)-1])
		}
		cursor = p.Cursor
	}
	if len(things) != len(sizes) || things[0] != "t00" || things[len(sizes)-1] != "t11" || n < 3 {
		t.Fatalf("things paged by bytes: %v in %d pages", things, n)
	}
	for i := 1; i < len(things); i++ {
		if things[i] <= things[i-1] {
			t.Fatalf("things out of order or repeated: %v", things)
		}
	}
}

// seqs lists the "seq" of history items.
func seqs(items [][]byte) string {
	var out []string
	for _, it := range items {
		s := strings.TrimPrefix(string(it), `{"seq":`)
		out = append(out, s[:strings.IndexByte(s, ',')])
	}
	return strings.Join(out, ",")
}

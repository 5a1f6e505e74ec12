package store

import (
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/ops"
)

// TestFilteredHistoryPageIsBoundedByWhatItPassesOver: a page of events of a
// channel of thousands of messages ends once it has passed over skipBound
// items it does not show, with has_more and next_after the last of them,
// instead of reading every message (and again at its repeat); paging on
// from next_after reaches the event, and both readers (ReadHistory and
// the read service's AppendHistory) page the same.
func TestFilteredHistoryPageIsBoundedByWhatItPassesOver(t *testing.T) {
	s := open(t)
	const messages = 3000
	b := s.NewBatch()
	for seq := uint64(1); seq <= messages; seq++ {
		raw := `{"op":"message.create","channel_id":"c1","op_id":"m","entity_id":"m1","accepted_at":1000}`
		var env ops.Envelope
		if err := json.Unmarshal([]byte(raw), &env); err != nil {
			t.Fatal(err)
		}
		b.AppendHistory(&env, []byte(raw), seq)
	}
	rawEv := `{"op":"event.create","channel_id":"c1","op_id":"e","entity_id":"e1","accepted_at":1000}`
	var ev ops.Envelope
	if err := json.Unmarshal([]byte(rawEv), &ev); err != nil {
		t.Fatal(err)
	}
	b.AppendHistory(&ev, []byte(rawEv), messages+1)
	if err := b.Commit(messages + 1); err != nil {
		t.Fatal(err)
	}
	f := HistoryFilter{ChannelID: "c1", Limit: 10, Kinds: map[ops.Kind]bool{ops.KindEvent: true}}
	var pages, found int
	for {
		page, err := s.ReadHistory(f)
		if err != nil {
			t.Fatal(err)
		}
		_, raw, err := s.AppendHistory(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if raw.Count != len(page.Items) || raw.NextAfter != page.NextAfter || raw.HasMore != page.HasMore || raw.PassedOver != (page.HasMore && len(page.Items) == 0) {
			t.Fatalf("the two readers differ after %d: %+v against %d items, next %d, more %v", f.After, raw, len(page.Items), page.NextAfter, page.HasMore)
		}
		pages++
		found += len(page.Items)
		// At most 1,024 items passed over (16 times the limit, at least
		// 1,024): a page of 10 reads about 1,034 entries, not 3,001.
		if passed := page.NextAfter - f.After - uint64(len(page.Items)); passed > 1024 {
			t.Fatalf("a page after %d passed over %d items, more than 1024", f.After, passed)
		}
		if !page.HasMore {
			break
		}
		if page.NextAfter <= f.After {
			t.Fatalf("a page after %d has more but its next_after %d does not move on", f.After, page.NextAfter)
		}
		f.After = page.NextAfter
	}
	if found != 1 || pages != 3 {
		t.Fatalf("%d events in %d pages, want the 1 in 3 (1,024 messages passed over by each of the first two)", found, pages)
	}
}

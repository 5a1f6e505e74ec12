package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/ops"
)

// TestAppendHistoryIsReadHistory: for any filter (after, limit, byte
// budget, kinds), AppendHistory writes exactly ReadHistory's items,
// comma-separated, after what dst held, and says what ReadHistory's page
// says (next_after, has_more, first_seq), also for an empty page and a
// channel without history.
func TestAppendHistoryIsReadHistory(t *testing.T) {
	s := open(t)
	b := s.NewBatch()
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []ops.Kind{ops.KindEvent, ops.KindThing, ops.KindMessage}
	const n = 300
	for seq := uint64(1); seq <= n; seq++ {
		if seq%7 == 0 {
			continue // sequences of other channels
		}
		item := fmt.Sprintf(`{"seq":%d,"x":"%s"}`, seq, strings.Repeat("é", rng.IntN(200)))
		b.PutHistory(ch, kinds[rng.IntN(3)], seq, []byte(item))
	}
	if err := b.Commit(n); err != nil {
		t.Fatal(err)
	}
	filters := []HistoryFilter{
		{ChannelID: ch, Limit: 1000},
		{ChannelID: ch, After: n, Limit: 10},
		{ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAW", Limit: 10},
		{ChannelID: ch, Limit: 5, MaxBytes: 1}, // one item however large
	}
	for range 200 {
		f := HistoryFilter{ChannelID: ch, After: uint64(rng.IntN(n + 2)), Limit: 1 + rng.IntN(100)}
		if rng.IntN(2) == 0 {
			f.MaxBytes = rng.IntN(5000)
		}
		if rng.IntN(2) == 0 {
			f.Kinds = map[ops.Kind]bool{kinds[rng.IntN(3)]: true}
		}
		filters = append(filters, f)
	}
	for _, f := range filters {
		want, err := s.ReadHistory(f)
		if err != nil {
			t.Fatal(err)
		}
		got, page, err := s.AppendHistory([]byte("held["), f)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes := append([]byte("held["), bytes.Join(want.Items, []byte(","))...)
		if !bytes.Equal(got, wantBytes) || page.Count != len(want.Items) || page.NextAfter != want.NextAfter ||
			page.HasMore != want.HasMore || page.FirstSeq != want.FirstSeq {
			t.Fatalf("filter %+v: AppendHistory %+v %.120s, ReadHistory %d items, next_after %d, has_more %v, first_seq %d",
				f, page, got, len(want.Items), want.NextAfter, want.HasMore, want.FirstSeq)
		}
	}
}

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

// TestExpiredMessagesAreNotReplayed: a message whose ttl has passed is
// left out of the channel's history pages (the spec: expired messages are
// not delivered or replayed), by both reads, and paging goes on past it;
// one whose ttl is ahead, one without a ttl, and other kinds are in.
// Pruning reads the op_id of a message with a ttl as of any other.
func TestExpiredMessagesAreNotReplayed(t *testing.T) {
	s := open(t)
	b := s.NewBatch()
	msg := func(seq uint64, ttl string) {
		payload := `{"metadata":{"ttl":1},"title":"m` + fmt.Sprint(seq) + `"` + ttl + `}`
		raw := fmt.Sprintf(`{"v":1,"op":"message.create","channel_id":%q,"op_id":"o%d","entity_id":"m%d","accepted_at":1,"body_hash":"h","payload":%s}`, ch, seq, seq, payload)
		env := &ops.Envelope{V: 1, Op: ops.MessageCreate, ChannelID: ch, OpID: fmt.Sprintf("o%d", seq), EntityID: fmt.Sprintf("m%d", seq), Payload: []byte(payload)}
		b.AppendHistory(env, []byte(raw), seq)
		b.PutOp(env, seq)
	}
	msg(1, `,"ttl":2000`)
	msg(2, ``)
	msg(3, `,"ttl":5000`)
	msg(4, `,"ttl":1500`)
	if err := b.Commit(4); err != nil {
		t.Fatal(err)
	}
	titles := func(f HistoryFilter) string {
		t.Helper()
		p, err := s.ReadHistory(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, page, err := s.AppendHistory(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, bytes.Join(p.Items, []byte(","))) || page.NextAfter != p.NextAfter {
			t.Fatalf("AppendHistory %s (next %d), ReadHistory's %s (next %d)", raw, page.NextAfter, bytes.Join(p.Items, []byte(",")), p.NextAfter)
		}
		var out []string
		for _, it := range p.Items {
			i := bytes.Index(it, []byte(`"title":"`))
			out = append(out, string(it[i+9:i+11]))
		}
		return fmt.Sprint(out)
	}
	for _, c := range []struct {
		f    HistoryFilter
		want string
	}{
		{HistoryFilter{ChannelID: ch, Limit: 10}, "[m1 m2 m3 m4]"},
		{HistoryFilter{ChannelID: ch, Limit: 10, Now: 1000}, "[m1 m2 m3 m4]"},
		{HistoryFilter{ChannelID: ch, Limit: 10, Now: 2000}, "[m2 m3]"},
		{HistoryFilter{ChannelID: ch, Limit: 1, Now: 2000}, "[m2]"},
		{HistoryFilter{ChannelID: ch, After: 2, Limit: 10, Now: 6000}, "[]"},
		{HistoryFilter{ChannelID: ch, Limit: 10, Now: 2000, Kinds: map[ops.Kind]bool{ops.KindMessage: true}}, "[m2 m3]"},
	} {
		if got := titles(c.f); got != c.want {
			t.Errorf("after %d, limit %d, now %d: %s, want %s", c.f.After, c.f.Limit, c.f.Now, got, c.want)
		}
	}
	// Pruning the first three removes their op_id records, the one with a
	// ttl too.
	if _, _, err := s.Prune(4); err != nil {
		t.Fatal(err)
	}
	if n, err := s.OpChannels("o1", 10); err != nil || len(n) != 0 {
		t.Fatalf("op_id o1 after its prune: %v %v", n, err)
	}
}

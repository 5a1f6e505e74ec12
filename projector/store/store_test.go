package store

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ids(t *testing.T, items [][]byte, field string) []string {
	t.Helper()
	var out []string
	for _, it := range items {
		s := string(it)
		i := strings.Index(s, `"`+field+`":"`)
		if i < 0 {
			t.Fatalf("no %s in %s", field, s)
		}
		rest := s[i+len(field)+4:]
		out = append(out, rest[:strings.IndexByte(rest, '"')])
	}
	return out
}

func TestListPagesThroughIndexes(t *testing.T) {
	s := open(t)
	b := s.NewBatch()
	for i := 0; i < 25; i++ {
		th := &fold.Thing{ChannelID: ch, ThingID: fmt.Sprintf("t%02d", i), State: ops.ThingActive}
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 { // archive every fifth: the index entry moves
			arch := *th
			arch.State = ops.ThingArchived
			if err := b.PutThing(th, &arch); err != nil {
				t.Fatal(err)
			}
		}
		ev := &fold.Event{ChannelID: ch, EventID: fmt.Sprintf("e%02d", i), State: ops.EventOngoing, ThingID: fmt.Sprintf("t%02d", i%2)}
		if err := b.PutEvent(nil, ev); err != nil {
			t.Fatal(err)
		}
		b.PutHistory(ch, ops.KindThing, uint64(2*i+1), []byte(fmt.Sprintf(`{"seq":%d}`, 2*i+1)))
		b.PutHistory(ch, ops.KindMessage, uint64(2*i+2), []byte(fmt.Sprintf(`{"seq":%d}`, 2*i+2)))
	}
	if err := b.Commit(50); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Applied(); a != 50 {
		t.Fatalf("applied %d", a)
	}

	var all []string
	cursor := ""
	for {
		p, err := s.List(ListFilter{Kind: ops.KindThing, ChannelID: ch, State: ops.ThingActive, Cursor: cursor, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids(t, p.Items, "thing_id")...)
		if p.Cursor == "" {
			break
		}
		cursor = p.Cursor
	}
	if len(all) != 20 || all[0] != "t01" || all[19] != "t24" {
		t.Fatalf("active things paged as %v", all)
	}
	p, _ := s.List(ListFilter{Kind: ops.KindThing, ChannelID: ch, State: ops.ThingArchived, Limit: 100})
	if got := ids(t, p.Items, "thing_id"); fmt.Sprint(got) != "[t00 t05 t10 t15 t20]" || p.Cursor != "" {
		t.Fatalf("archived things %v cursor %q", got, p.Cursor)
	}
	p, _ = s.List(ListFilter{Kind: ops.KindEvent, ChannelID: ch, ThingID: "t01", State: ops.EventOngoing, Limit: 100})
	if len(p.Items) != 12 {
		t.Fatalf("events of t01: %d", len(p.Items))
	}
	p, _ = s.List(ListFilter{Kind: ops.KindThing, ChannelID: "7VNDECTMTAYVFHY2G194E2AY8Z", Limit: 100})
	if len(p.Items) != 0 {
		t.Fatal("another channel's things leaked into the listing")
	}

	h, err := s.History(ch, 10, 5, map[ops.Kind]bool{ops.KindMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids2(h.Items); got != "12,14,16,18,20" || h.NextAfter != 20 || !h.HasMore || h.FirstSeq != 1 {
		t.Fatalf("history %s next %d more %v first %d", got, h.NextAfter, h.HasMore, h.FirstSeq)
	}
	h, _ = s.History(ch, 45, 100, nil)
	if got := ids2(h.Items); got != "46,47,48,49,50" || h.HasMore {
		t.Fatalf("history tail %s more %v", got, h.HasMore)
	}
}

func ids2(items [][]byte) string {
	var out []string
	for _, it := range items {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(string(it), `{"seq":`), "}"))
	}
	return strings.Join(out, ",")
}

// TestListedSnapshotsMatchTheirIndex: a listing by state reads its index
// entries and the snapshots they name at one point of the store's
// history, so while the fold moves things between active and archived,
// every thing listed as active is active. Before, the snapshot was read
// after the index, and a commit between them listed a thing in the state
// it had just left.
func TestListedSnapshotsMatchTheirIndex(t *testing.T) {
	s := open(t)
	const things, commits = 20, 400
	cur := make([]*fold.Thing, things)
	b := s.NewBatch()
	for i := range cur {
		cur[i] = &fold.Thing{ChannelID: ch, ThingID: fmt.Sprintf("t%02d", i), State: ops.ThingActive}
		if err := b.PutThing(nil, cur[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
	folded := make(chan error, 1)
	go func() {
		for seq := uint64(2); seq < 2+commits; seq++ {
			b := s.NewBatch()
			for i, th := range cur {
				next := *th
				next.State = map[string]string{ops.ThingActive: ops.ThingArchived, ops.ThingArchived: ops.ThingActive}[th.State]
				if err := b.PutThing(th, &next); err != nil {
					folded <- err
					return
				}
				cur[i] = &next
			}
			if err := b.Commit(seq); err != nil {
				folded <- err
				return
			}
		}
		folded <- nil
	}()
	for {
		p, err := s.List(ListFilter{Kind: ops.KindThing, ChannelID: ch, State: ops.ThingActive, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			if !strings.Contains(string(it), `"state":"active"`) {
				<-folded
				t.Fatalf("listed as active: %s", it)
			}
		}
		select {
		case err := <-folded:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}

package store

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestSelectCacheKeepsAnswersUntilASelectorSeesAChange: a selection asked
// again reads nothing until a commit changes what a selector sees of one
// of the channel's Things (each such change below), and then answers the
// change; a change of other attrs, or of another channel's Things, keeps
// the answer.
func TestSelectCacheKeepsAnswersUntilASelectorSeesAChange(t *testing.T) {
	const other = "01BX5ZZKBKACTAV9WEVGEMMVRZ"
	s := open(t)
	things := map[string]*fold.Thing{}
	put := func(channel string, th fold.Thing) {
		t.Helper()
		th.ChannelID = channel
		if th.State == "" {
			th.State = ops.ThingActive
		}
		b := s.NewBatch()
		if err := b.PutThing(things[channel+th.ThingID], &th); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(1); err != nil {
			t.Fatal(err)
		}
		things[channel+th.ThingID] = &th
	}
	host := func(title string, attrs ...fold.Attr) fold.Thing {
		// attrs before "type": Attrs are sorted by name.
		return fold.Thing{ThingID: "h1", Title: title, Attrs: append(attrs, fold.Attr{Name: "type", Value: []byte(`"HOST"`)})}
	}
	const selector = `type(HOST),entityName.equals("web-1"),tag(prod)`
	selectIDs := func(wantCached bool) []string {
		t.Helper()
		res, err := s.Select(ch, selector, 10)
		if err != nil {
			t.Fatal(err)
		}
		if res.Cached != wantCached {
			t.Fatalf("cached answer: %v, want %v", res.Cached, wantCached)
		}
		return res.ThingIDs
	}
	want := func(got []string, ids ...string) {
		t.Helper()
		if !slices.Equal(got, ids) && !(len(got) == 0 && len(ids) == 0) {
			t.Fatalf("selected %v, want %v", got, ids)
		}
	}

	h := host("web-1")
	h.Tags = []string{"prod"}
	put(ch, h)
	want(selectIDs(false), "h1")
	want(selectIDs(true), "h1")

	// Attrs a selector does not read, and another channel's Things.
	h = host("web-1", fold.Attr{Name: "load", Value: []byte(`0.7`)})
	h.Tags = []string{"prod"}
	put(ch, h)
	put(other, host("web-1"))
	want(selectIDs(true), "h1")

	for i, step := range []struct {
		name  string
		thing func() fold.Thing
		ids   []string
	}{
		{"tags", func() fold.Thing { return host("web-1") }, nil},
		{"tags back", func() fold.Thing { h := host("web-1"); h.Tags = []string{"prod"}; return h }, []string{"h1"}},
		{"title", func() fold.Thing { h := host("web-2"); h.Tags = []string{"prod"}; return h }, nil},
		{"title back", func() fold.Thing { h := host("web-1"); h.Tags = []string{"prod"}; return h }, []string{"h1"}},
		{"archived", func() fold.Thing { h := host("web-1"); h.Tags, h.State = []string{"prod"}, ops.ThingArchived; return h }, nil},
		{"active", func() fold.Thing { h := host("web-1"); h.Tags = []string{"prod"}; return h }, []string{"h1"}},
		{"type", func() fold.Thing {
			return fold.Thing{ThingID: "h1", Title: "web-1", Tags: []string{"prod"}, Attrs: fold.Attrs{{Name: "type", Value: []byte(`"VM"`)}}}
		}, nil},
		{"type back", func() fold.Thing { h := host("web-1"); h.Tags = []string{"prod"}; return h }, []string{"h1"}},
		{"a new thing", func() fold.Thing {
			h := host("web-1")
			h.ThingID, h.Tags = "h0", []string{"prod"}
			return h
		}, []string{"h0", "h1"}},
		{"deleted", func() fold.Thing { h := host("web-1"); h.Tags, h.State = []string{"prod"}, ops.ThingDeleted; return h }, []string{"h0"}},
	} {
		put(ch, step.thing())
		t.Logf("step %d: %s", i, step.name)
		if got := selectIDs(false); !slices.Equal(got, step.ids) && len(got)+len(step.ids) > 0 {
			t.Fatalf("after %s: selected %v, want %v", step.name, got, step.ids)
		}
		selectIDs(true)
	}

	// A relationship: the answer of a selector through it changes when a
	// Thing declares it.
	const through = `type(HOST),fromRelationships.runsOn(type(HOST),entityName("web-1"))`
	put(ch, fold.Thing{ThingID: "s1", Title: "svc", Attrs: fold.Attrs{{Name: "type", Value: []byte(`"HOST"`)}}})
	first, err := s.Select(ch, through, 10)
	if err != nil || len(first.ThingIDs) != 0 {
		t.Fatalf("through a relationship nobody declares: %+v, %v", first, err)
	}
	put(ch, fold.Thing{ThingID: "s1", Title: "svc", Attrs: fold.Attrs{{Name: "relationships", Value: []byte(`{"runsOn":"h0"}`)},
		{Name: "type", Value: []byte(`"HOST"`)}}})
	if got, err := s.Select(ch, through, 10); err != nil || !slices.Equal(got.ThingIDs, []string{"s1"}) {
		t.Fatalf("after s1 declares runsOn h0: %+v, %v, want [s1]", got, err)
	}
}

// TestSelectCacheStaleEvaluationIsNotKept: an evaluation stamped before an
// invalidation of its channel is not kept, whether the channel had
// answers, had none, or got answers again from a later evaluation.
func TestSelectCacheStaleEvaluationIsNotKept(t *testing.T) {
	c := newSelectionCache(1 << 20)
	ans := Selection{ThingIDs: []string{"a"}}
	changed := map[string]struct{}{"c": {}}

	old := c.stamp()
	c.invalidate(changed) // no bucket for c yet
	c.put("c", "s", 1, ans, old)
	if _, ok := c.get("c", "s", 1); ok {
		t.Fatal("kept an evaluation stamped before the invalidation of a channel without answers")
	}

	old = c.stamp()
	c.put("c", "s", 1, ans, old)
	if _, ok := c.get("c", "s", 1); !ok {
		t.Fatal("an evaluation with no invalidation since its stamp was not kept")
	}
	older := c.stamp()
	c.invalidate(changed)
	if _, ok := c.get("c", "s", 1); ok {
		t.Fatal("an answer survived its channel's invalidation")
	}
	newer := c.stamp()
	c.put("c", "t", 1, ans, newer) // an answer of c evaluated after the invalidation
	c.put("c", "s", 1, ans, older)
	if _, ok := c.get("c", "s", 1); ok {
		t.Fatal("kept an evaluation stamped before the invalidation, beside one evaluated after it")
	}
	if _, ok := c.get("c", "t", 1); !ok {
		t.Fatal("the evaluation stamped after the invalidation was not kept")
	}

	// Another channel's invalidation keeps c's answers and lets c take an
	// evaluation stamped before it (a channel in another slot: two in one
	// slot drop each other's evaluations in flight).
	other := "d"
	for i := 0; c.slotOf(other) == c.slotOf("c"); i++ {
		other = fmt.Sprintf("d%d", i)
	}
	before := c.stamp()
	c.invalidate(map[string]struct{}{other: {}})
	c.put("c", "u", 1, ans, before)
	if _, ok := c.get("c", "u", 1); !ok {
		t.Fatal("another channel's invalidation dropped an evaluation of c")
	}
	if _, ok := c.get("c", "t", 1); !ok {
		t.Fatal("another channel's invalidation dropped c's answers")
	}
}

// TestSelectCacheBound: the cache holds at most its bound of bytes,
// whatever the channels, dropping answers to make room; it keeps no
// answer that selects too many.
func TestSelectCacheBound(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("01ARZ3NDEKTSV4RRFFQ69G%04d", i)
		}
		return out
	}
	const bound = 64 << 10
	c := newSelectionCache(bound)
	channels := 0 // held at once, at most
	for i := range 5000 {
		// Answers of one Thing to a thousand across seven channels.
		c.put(fmt.Sprintf("channel-%d", i%7), fmt.Sprintf("type(HOST),entityName(h%d)", i), 1000, Selection{ThingIDs: ids(1 + i%1000)}, c.stamp())
		held := len(c.byChannel) * channelSetBytes
		for k, a := range c.answers {
			held += a.bytes
			if _, ok := c.byChannel[k.channelID][k]; !ok {
				t.Fatalf("answer %v not listed under its channel", k)
			}
		}
		for ch, keys := range c.byChannel {
			if len(keys) == 0 {
				t.Fatalf("channel %s listed with no answer", ch)
			}
			for k := range keys {
				if _, ok := c.answers[k]; !ok {
					t.Fatalf("channel %s lists %v, which is not held", ch, k)
				}
			}
		}
		if held != c.bytes || held > bound {
			t.Fatalf("after %d answers: holds %d bytes (counted %d), bound %d", i+1, held, c.bytes, bound)
		}
		channels = max(channels, len(c.byChannel))
	}
	if len(c.answers) == 0 || channels < 7 {
		t.Fatalf("holds %d answers, and held answers of at most %d channels at once of 7", len(c.answers), channels)
	}
	c.put("channel-0", "type(HOST)", 2000, Selection{ThingIDs: ids(2000)}, c.stamp())
	if _, ok := c.get("channel-0", "type(HOST)", 2000); ok {
		t.Fatal("kept an answer larger than the bound")
	}
	c.put("channel-0", "type(HOST)", 1000, Selection{ThingIDs: ids(10), TooMany: true}, c.stamp())
	if _, ok := c.get("channel-0", "type(HOST)", 1000); ok {
		t.Fatal("kept an answer that selects too many")
	}
}

// TestSelectCacheMatchesEvaluationUnderCommits: with commits of random
// Thing changes going on, every Select answered while no commit happened
// equals a fresh evaluation of the same store, and a Select after a
// commit sees it. The stale evaluation a racing commit would leave in the
// cache shows up as a difference in a later quiet window.
func TestSelectCacheMatchesEvaluationUnderCommits(t *testing.T) {
	s := open(t)
	selectors := []string{
		`type(HOST)`,
		`type(HOST),entityName.equals("n1")`,
		`type(HOST),entityName.startsWith("n")`,
		`type(VM),tag(prod)`,
		`entityId("t1","t2","t3")`,
		`type(HOST),fromRelationships.runsOn(type(VM))`,
		`type(VM),toRelationships.runsOn(type(HOST),tag(prod))`,
		`type(DATABASE)`,
	}
	// started and finished count the commits begun and returned: a
	// commit is visible in Pebble before it returns, its invalidation
	// only just before.
	var started, finished atomic.Uint64
	var selects atomic.Uint64 // Select calls made
	done := make(chan struct{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // a failed comparison ends the test early
	wg.Go(func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, 2))
		prev := map[string]*fold.Thing{}
		for n := range 400 {
			if stop.Load() {
				return
			}
			b := s.NewBatch()
			for range 1 + rng.IntN(3) {
				id := fmt.Sprintf("t%d", rng.IntN(8))
				next := &fold.Thing{ChannelID: ch, ThingID: id, Title: fmt.Sprintf("n%d", rng.IntN(3)),
					State: []string{ops.ThingActive, ops.ThingActive, ops.ThingArchived, ops.ThingDeleted}[rng.IntN(4)],
					Attrs: fold.Attrs{{Name: "load", Value: fmt.Appendf(nil, "%d", rng.IntN(100))}}}
				if rng.IntN(3) > 0 {
					next.Tags = []string{"prod"}
				}
				next.Attrs = append(next.Attrs, fold.Attr{Name: "relationships", Value: fmt.Appendf(nil, `{"runsOn":"t%d"}`, rng.IntN(8))})
				next.Attrs = append(next.Attrs, fold.Attr{Name: "type", Value: []byte([]string{`"HOST"`, `"VM"`}[rng.IntN(2)])})
				if err := b.PutThing(prev[id], next); err != nil {
					t.Error(err)
					return
				}
				prev[id] = next
			}
			started.Add(1)
			if err := b.Commit(uint64(n + 1)); err != nil {
				t.Error(err)
				return
			}
			finished.Add(1)
			// Let the reader select a few times, in the quiet after this
			// commit or overlapping the next.
			for target := selects.Load() + rng.Uint64N(4); selects.Load() < target && !stop.Load(); {
				runtime.Gosched()
			}
		}
	})
	compared := 0
	for i := 0; ; i++ {
		select {
		case <-done:
			wg.Wait()
			if compared == 0 {
				t.Fatal("no selection was compared")
			}
			t.Logf("%d selections compared in quiet windows", compared)
			return
		default:
		}
		selector := selectors[i%len(selectors)]
		before := started.Load()
		quiet := finished.Load() == before
		got, err := s.Select(ch, selector, 5)
		selects.Add(1)
		if err != nil {
			t.Fatal(err)
		}
		sel, perr := entityselector.Parse(selector)
		if perr != nil {
			t.Fatal(perr)
		}
		fresh, err := s.SelectThings(ch, sel, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !quiet || finished.Load() != before || started.Load() != before {
			continue // a commit during the two: they may see different states
		}
		compared++
		got.Stats, got.Cached, fresh.Stats = SelectStats{}, false, SelectStats{}
		if !reflect.DeepEqual(got, fresh) {
			t.Fatalf("%s after %d commits: Select answered %+v, a fresh evaluation %+v", selector, before, got, fresh)
		}
	}
}

// TestSelectCacheOff: with a negative SelectionCacheBytes (the gateway's
// PUSHGO_SELECTION_CACHE=0) every selection is evaluated.
func TestSelectCacheOff(t *testing.T) {
	s, err := Open("", Options{InMemory: true, SelectionCacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b := s.NewBatch()
	if err := b.PutThing(nil, &fold.Thing{ChannelID: ch, ThingID: "h1", Title: "web-1", State: ops.ThingActive,
		Attrs: fold.Attrs{{Name: "type", Value: []byte(`"HOST"`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := s.Select(ch, `type(HOST)`, 10)
		if err != nil || res.Cached || !slices.Equal(res.ThingIDs, []string{"h1"}) {
			t.Fatalf("with the cache off: %+v, %v", res, err)
		}
	}
}

// TestSelectCacheGroupCommit: a group commit (the fold's, one batch per
// partition, sealed and committed together) drops the answers of every
// channel any of its parts changed.
func TestSelectCacheGroupCommit(t *testing.T) {
	const other = "01BX5ZZKBKACTAV9WEVGEMMVRZ"
	s := open(t)
	thing := func(channel, title string) *fold.Thing {
		return &fold.Thing{ChannelID: channel, ThingID: "h1", Title: title, State: ops.ThingActive,
			Attrs: fold.Attrs{{Name: "type", Value: []byte(`"HOST"`)}}}
	}
	prev := map[string]*fold.Thing{ch: thing(ch, "a"), other: thing(other, "a")}
	b := s.NewBatch()
	for _, th := range prev {
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
	for channel := range prev {
		for range 2 {
			if res, err := s.Select(channel, `type(HOST),entityName.equals(a)`, 10); err != nil || len(res.ThingIDs) != 1 {
				t.Fatalf("%s before: %+v, %v", channel, res, err)
			}
		}
	}
	var parts []*Batch
	for i, channel := range []string{ch, other} {
		p := s.NewBatchWith(NewCache(100, DefaultCachedSnapshotBytes, nil))
		if err := p.PutThing(prev[channel], thing(channel, "b")); err != nil {
			t.Fatal(err)
		}
		p.Seal(uint64(i + 1))
		parts = append(parts, p)
	}
	if err := s.CommitGroup(parts, 2); err != nil {
		t.Fatal(err)
	}
	for channel := range prev {
		res, err := s.Select(channel, `type(HOST),entityName.equals(a)`, 10)
		if err != nil || res.Cached || len(res.ThingIDs) != 0 {
			t.Errorf("%s after the group renamed h1: %+v, %v, want an evaluation selecting nothing", channel, res, err)
		}
	}
}

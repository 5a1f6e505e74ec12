package e2e

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNewDevicePath is the acceptance check of the read side (spec §7): a
// device that subscribes to a busy channel lists the current Things and the
// open Events, pages the whole history, then follows the channel stream from
// a resume point into live operations, and sees exactly what was written.
func TestNewDevicePath(t *testing.T) {
	t.Parallel()
	const (
		workers    = 8
		perWorker  = 625 // 5,000 operations
		thingsEach = 25  // 200 things
		eventsEach = 25  // 200 events
	)
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	c := chanCred{Password: "new-device-" + randomHex(t, 8)}
	c.ID = createChannel(t, g, "new-device", c.Password)

	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	w := newWorkload(g, workloadConfig{
		Name: "nd", Channels: []chanCred{c}, Workers: workers, Ops: perWorker, Seed: seed,
		Things: thingsEach, Events: eventsEach, Deletes: 2, Closes: 8, FrontLoad: true,
		Weights: map[string]int{"thing.archive": 3, "message": 25},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a safety cap: on a loaded machine 5,000 operations can take minutes
	defer cancel()
	start := time.Now()
	acked := w.run(ctx)
	for _, f := range w.failures() {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	if acked != workers*perWorker {
		t.Fatalf("%d operations acknowledged, want %d", acked, workers*perWorker)
	}
	counts := map[string]int{}
	for _, op := range w.acked {
		counts[op.Op]++
	}
	t.Logf("%d operations in %s: %v", acked, time.Since(start).Round(time.Millisecond), counts)

	// Current things and open events, paged by 100.
	var wantThings, wantEvents []*entity
	for _, e := range w.entities() {
		switch {
		case e.Kind == "thing" && e.State == "active":
			wantThings = append(wantThings, e)
		case e.Kind == "event" && e.State == "ONGOING":
			wantEvents = append(wantEvents, e)
		}
	}
	if len(w.things) != workers*thingsEach || len(w.events) != workers*eventsEach {
		t.Fatalf("test bug: %d things and %d events created", len(w.things), len(w.events))
	}
	if len(wantThings) == len(w.things) || len(wantEvents) == len(w.events) {
		t.Fatalf("test bug: every thing active or every event ongoing; the state filter would not be tested")
	}
	checkListing(t, g, c, "/channel/things", "active", wantThings)
	checkListing(t, g, c, "/channel/events", "ONGOING", wantEvents)

	// The whole history, paged by 1000.
	history := pageHistory(t, g, c, 0)
	if len(history) != acked {
		t.Errorf("/channel/history holds %d items; %d operations were acknowledged", len(history), acked)
	}
	ackByOp := map[string]ackedOp{}
	for _, op := range w.acked {
		ackByOp[op.OpID] = op
	}
	seenOps := map[string]bool{}
	for i, it := range history {
		op := it.body["op_id"].(string)
		a, ok := ackByOp[op]
		switch {
		case !ok:
			t.Errorf("history item %d (seq %d): op_id %q was never acknowledged", i, it.seq, op)
		case seenOps[op]:
			t.Errorf("history item %d (seq %d): op_id %q appears twice", i, it.seq, op)
		case it.body["op"] != a.Op || it.body["entity_id"] != a.EntityID || it.body["entity_type"] != strings.SplitN(a.Op, ".", 2)[0]:
			t.Errorf("history item %d (seq %d): op %v entity_type %v entity_id %v; the acknowledged %s was %s on %s",
				i, it.seq, it.body["op"], it.body["entity_type"], it.body["entity_id"], op, a.Op, a.EntityID)
		}
		seenOps[op] = true
	}
	// No gap relative to the log: this is the gateway's only channel, so the
	// history is the whole stream.
	stream := readOps(t, g.natsURL)
	if len(stream) != len(history) {
		t.Errorf("PUSHGO_OPS holds %d operations, the channel history %d", len(stream), len(history))
	}
	for i := range min(len(stream), len(history)) {
		if stream[i].Seq != history[i].seq || stream[i].OpID != history[i].body["op_id"] {
			t.Fatalf("history item %d is seq %d op_id %v; the stream's %d-th operation is seq %d op_id %s",
				i, history[i].seq, history[i].body["op_id"], i, stream[i].Seq, stream[i].OpID)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Resume the channel stream in the middle: exactly the operations after
	// the resume point, in order, as the history has them.
	mid := len(history) / 2
	resume := history[mid-1].seq
	sse := openSSE(t, g, c, strconv.FormatUint(resume, 10), 60*time.Second)
	for i, want := range history[mid:] {
		ev := sse.next(t, 15*time.Second)
		if err := sameStreamItem(ev, want); err != nil {
			t.Fatalf("stream from Last-Event-ID %d, event %d: %v", resume, i, err)
		}
	}
	t.Logf("stream replayed %d operations after Last-Event-ID %d", len(history)-mid, resume)

	// Then live: five new operations arrive on the same stream, in order.
	lastSeq := history[len(history)-1].seq
	thing := wantThings[0]
	var sent []string
	for i := range 5 {
		opID := fmt.Sprintf("nd-live-%d", i)
		body := map[string]any{"channel_id": c.ID, "password": c.Password, "op_id": opID}
		path := "/message"
		if i%2 == 1 {
			path = "/thing/update"
			body["thing_id"], body["observed_at"], body["attrs"] = thing.ID, 1713790000000+int64(i), map[string]any{"live": i}
		} else {
			body["title"] = fmt.Sprintf("live %d", i)
		}
		if _, err := okAny(g.Post(t, path, mustJSON(t, body))); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, opID)
	}
	live := pageHistory(t, g, c, lastSeq)
	if len(live) != 5 {
		t.Fatalf("history after %d holds %d items, want the 5 live operations", lastSeq, len(live))
	}
	for i, want := range live {
		if want.body["op_id"] != sent[i] {
			t.Fatalf("history after %d: item %d has op_id %v, want %s", lastSeq, i, want.body["op_id"], sent[i])
		}
		ev := sse.next(t, 10*time.Second)
		if err := sameStreamItem(ev, want); err != nil {
			t.Fatalf("live event %d: %v", i, err)
		}
	}
	// Nothing more: no duplicate, no stray event. A sentinel written now
	// is the stream's next event; anything else before it is one too many.
	if _, err := okAny(g.Post(t, "/message", mustJSON(t, map[string]any{"channel_id": c.ID, "password": c.Password,
		"op_id": "nd-sentinel", "title": "sentinel"}))); err != nil {
		t.Fatal(err)
	}
	sentinel := pageHistory(t, g, c, live[len(live)-1].seq)
	if len(sentinel) != 1 || sentinel[0].body["op_id"] != "nd-sentinel" {
		t.Fatalf("history after the live operations: %d items, want the sentinel alone", len(sentinel))
	}
	if err := sameStreamItem(sse.next(t, 10*time.Second), sentinel[0]); err != nil {
		t.Errorf("the event after the live operations is not the sentinel (a duplicate or a stray event): %v", err)
	}
	sse.close()
}

// historyItem is one decoded /channel/history item.
type historyItem struct {
	seq  uint64
	body map[string]any
}

// pageHistory pages /channel/history from after with limit 1000 until
// has_more is false, checking the page shapes, strictly increasing
// sequences and first_seq.
func pageHistory(t *testing.T, g *gateway, c chanCred, after uint64) []historyItem {
	t.Helper()
	var out []historyItem
	var firstSeq uint64
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("/channel/history: more than 100 pages; next_after does not advance?")
		}
		r := g.Post(t, "/channel/history", mustJSON(t, map[string]any{"channel_id": c.ID, "password": c.Password, "after": after, "limit": 1000}))
		data := mustOK(t, r, "items", "next_after", "has_more", "first_seq")
		items, ok := data["items"].([]any)
		if !ok {
			t.Fatalf("/channel/history after %d: items is %T, want an array: %s", after, data["items"], r)
		}
		if len(items) > 1000 {
			t.Fatalf("/channel/history after %d with limit 1000: %d items", after, len(items))
		}
		fs, ok := asUint(data["first_seq"])
		if !ok {
			t.Fatalf("/channel/history: first_seq %v is not a number", data["first_seq"])
		}
		if page == 0 {
			firstSeq = fs
		} else if fs != firstSeq {
			t.Errorf("/channel/history: first_seq changed from %d to %d between pages", firstSeq, fs)
		}
		for _, raw := range items {
			m, ok := raw.(map[string]any)
			if !ok {
				t.Fatalf("/channel/history: item is %T: %s", raw, r)
			}
			seq, ok := asUint(m["seq"])
			if !ok {
				t.Fatalf("/channel/history: item seq %v: %s", m["seq"], r)
			}
			if seq <= after || (len(out) > 0 && seq <= out[len(out)-1].seq) {
				prev := after
				if len(out) > 0 {
					prev = out[len(out)-1].seq
				}
				t.Fatalf("/channel/history page %d: seq %d does not follow %d (after %d)", page, seq, prev, after)
			}
			if len(out) > 0 && after == 0 && seq != out[len(out)-1].seq+1 {
				t.Errorf("/channel/history: gap between seq %d and %d on the only channel of the gateway", out[len(out)-1].seq, seq)
			}
			if len(out) == 0 && after == 0 && seq != firstSeq {
				t.Errorf("/channel/history: first item has seq %d, first_seq is %d", seq, firstSeq)
			}
			out = append(out, historyItem{seq: seq, body: m})
		}
		next, ok := asUint(data["next_after"])
		if !ok {
			t.Fatalf("/channel/history: next_after %v: %s", data["next_after"], r)
		}
		if data["has_more"] != true {
			if data["has_more"] != false {
				t.Fatalf("/channel/history: has_more %v is not a boolean", data["has_more"])
			}
			return out
		}
		if next <= after || len(items) == 0 {
			t.Fatalf("/channel/history: has_more with next_after %d after %d and %d items", next, after, len(items))
		}
		after = next
	}
}

// sameStreamItem checks one SSE event against the history item it must be.
func sameStreamItem(ev sseEvent, want historyItem) error {
	if ev.ID != strconv.FormatUint(want.seq, 10) {
		return fmt.Errorf("id %q, want %d (op_id %v)", ev.ID, want.seq, want.body["op_id"])
	}
	if ev.Event != want.body["op"] {
		return fmt.Errorf("seq %d: event %q, want %v", want.seq, ev.Event, want.body["op"])
	}
	got, err := decodeObject([]byte(ev.Data))
	if err != nil {
		return fmt.Errorf("seq %d: data is not a JSON object: %v: %s", want.seq, err, ev.Data)
	}
	if !reflect.DeepEqual(got, want.body) {
		return fmt.Errorf("seq %d: data %s differs from the history item %s", want.seq, ev.Data, mustJSON(nil, want.body))
	}
	return nil
}

// checkListing pages a listing route with state and limit 100 until
// next_cursor is empty and compares it with the model.
func checkListing(t *testing.T, g *gateway, c chanCred, path, state string, want []*entity) {
	t.Helper()
	byID := map[string]*entity{}
	for _, e := range want {
		byID[e.ID] = e
	}
	idKey := strings.TrimSuffix(strings.TrimPrefix(path, "/channel/"), "s") + "_id"
	seen := map[string]bool{}
	cursor := ""
	bad := 0
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("%s: more than 100 pages; the cursor does not advance?", path)
		}
		body := map[string]any{"channel_id": c.ID, "password": c.Password, "state": state, "limit": 100}
		if cursor != "" {
			body["cursor"] = cursor
		}
		r := g.Post(t, path, mustJSON(t, body))
		data := mustOK(t, r, "items", "next_cursor", "has_more")
		items, ok := data["items"].([]any)
		if !ok || len(items) > 100 {
			t.Fatalf("%s: items %T of %d with limit 100: %s", path, data["items"], len(items), r)
		}
		next, ok := data["next_cursor"].(string)
		if !ok {
			t.Fatalf("%s: next_cursor %v is not a string", path, data["next_cursor"])
		}
		if data["has_more"] != (next != "") {
			t.Errorf("%s: has_more %v with next_cursor %q", path, data["has_more"], next)
		}
		for _, raw := range items {
			m, _ := raw.(map[string]any)
			id, _ := m[idKey].(string)
			switch e := byID[id]; {
			case seen[id]:
				t.Errorf("%s: %s %s listed twice", path, idKey, id)
			case e == nil:
				t.Errorf("%s state %s lists %s %s (state %v), which the test does not expect there", path, state, idKey, id, m["state"])
			default:
				if err := checkSnapshot(e, m); err != nil {
					if bad++; bad <= 5 {
						t.Errorf("%s: %v", path, err)
					}
				}
			}
			seen[id] = true
		}
		if next == "" {
			break
		}
		if next == cursor {
			t.Fatalf("%s: next_cursor %q does not advance", path, next)
		}
		cursor = next
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if !seen[id] {
			t.Errorf("%s state %s: %s %s (version %d) is missing", path, state, idKey, id, byID[id].Version)
		}
	}
	t.Logf("%s state %s: %d items as expected (%d wrong)", path, state, len(seen), bad)
}

package ingest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

func TestIdempotentRetries(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("idem")

	// A create retried with the same op_id and body: same data, one append.
	first := mustOK(t, g.post("/event/create", eventCreate(ch, "op_id", "op-20260422-001")))
	again := mustOK(t, g.post("/event/create", eventCreate(ch, "op_id", "op-20260422-001")))
	if first.Str("event_id") != again.Str("event_id") || again.Str("op_id") != "op-20260422-001" {
		t.Fatalf("retry answered differently: %s vs %s", first.Body, again.Body)
	}
	if n := len(streamOps(t, g.nc)); n != 1 {
		t.Fatalf("stream has %d operations after a retried create, want 1", n)
	}
	// Same op_id, different body: conflict, nothing appended.
	r := g.post("/event/create", eventCreate(ch, "op_id", "op-20260422-001", "message", "other"))
	if r.Status != 409 || r.Code() != "op_id_conflict" {
		t.Fatalf("different body: %d %s", r.Status, r.Body)
	}
	ev := first.Str("event_id")

	// An update, then a later update; the first update's retry still
	// answers 200 (dedup window) and appends nothing.
	u1 := mustOK(t, g.post("/event/update", eventUpdate(ch, ev, "op_id", "u-1")))
	mustOK(t, g.post("/event/update", eventUpdate(ch, ev, "op_id", "u-2", "message", "more")))
	if u := mustOK(t, g.post("/event/update", eventUpdate(ch, ev, "op_id", "u-1"))); u.Str("op_id") != u1.Str("op_id") {
		t.Fatalf("update retry: %s", u.Body)
	}
	if r := g.post("/event/update", eventUpdate(ch, ev, "op_id", "u-1", "message", "changed")); r.Code() != "op_id_conflict" {
		t.Fatalf("update retry with other body: %d %s", r.Status, r.Body)
	}
	// The create retried after later updates still lands on the same event.
	if c := mustOK(t, g.post("/event/create", eventCreate(ch, "op_id", "op-20260422-001"))); c.Str("event_id") != ev {
		t.Fatalf("late create retry made another event: %s", c.Body)
	}

	// Close, then retries of the close and of an earlier update: the
	// event is closed, but these op_ids were accepted before.
	closeBody := body(ch, "event_id", ev, "status", "success", "message", "done", "severity", "normal", "event_time", 1713750600, "op_id", "c-1")
	mustOK(t, g.post("/event/close", closeBody))
	mustOK(t, g.post("/event/close", closeBody))
	mustOK(t, g.post("/event/update", eventUpdate(ch, ev, "op_id", "u-2", "message", "more")))
	// A new update after close is refused.
	if r := g.post("/event/update", eventUpdate(ch, ev, "op_id", "u-3")); r.Status != 409 || r.Code() != "event_closed" {
		t.Fatalf("update after close: %d %s", r.Status, r.Body)
	}
	if r := g.post("/event/update", eventUpdate(ch, ev)); r.Status != 409 || r.Code() != "event_closed" {
		t.Fatalf("update after close without op_id: %d %s", r.Status, r.Body)
	}
	got := streamOps(t, g.nc)
	var names []ops.Name
	for _, m := range got {
		names = append(names, envelopeOf(t, m).Op)
	}
	want := []ops.Name{ops.EventCreate, ops.EventUpdate, ops.EventUpdate, ops.EventClose}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("stream holds %v, want %v", names, want)
	}
}

func TestThingLifecycleAndLinks(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("things")

	th := mustOK(t, g.post("/thing/create", body(ch, "title", "NAS", "observed_at", 1713750000000))).Str("thing_id")
	// An event or message may link only to an existing thing.
	ev := eventCreate(ch, "thing_id", "no-such-thing")
	if r := g.post("/event/create", ev); r.Status != 404 || r.Code() != "thing_not_found" {
		t.Fatalf("link to unknown thing: %d %s", r.Status, r.Body)
	}
	mustOK(t, g.post("/event/create", eventCreate(ch, "thing_id", th)))
	mustOK(t, g.post("/message", body(ch, "title", "disk failed", "thing_id", th, "occurred_at", 1713750000)))
	mustOK(t, g.post("/thing/archive", body(ch, "thing_id", th, "observed_at", 1713750100000)))
	// An update re-activates an archived thing (as PushGo).
	mustOK(t, g.post("/thing/update", body(ch, "thing_id", th, "observed_at", 1713750200000, "attrs", map[string]any{"online": true})))
	mustOK(t, g.post("/thing/delete", body(ch, "thing_id", th, "observed_at", 1713750300000)))
	for _, path := range []string{"/thing/update", "/thing/archive", "/thing/delete"} {
		if r := g.post(path, body(ch, "thing_id", th, "observed_at", 1713750400000)); r.Status != 409 || r.Code() != "thing_deleted" {
			t.Fatalf("%s on deleted thing: %d %s", path, r.Status, r.Body)
		}
	}
	if r := g.post("/event/create", eventCreate(ch, "thing_id", th)); r.Status != 409 || r.Code() != "thing_deleted" {
		t.Fatalf("event linked to deleted thing: %d %s", r.Status, r.Body)
	}
	if r := g.post("/thing/update", body(ch, "thing_id", "unknown", "observed_at", 1713750400000)); r.Status != 404 || r.Code() != "thing_not_found" {
		t.Fatalf("unknown thing: %d %s", r.Status, r.Body)
	}
}

// A retry of an operation linked to a Thing deleted since it was stored
// answers as the first time and appends nothing, as any retry: the
// client whose answer was lost learns that it was applied, not that it
// was refused. A new operation with the same link is refused. Also for a
// writer that never saw the original (another ingest process).
func TestRetryLinkedToADeletedThingAnswersAsTheFirstTime(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("links")

	th := mustOK(t, g.post("/thing/create", body(ch, "title", "NAS", "observed_at", 1713750000000))).Str("thing_id")
	create := eventCreate(ch, "thing_id", th, "op_id", "ev-1")
	ev := mustOK(t, g.post("/event/create", create)).Str("event_id")
	update := eventUpdate(ch, ev, "thing_id", th, "op_id", "up-1")
	mustOK(t, g.post("/event/update", update))
	later := eventUpdate(ch, ev, "thing_id", th, "op_id", "up-2", "message", "later")
	mustOK(t, g.post("/event/update", later))
	msg := body(ch, "title", "disk failed", "thing_id", th, "occurred_at", 1713750000, "op_id", "msg-1")
	msgID := mustOK(t, g.post("/message", msg)).Str("message_id")
	mustOK(t, g.post("/thing/delete", body(ch, "thing_id", th, "observed_at", 1713750300000)))
	stored := len(streamOps(t, g.nc))

	other := startIngest(t, b, ingest.Config{})
	for _, w := range []*gw{g, other} {
		if r := mustOK(t, w.post("/event/create", create)); r.Str("event_id") != ev || r.Str("op_id") != "ev-1" {
			t.Fatalf("create retried after its thing's deletion: %s", r.Body)
		}
		// The event's latest operation, and one before it (dedup window).
		for _, u := range []map[string]any{later, update} {
			if r := mustOK(t, w.post("/event/update", u)); r.Str("op_id") != u["op_id"] {
				t.Fatalf("update retried after its thing's deletion: %s", r.Body)
			}
		}
		if r := mustOK(t, w.post("/message", msg)); r.Str("message_id") != msgID {
			t.Fatalf("message retried after its thing's deletion: %s (first %s)", r.Body, msgID)
		}
		// The same op_id with another body is still a conflict.
		if r := w.post("/event/update", eventUpdate(ch, ev, "thing_id", th, "op_id", "up-1", "message", "changed")); r.Code() != "op_id_conflict" {
			t.Fatalf("update retried with another body: %d %s", r.Status, r.Body)
		}
	}
	// New operations linking to the deleted thing are refused.
	for _, c := range []struct {
		path, code string
		body       map[string]any
	}{
		{"/event/create", "thing_deleted", eventCreate(ch, "thing_id", th, "op_id", "ev-2")},
		{"/event/create", "thing_deleted", eventCreate(ch, "thing_id", th)},
		{"/event/update", "thing_deleted", eventUpdate(ch, ev, "thing_id", th, "op_id", "up-3")},
		{"/message", "thing_deleted", body(ch, "title", "again", "thing_id", th, "occurred_at", 1713750000, "op_id", "msg-2")},
		{"/event/create", "thing_not_found", eventCreate(ch, "thing_id", "never-there", "op_id", "ev-3")},
	} {
		if r := g.post(c.path, c.body); r.Code() != c.code {
			t.Fatalf("%s linked to %v: %d %s, want %s", c.path, c.body["thing_id"], r.Status, r.Body, c.code)
		}
	}
	if n := len(streamOps(t, g.nc)); n != stored {
		t.Fatalf("stream has %d operations after the retries and refusals, want %d", n, stored)
	}
}

// An op_id's scope is its channel and route: a sender that uses one op_id
// (its deployment's id) for an event's create, update and close gets each
// appended once, whichever operation is the event's latest, and each
// retried answered as the first time; the same op_id on /thing/create makes
// a Thing of its own.
func TestOpIDScopeIsTheRoute(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("scope")

	create := eventCreate(ch, "op_id", "deploy-7")
	ev := mustOK(t, g.post("/event/create", create)).Str("event_id")
	update := eventUpdate(ch, ev, "op_id", "deploy-7", "message", "halfway")
	closeBody := body(ch, "event_id", ev, "status", "success", "message", "done", "severity", "normal", "event_time", 1713750600, "op_id", "deploy-7")
	other := startIngest(t, b, ingest.Config{})
	for _, step := range []struct {
		path string
		body map[string]any
	}{{"/event/update", update}, {"/event/close", closeBody}} {
		if r := mustOK(t, g.post(step.path, step.body)); r.Str("event_id") != ev || r.Str("op_id") != "deploy-7" {
			t.Fatalf("%s with its create's op_id: %s", step.path, r.Body)
		}
		for _, w := range []*gw{g, other} {
			mustOK(t, w.post(step.path, step.body))
			mustOK(t, w.post("/event/create", create))
		}
	}
	th := mustOK(t, g.post("/thing/create", body(ch, "title", "NAS", "observed_at", 1713750000000, "op_id", "deploy-7"))).Str("thing_id")
	if th == ev {
		t.Fatalf("/thing/create with the event's op_id answered the event's id %s", ev)
	}
	var names []ops.Name
	for _, m := range streamOps(t, g.nc) {
		names = append(names, envelopeOf(t, m).Op)
	}
	want := []ops.Name{ops.EventCreate, ops.EventUpdate, ops.EventClose, ops.ThingCreate}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("stream holds %v, want %v", names, want)
	}
}

// TestAppsCloseAnEventOfAThing: the PushGo apps close an event that has a
// thing_id through /thing/{thing_id}/event/close (later PushGo's route),
// the Android app (1.2.2, ChannelSubscriptionRepository.kt) with no
// event_time, the Apple app (AppEnvironment.swift) with event_time in
// seconds and empty attrs. Both close the event; a body that names
// another Thing than the path is refused and changes nothing, and so is a
// path whose Thing is no id, unknown or deleted.
func TestAppsCloseAnEventOfAThing(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("apps")
	th := mustOK(t, g.post("/thing/create", body(ch, "title", "NAS", "observed_at", 1713750000000))).Str("thing_id")
	other := mustOK(t, g.post("/thing/create", body(ch, "title", "Router", "observed_at", 1713750000000))).Str("thing_id")

	// Opened through the path, the body naming no thing_id: linked to it.
	android := mustOK(t, g.post("/thing/"+th+"/event/create", eventCreate(ch))).Str("event_id")
	apple := mustOK(t, g.post("/event/create", eventCreate(ch, "thing_id", th))).Str("event_id")
	if r := g.post("/thing/"+other+"/event/close", body(ch, "event_id", apple, "thing_id", th, "status", "closed",
		"message", "closed", "severity", "normal", "event_time", 1713750600)); r.Status != 400 || r.Code() != "invalid_thing_id" {
		t.Fatalf("close whose body names another thing than the path: %d %s", r.Status, r.Body)
	}
	// An update through another Thing's path that names no thing_id
	// leaves the event where it is: the path alone moves nothing.
	mustOK(t, g.post("/thing/"+other+"/event/update", eventUpdate(ch, apple, "message", "progress")))
	moved := streamOps(t, g.nc)
	var up struct {
		ThingID *string `json:"thing_id"`
	}
	if err := json.Unmarshal(envelopeOf(t, moved[len(moved)-1]).Payload, &up); err != nil || up.ThingID != nil {
		t.Fatalf("update through another Thing's path: thing_id %v (%v), want none (the link kept)", up.ThingID, err)
	}
	// The path's Thing is checked as a link is, though it links nothing:
	// an id that is none, a Thing unknown, a Thing deleted are refused and
	// append nothing (each used to be accepted, the path ignored).
	gone := mustOK(t, g.post("/thing/create", body(ch, "title", "Old", "observed_at", 1713750000000))).Str("thing_id")
	mustOK(t, g.post("/thing/delete", body(ch, "thing_id", gone, "observed_at", 1713750300000)))
	stored := len(streamOps(t, g.nc))
	for _, tc := range []struct{ path, status, code string }{
		{"/thing/%E2%80%AE%20bad%2F..%20x/event/update", "400", "invalid_thing_id"},
		{"/thing/" + strings.Repeat("x", 65) + "/event/update", "400", "invalid_thing_id"},
		{"/thing/nope/event/update", "404", "thing_not_found"},
		{"/thing/" + gone + "/event/update", "409", "thing_deleted"},
		{"/thing/nope/event/close", "404", "thing_not_found"},
	} {
		if r := g.post(tc.path, eventUpdate(ch, apple)); fmt.Sprint(r.Status) != tc.status || r.Code() != tc.code {
			t.Errorf("%s naming no thing_id: %d %s, want %s %s", tc.path, r.Status, r.Body, tc.status, tc.code)
		}
	}
	if n := len(streamOps(t, g.nc)); n != stored {
		t.Fatalf("the refused requests appended %d operations", n-stored)
	}
	mustOK(t, g.post("/thing/"+th+"/event/close", body(ch, "op_id", "6f1c0e2a9b8d4c3e8a7b6c5d4e3f2a1b", "event_id", android,
		"status", "closed", "message", "closed", "severity", "normal", "thing_id", th)))
	mustOK(t, g.post("/thing/"+th+"/event/close", body(ch, "op_id", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "event_id", apple,
		"event_time", time.Now().Unix(), "status", "closed", "message", "closed", "attrs", map[string]any{}, "thing_id", th, "severity", "normal")))

	logged := streamOps(t, g.nc)
	if len(logged) != stored+2 {
		t.Fatalf("stream has %d operations after the two closes, want %d", len(logged), stored+2)
	}
	for _, m := range logged[stored:] {
		env := envelopeOf(t, m)
		if env.Op != "event.close" {
			t.Fatalf("appended %s, want event.close", env.Op)
		}
		var p struct {
			ThingID   string `json:"thing_id"`
			EventTime int64  `json:"event_time"`
		}
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.ThingID != th || time.Since(time.UnixMilli(p.EventTime)).Abs() > time.Minute {
			t.Fatalf("close of %s: thing_id %q, event_time %d; want %s and about now", env.EntityID, p.ThingID, p.EventTime, th)
		}
	}
	// The event is closed: a later update is refused as on /event/update.
	if r := g.post("/thing/"+th+"/event/update", eventUpdate(ch, android)); r.Status != 409 || r.Code() != "event_closed" {
		t.Fatalf("update after the app's close: %d %s", r.Status, r.Body)
	}
}

// TestAnEventOfADeletedThingIsClosed: once an event's Thing is deleted,
// the apps' close (through the Thing's path, its thing_id in the body, as
// both send it) and a close through /event/close naming it, or through the
// path alone, close the event; an update or a new event naming the
// deleted Thing is still refused 409 thing_deleted, and a close naming an
// unknown Thing 404 thing_not_found. Each close used to be 409, and the
// incident stayed open in both apps. The deleted Thing a close names is
// not stored (as a path's): stored, it would re-link an event of another
// Thing, or of none, to it.
func TestAnEventOfADeletedThingIsClosed(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("decommissioned")
	th := mustOK(t, g.post("/thing/create", body(ch, "title", "NAS", "observed_at", 1713750000000))).Str("thing_id")
	var events []string
	for range 3 {
		events = append(events, mustOK(t, g.post("/thing/"+th+"/event/create", eventCreate(ch))).Str("event_id"))
	}
	mustOK(t, g.post("/thing/delete", body(ch, "thing_id", th, "observed_at", 1713750300000)))

	stored := len(streamOps(t, g.nc))
	for _, r := range []reply{
		g.post("/thing/"+th+"/event/update", eventUpdate(ch, events[0], "thing_id", th)),
		g.post("/event/update", eventUpdate(ch, events[0], "thing_id", th)),
		g.post("/event/create", eventCreate(ch, "thing_id", th)),
	} {
		wantErr(t, r, 409, "thing_deleted")
	}
	wantErr(t, g.post("/event/close", body(ch, "event_id", events[0], "thing_id", "unknown-thing", "status", "closed",
		"message", "closed", "severity", "normal")), 404, "thing_not_found")
	if n := len(streamOps(t, g.nc)); n != stored {
		t.Fatalf("the refused requests appended %d operations", n-stored)
	}

	closes := []struct {
		path string
		body map[string]any
	}{
		{"/thing/" + th + "/event/close", body(ch, "event_id", events[0], "thing_id", th, "status", "closed", "message", "closed", "severity", "normal")},
		{"/event/close", body(ch, "event_id", events[1], "thing_id", th, "status", "closed", "message", "closed", "severity", "normal")},
		{"/thing/" + th + "/event/close", body(ch, "event_id", events[2], "status", "closed", "message", "closed", "severity", "normal")},
	}
	for _, c := range closes {
		mustOK(t, g.post(c.path, c.body))
	}
	logged := streamOps(t, g.nc)[stored:]
	if len(logged) != len(closes) {
		t.Fatalf("%d operations appended by %d closes", len(logged), len(closes))
	}
	for i, m := range logged {
		env := envelopeOf(t, m)
		if env.Op != ops.EventClose || env.EntityID != events[i] {
			t.Fatalf("appended %s of %s, want the close of %s", env.Op, env.EntityID, events[i])
		}
		// Checked, not stored: the event's link stays as it is.
		var p struct {
			ThingID *string `json:"thing_id"`
		}
		if err := json.Unmarshal(env.Payload, &p); err != nil || p.ThingID != nil {
			t.Fatalf("close of %s stored thing_id %v (%v), want none: a deleted Thing named by a close links nothing", events[i], p.ThingID, err)
		}
	}
	// Closed: a later close is refused as any close of a closed event.
	wantErr(t, g.post("/thing/"+th+"/event/close", closes[0].body), 409, "event_closed")
}

// A message retried after its ttl passed answers as the first time and
// appends nothing (the idempotency contract: same op_id, same body, same
// data), through the writer that stored it and through another; a new
// message with a passed ttl is refused 400 ttl_expired, with or without an
// op_id. (A message sent back with the op_id the gateway generated after
// its ttl: e2e's TestGeneratedMessageOpIDSentBack, which has a projector.)
func TestMessageRetriedAfterItsTTLAnswersAsTheFirstTime(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	ch := g.createChannel("ttl")

	ttl := time.Now().Add(2 * time.Second).UnixMilli()
	named := body(ch, "title", "backup window", "ttl", ttl, "op_id", "msg-ttl-1")
	namedID := mustOK(t, g.post("/message", named)).Str("message_id")
	stored := len(streamOps(t, g.nc))
	for time.Now().UnixMilli() <= ttl {
		time.Sleep(time.Until(time.UnixMilli(ttl + 1)))
	}

	other := startIngest(t, b, ingest.Config{})
	for _, w := range []*gw{g, other} {
		if r := w.post("/message", named); r.Status != 200 || r.Str("message_id") != namedID || r.Str("op_id") != "msg-ttl-1" {
			t.Fatalf("message retried after its ttl: %d %s (first message_id %s)", r.Status, r.Body, namedID)
		}
		// The same op_id with another body is still a conflict.
		changed := body(ch, "title", "another window", "ttl", ttl, "op_id", "msg-ttl-1")
		if r := w.post("/message", changed); r.Status != 409 || r.Code() != "op_id_conflict" {
			t.Fatalf("retry with another body after its ttl: %d %s", r.Status, r.Body)
		}
	}
	for _, m := range []map[string]any{
		body(ch, "title", "late", "ttl", ttl, "op_id", "msg-ttl-2"),
		body(ch, "title", "late", "ttl", ttl),
	} {
		if r := g.post("/message", m); r.Status != 400 || r.Code() != "ttl_expired" {
			t.Fatalf("new message with a passed ttl (op_id %v): %d %s", m["op_id"], r.Status, r.Body)
		}
	}
	if n := len(streamOps(t, g.nc)); n != stored {
		t.Fatalf("stream has %d operations after the retries and refusals, want %d", n, stored)
	}
}

// TestConcurrentWritersOneEvent: 64 writers update one event at once.
// Every 200 is in the stream exactly once, and each writer's updates appear
// in the order that writer got its answers: no lost or reordered update.
func TestConcurrentWritersOneEvent(t *testing.T) {
	b := startBroker(t)
	// Two replicas on one broker: writers race across processes' caches
	// and locks too, so the broker's compare-and-swap is what arbitrates.
	g1 := startIngest(t, b, ingest.Config{})
	g2 := startIngest(t, b, ingest.Config{})
	ch := g1.createChannel("race")
	ev := mustOK(t, g1.post("/event/create", eventCreate(ch))).Str("event_id")

	const writers, each = 64, 8
	var wg sync.WaitGroup
	acked := make([][]string, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := g1
			if w%2 == 1 {
				g = g2
			}
			for i := 0; i < each; i++ {
				opID := fmt.Sprintf("w%02d-%02d", w, i)
				r := g.post("/event/update", eventUpdate(ch, ev, "op_id", opID, "message", opID))
				if r.Status != 200 {
					t.Errorf("%s: %d %s", opID, r.Status, r.Body)
					return
				}
				acked[w] = append(acked[w], opID)
			}
		}()
	}
	wg.Wait()
	pos := map[string]int{}
	for i, m := range streamOps(t, g1.nc) {
		e := envelopeOf(t, m)
		if e.Op != ops.EventUpdate {
			continue
		}
		if _, dup := pos[e.OpID]; dup {
			t.Fatalf("op %s appended twice", e.OpID)
		}
		pos[e.OpID] = i
	}
	total := 0
	for w := range acked {
		last := -1
		for _, id := range acked[w] {
			p, ok := pos[id]
			if !ok {
				t.Fatalf("acknowledged %s is not in the stream", id)
			}
			if p <= last {
				t.Fatalf("writer %d: %s is before an update that was answered earlier", w, id)
			}
			last = p
			total++
		}
	}
	if total != writers*each || len(pos) != total {
		t.Fatalf("acked %d, stream has %d updates, want %d", total, len(pos), writers*each)
	}
}

// TestConcurrentCloseOneWinner: many replicas racing to close one event:
// exactly one close is appended, every other writer learns it is closed.
func TestConcurrentCloseOneWinner(t *testing.T) {
	b := startBroker(t)
	gs := []*gw{startIngest(t, b, ingest.Config{}), startIngest(t, b, ingest.Config{}), startIngest(t, b, ingest.Config{})}
	ch := gs[0].createChannel("close-race")
	ev := mustOK(t, gs[0].post("/event/create", eventCreate(ch))).Str("event_id")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := gs[i%3].post("/event/close", body(ch, "event_id", ev, "status", "done", "message", fmt.Sprint(i), "severity", "low", "event_time", 1713750600))
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 1 || codes[409] != 29 {
		t.Fatalf("status counts %v, want one 200 and 29 409", codes)
	}
	closes := 0
	for _, m := range streamOps(t, gs[0].nc) {
		if m.Header.Get(streams.HeaderOp) == string(ops.EventClose) {
			closes++
		}
	}
	if closes != 1 {
		t.Fatalf("%d closes appended", closes)
	}
}

// A channel id grouped with hyphens or pasted with white space (the apps
// accept both, as PushGo's decoder does) names the channel.
func TestChannelIDWithSeparators(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("grouped")
	var grouped strings.Builder
	for i := 0; i < len(ch); i += 4 {
		if i > 0 {
			grouped.WriteByte('-')
		}
		grouped.WriteString(strings.ToLower(ch[i:min(i+4, len(ch))]))
	}
	for _, id := range []string{grouped.String(), " " + ch + "\n"} {
		r := mustOK(t, g.post("/message", map[string]any{"channel_id": id, "password": password, "title": "t"}))
		if r.Str("channel_id") != ch {
			t.Errorf("channel_id %q: answered %q, want %q", id, r.Str("channel_id"), ch)
		}
	}
}

// GET /message reads its query as PushGo does: ";" is part of a value, and
// a "%" that starts no escape is kept (Go's own parser dropped both pairs,
// and the message was stored without its body, or refused for its title).
func TestMessageQueryAsPushGoReadsIt(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("query")
	q := "channel_id=" + ch + "&password=" + password + "&title=CPU%20at%20100%&body=step1;step2+done"
	mustOK(t, g.api.Get(t, "/message?"+q, nil))
	msgs := streamOps(t, g.nc)
	var env struct {
		Payload struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(msgs[len(msgs)-1].Data, &env); err != nil {
		t.Fatal(err)
	}
	if env.Payload.Title != "CPU at 100%" || env.Payload.Body != "step1;step2 done" {
		t.Fatalf("stored title %q body %q", env.Payload.Title, env.Payload.Body)
	}
}

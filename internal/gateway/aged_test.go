package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestEntitiesOlderThanTheRetentionStayWritable: when every operation of
// a Thing or an event has aged out of PUSHGO_OPS (PUSHGO_RETENTION, two
// seconds here), the projection keeps its snapshot and every reader still
// sees it; a write must see it too. Before, the write path looked only in the log: a Thing
// not updated for 30 days answered /thing/update 404 thing_not_found while
// /thing/get showed it active, an incident open for 30 days could never be
// closed (and Alertmanager's repeats opened a new one each retention), and
// a message could not link to the Thing.
func TestEntitiesOlderThanTheRetentionStayWritable(t *testing.T) {
	a := agedEntities(t, "old", `"op_id":"nas-1","title":"Home NAS","observed_at":1713750000000,"attrs":{"online":true,"disk_used":0.72}`, false)
	base, cred, th, gone, ev := a.base, a.cred, a.th, a.gone, a.ev
	var (
		s int
		m map[string]any
	)

	// The readers still see both, from the projection.
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	if snap := data(t, s, m); snap["state"] != "active" {
		t.Fatalf("aged Thing as read: %v", snap)
	}

	// Its create, retried after the retention with the same op_id, is
	// answered as a replay: it makes nothing again.
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"op_id":"nas-1","title":"Something else","observed_at":1713750009000}`)
	if got := data(t, s, m)["thing_id"]; got != th {
		t.Fatalf("the create's retry answered thing_id %v, want %s", got, th)
	}
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	if snap := data(t, s, m); snap["title"] != "Home NAS" || snap["version"] != 1.0 {
		t.Fatalf("the aged Thing after its create's retry: %v", snap)
	}

	// An update of the aged Thing is appended onto its snapshot, and the
	// next one finds it in the log again.
	for i, attrs := range []string{`{"disk_used":0.91}`, `{"online":false}`} {
		s, _, m = post(t, base, "/thing/update", fmt.Sprintf(`{%s,"thing_id":%q,"observed_at":%d,"attrs":%s}`, cred, th, 1713750002000+i, attrs))
		data(t, s, m)
	}
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	snap := data(t, s, m)
	if fmt.Sprint(snap["attrs"]) != "map[disk_used:0.91 online:false]" || snap["title"] != "Home NAS" || snap["version"] != 3.0 {
		t.Fatalf("aged Thing after two updates: %v", snap)
	}

	// A message links to it, and the incident closes.
	s, _, m = post(t, base, "/message", `{`+cred+`,"title":"disk replaced","occurred_at":1713750002500,"thing_id":"`+th+`"}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/close", `{`+cred+`,"event_id":"`+ev+`","status":"resolved","message":"ok","severity":"high","event_time":1713750100}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+ev+`"}`)
	if snap := data(t, s, m); snap["state"] != "CLOSED" || snap["status"] != "resolved" {
		t.Fatalf("aged event after its close: %v", snap)
	}

	// A deleted Thing whose operations all aged out is pruned from the
	// projection (TestFinalEntitiesArePrunedWithTheirOperations): then it
	// is as one that never was.
	waitNotFound(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+gone+`"}`, "thing_not_found")
	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"`+gone+`","observed_at":1713750003000,"attrs":{"x":1}}`)
	if s != 404 || m["error_code"] != "thing_not_found" {
		t.Fatalf("update of a pruned deleted Thing: %d %v", s, m)
	}
	s, _, m = post(t, base, "/message", `{`+cred+`,"title":"t","occurred_at":1713750002500,"thing_id":"`+gone+`"}`)
	if s != 404 || m["error_code"] != "thing_not_found" {
		t.Fatalf("message linking a pruned deleted Thing: %d %v", s, m)
	}
	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"never-was","observed_at":1713750003000,"attrs":{"x":1}}`)
	if s != 404 || m["error_code"] != "thing_not_found" {
		t.Fatalf("update of an unknown Thing: %d %v", s, m)
	}
}

// TestFinalEntitiesArePrunedWithTheirOperations: a CLOSED event and a
// deleted Thing whose operations have all aged out of PUSHGO_OPS are
// pruned from the projection (the prune before the folds start at the
// restart, or the minute's): reads answer 404 as for an entity that never
// was, the CLOSED listing leaves the event out, a write naming either is
// 404, and the retry of either's create with its op_id is appended again
// as a new entity. An ONGOING event and an active Thing aged as long stay
// readable and writable. Before, closed and deleted entities stayed for
// ever: at integration volumes (every Dynatrace info event and alert
// occurrence ends CLOSED) the projection outgrew the disk while the log
// stayed bounded.
func TestFinalEntitiesArePrunedWithTheirOperations(t *testing.T) {
	g := startShortRetention(t)
	base := "http://" + g.Addr()
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"pruned","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"title":"NAS","observed_at":1713750000000}`)
	live := data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"op_id":"router-1","title":"Old router","observed_at":1713750000000}`)
	gone := data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/delete", `{`+cred+`,"thing_id":"`+gone+`","observed_at":1713750001000}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/create", `{`+cred+`,"title":"Disk filling","status":"firing","message":"72%","severity":"high","event_time":1713750000}`)
	open := data(t, s, m)["event_id"].(string)
	s, _, m = post(t, base, "/event/create", `{`+cred+`,"op_id":"deploy-1","title":"Deployed","status":"info","message":"v2","severity":"low","event_time":1713750000}`)
	done := data(t, s, m)["event_id"].(string)
	s, _, m = post(t, base, "/event/close", `{`+cred+`,"event_id":"`+done+`","status":"done","message":"v2","severity":"low","event_time":1713750001}`)
	data(t, s, m)

	for _, subject := range []string{streams.OpSubject(ch, ops.KindThing, live), streams.OpSubject(ch, ops.KindThing, gone),
		streams.OpSubject(ch, ops.KindEvent, open), streams.OpSubject(ch, ops.KindEvent, done)} {
		waitAgedOut(t, g, subject)
	}
	g = restart(t, g)
	base = "http://" + g.Addr()

	// The final ones go: read as never were.
	waitNotFound(t, base, "/event/get", `{`+cred+`,"event_id":"`+done+`"}`, "event_not_found")
	waitNotFound(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+gone+`"}`, "thing_not_found")
	s, _, m = post(t, base, "/channel/events", `{`+cred+`,"state":"CLOSED"}`)
	if items := data(t, s, m)["items"].([]any); len(items) != 0 {
		t.Fatalf("CLOSED events after the prune: %v", items)
	}
	for _, w := range []struct{ path, body, code string }{
		{"/event/update", `"event_id":"` + done + `","status":"s","message":"m","severity":"low","event_time":1713750002`, "event_not_found"},
		{"/event/close", `"event_id":"` + done + `","status":"s","message":"m","severity":"low","event_time":1713750002`, "event_not_found"},
		{"/thing/update", `"thing_id":"` + gone + `","observed_at":1713750002000,"attrs":{"x":1}`, "thing_not_found"},
		{"/thing/delete", `"thing_id":"` + gone + `","observed_at":1713750002000`, "thing_not_found"},
		{"/message", `"title":"t","occurred_at":1713750002000,"thing_id":"` + gone + `"`, "thing_not_found"},
	} {
		if s, _, m = post(t, base, w.path, `{`+cred+`,`+w.body+`}`); s != 404 || m["error_code"] != w.code {
			t.Errorf("%s naming a pruned entity: %d %v, want 404 %s", w.path, s, m, w.code)
		}
	}

	// The live ones, aged as long, stay readable and writable.
	s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+open+`"}`)
	if snap := data(t, s, m); snap["state"] != "ONGOING" || snap["version"] != 1.0 {
		t.Fatalf("the aged ONGOING event after the prune: %v", snap)
	}
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+live+`"}`)
	if snap := data(t, s, m); snap["state"] != "active" || snap["version"] != 1.0 {
		t.Fatalf("the aged active Thing after the prune: %v", snap)
	}
	s, _, m = post(t, base, "/event/update", `{`+cred+`,"event_id":"`+open+`","status":"firing","message":"91%","severity":"high","event_time":1713750002}`)
	data(t, s, m)
	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"`+live+`","observed_at":1713750002000,"attrs":{"disk_used":0.91}}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+open+`"}`)
	if snap := data(t, s, m); snap["message"] != "91%" || snap["version"] != 2.0 {
		t.Fatalf("the aged ONGOING event after its update: %v", snap)
	}

	// The retry of a pruned entity's create is appended again: a new
	// entity under the same id.
	s, _, m = post(t, base, "/event/create", `{`+cred+`,"op_id":"deploy-1","title":"Deployed again","status":"info","message":"v2","severity":"low","event_time":1713750003}`)
	if d := data(t, s, m); d["event_id"] != done {
		t.Fatalf("the retried create answered %v, want event_id %s", d, done)
	}
	s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+done+`"}`)
	if snap := data(t, s, m); snap["state"] != "ONGOING" || snap["title"] != "Deployed again" || snap["version"] != 1.0 {
		t.Fatalf("the pruned event's retried create: %v", snap)
	}
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"op_id":"router-1","title":"New router","observed_at":1713750003000}`)
	if d := data(t, s, m); d["thing_id"] != gone {
		t.Fatalf("the retried create answered %v, want thing_id %s", d, gone)
	}
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+gone+`"}`)
	if snap := data(t, s, m); snap["state"] != "active" || snap["title"] != "New router" || snap["version"] != 1.0 {
		t.Fatalf("the pruned Thing's retried create: %v", snap)
	}
}

// waitNotFound waits until a read of an entity answers 404 with code: the
// prune has removed it (its first pass runs as the projector starts).
func waitNotFound(t *testing.T, base, path, body, code string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, _, m := post(t, base, path, body)
		if s == 404 && m["error_code"] == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: %d %v, want 404 %s once pruned", path, body, s, m, code)
		}
	}
}

// TestARebuildKeepsTheEntitiesOlderThanTheRetention: PUSHGO_REBUILD=true
// folds the projection again from a log that has lost operations to its
// retention; a Thing and an ONGOING event whose operations have all aged
// out are carried over from the projection it replaces: readable, listed,
// and writable (the write path reads their snapshots). A deleted Thing
// whose operations aged out is not (pruned, as by the live projection).
// Before, the rebuild lost both: /thing/get answered 404 for an active
// Thing, the incident could never be closed.
func TestARebuildKeepsTheEntitiesOlderThanTheRetention(t *testing.T) {
	a := agedEntities(t, "rebuilt", `"title":"Home NAS","observed_at":1713750000000,"attrs":{"online":true}`, true)
	base, cred, th, gone, ev := a.base, a.cred, a.th, a.gone, a.ev
	var (
		s int
		m map[string]any
	)

	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	if snap := data(t, s, m); snap["state"] != "active" || snap["title"] != "Home NAS" {
		t.Fatalf("aged Thing after the rebuild: %v", snap)
	}
	s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+ev+`"}`)
	if snap := data(t, s, m); snap["state"] != "ONGOING" || snap["thing_id"] != th {
		t.Fatalf("aged event after the rebuild: %v", snap)
	}
	s, _, m = post(t, base, "/channel/events", `{`+cred+`,"state":"ONGOING","thing_id":"`+th+`"}`)
	if got := fmt.Sprint(data(t, s, m)["items"]); !strings.Contains(got, ev) {
		t.Fatalf("the ONGOING events of the aged Thing after the rebuild: %s", got)
	}
	waitNotFound(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+gone+`"}`, "thing_not_found")

	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"`+th+`","observed_at":1713750002000,"attrs":{"online":false}}`)
	data(t, s, m)
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	if snap := data(t, s, m); fmt.Sprint(snap["attrs"]) != "map[online:false]" || snap["version"] != 2.0 {
		t.Fatalf("aged Thing after the rebuild and an update: %v", snap)
	}
	s, _, m = post(t, base, "/event/close", `{`+cred+`,"event_id":"`+ev+`","status":"resolved","message":"ok","severity":"high","event_time":1713750100}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+ev+`"}`)
	if snap := data(t, s, m); snap["state"] != "CLOSED" {
		t.Fatalf("aged event after the rebuild and its close: %v", snap)
	}
}

// TestAlertmanagerAlertFiringLongerThanTheRetention: Watchdog fires by
// design, and any alert can fire for longer than PUSHGO_RETENTION. Its
// repeats, once its event's operations have aged out of the log, keep the
// one event open and a resolve closes it. Before, every repeat after the
// retention opened another event (a new push each time), and the resolve
// closed only the newest: the others stayed ONGOING for every device.
func TestAlertmanagerAlertFiringLongerThanTheRetention(t *testing.T) {
	it := startIntegrations(t, "watchdog", func(c *Config) { c.Retention, c.DedupWindow = 2*time.Second, time.Second })
	auth := "Api-Token " + it.token
	const starts = "2026-11-01T08:00:00Z"
	a, _ := it.alertmanager(auth, amOccurrence("firing", starts, "2026-11-01T08:05:00Z"), 200)
	if a.Opened != 1 {
		t.Fatalf("first notification: %+v", a)
	}
	ev := a.Events[0].EventID
	waitAgedOut(t, it.g, streams.OpSubject(it.channel, ops.KindEvent, ev))
	it.g = restart(t, it.g)
	it.base = "http://" + it.g.Addr()
	it.api.Base = it.base

	a, _ = it.alertmanager(auth, amOccurrence("firing", starts, "2026-11-01T08:10:00Z"), 200)
	if a.Opened != 0 || len(a.Events) != 1 || a.Events[0].EventID != ev {
		t.Fatalf("a repeat after the event aged out of the log: %+v", a)
	}
	if a, _ = it.alertmanager(auth, amOccurrence("resolved", starts, "2026-11-01T08:20:00Z"), 200); a.Resolved != 1 || a.Events[0].EventID != ev {
		t.Fatalf("its resolve: %+v", a)
	}
	if open := it.events("ONGOING"); len(open) != 0 {
		t.Fatalf("events left open after the resolve: %v", open)
	}
}

// agedSet is what agedEntities made: the gateway it restarted and its
// URL, the channel's credentials as JSON members, and the ids.
type agedSet struct {
	g            *Gateway
	base, cred   string
	th, gone, ev string
}

// agedEntities starts a gateway whose log keeps two seconds
// (startShortRetention) and makes, in a channel named name, a Thing of the
// members thingBody, a Thing then deleted, and an event linked to the
// first; waits until every operation of theirs has aged out of the log;
// and restarts the gateway (with PUSHGO_REBUILD when rebuild): a month
// later, nothing of them in any cache.
func agedEntities(t *testing.T, name, thingBody string, rebuild bool) agedSet {
	t.Helper()
	g := startShortRetention(t)
	base := "http://" + g.Addr()
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"`+name+`","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	a := agedSet{cred: `"channel_id":"` + ch + `","password":"correct-horse"`}
	s, _, m = post(t, base, "/thing/create", `{`+a.cred+`,`+thingBody+`}`)
	a.th = data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/create", `{`+a.cred+`,"title":"Old router","observed_at":1713750000000}`)
	a.gone = data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/delete", `{`+a.cred+`,"thing_id":"`+a.gone+`","observed_at":1713750001000}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/create", `{`+a.cred+`,"title":"Disk filling","status":"firing","message":"72%","severity":"high","event_time":1713750000,"thing_id":"`+a.th+`"}`)
	a.ev = data(t, s, m)["event_id"].(string)
	for _, subject := range []string{streams.OpSubject(ch, ops.KindThing, a.th), streams.OpSubject(ch, ops.KindThing, a.gone), streams.OpSubject(ch, ops.KindEvent, a.ev)} {
		waitAgedOut(t, g, subject)
	}
	g.cfg.Rebuild = rebuild
	a.g = restart(t, g)
	a.base = "http://" + a.g.Addr()
	return a
}

// startShortRetention starts an all-in-one gateway whose log keeps its
// operations two seconds (PUSHGO_RETENTION), for tests of what happens
// once they have aged out.
func startShortRetention(t *testing.T) *Gateway {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	cfg.Retention, cfg.DedupWindow = 2*time.Second, time.Second
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return g
}

// restart stops g and starts it again with its configuration: a month
// later, the process has restarted since (nothing of the entities is in
// any of its caches, and the log's info is read anew).
func restart(t *testing.T, g *Gateway) *Gateway {
	t.Helper()
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), g.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return g
}

// waitAgedOut waits until the log holds no operation of subject.
func waitAgedOut(t *testing.T, g *Gateway, subject string) {
	t.Helper()
	js, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never aged out of the log: %v", subject, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	cfg.Retention, cfg.DedupWindow = 2*time.Second, time.Second
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"old","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"op_id":"nas-1","title":"Home NAS","observed_at":1713750000000,"attrs":{"online":true,"disk_used":0.72}}`)
	th := data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"title":"Old router","observed_at":1713750000000}`)
	gone := data(t, s, m)["thing_id"].(string)
	s, _, m = post(t, base, "/thing/delete", `{`+cred+`,"thing_id":"`+gone+`","observed_at":1713750001000}`)
	data(t, s, m)
	s, _, m = post(t, base, "/event/create", `{`+cred+`,"title":"Disk filling","status":"firing","message":"72%","severity":"high","event_time":1713750000,"thing_id":"`+th+`"}`)
	ev := data(t, s, m)["event_id"].(string)

	for _, subject := range []string{streams.OpSubject(ch, ops.KindThing, th), streams.OpSubject(ch, ops.KindThing, gone), streams.OpSubject(ch, ops.KindEvent, ev)} {
		waitAgedOut(t, g, subject)
	}
	g = restart(t, g)
	base = "http://" + g.Addr()

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

	// A deletion is as final after aging as before; an entity the
	// projection never had is still not found.
	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"`+gone+`","observed_at":1713750003000,"attrs":{"x":1}}`)
	if s != 409 || m["error_code"] != "thing_deleted" {
		t.Fatalf("update of an aged deleted Thing: %d %v", s, m)
	}
	s, _, m = post(t, base, "/message", `{`+cred+`,"title":"t","occurred_at":1713750002500,"thing_id":"`+gone+`"}`)
	if s != 409 || m["error_code"] != "thing_deleted" {
		t.Fatalf("message linking an aged deleted Thing: %d %v", s, m)
	}
	s, _, m = post(t, base, "/thing/update", `{`+cred+`,"thing_id":"never-was","observed_at":1713750003000,"attrs":{"x":1}}`)
	if s != 404 || m["error_code"] != "thing_not_found" {
		t.Fatalf("update of an unknown Thing: %d %v", s, m)
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

package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest/apitest"
)

func startAll(t *testing.T) string {
	t.Helper()
	base, _ := startAllGateway(t)
	return base
}

// startAllGateway is startAll, with the gateway.
func startAllGateway(t *testing.T) (string, *Gateway) {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return "http://" + g.Addr(), g
}

func data(t *testing.T, status int, m map[string]any) map[string]any {
	t.Helper()
	if status != 200 {
		t.Fatalf("status %d: %v", status, m)
	}
	return m["data"].(map[string]any)
}

// TestSeedThingGet is the seed Thing example end to end: create with attrs
// {online, disk_used, temperature}, update {disk_used, temperature}, update
// {temporary_alarm: null}, archive {online: false}; /thing/get returns the
// merged attrs and state archived, read right after the writes.
func TestSeedThingGet(t *testing.T) {
	base := startAll(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"home","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"title":"Home NAS","description":"Primary storage in the living room rack","observed_at":1713750000000,"tags":["nas","home"],"location_type":"physical","location_value":"home/living-room","attrs":{"online":true,"disk_used":0.72,"temperature":43.2}}`)
	th := data(t, s, m)["thing_id"].(string)
	for _, b := range []struct{ path, body string }{
		{"/thing/update", `"observed_at":1713750600000,"attrs":{"disk_used":0.74,"temperature":44.1}`},
		{"/thing/update", `"observed_at":1713750700000,"attrs":{"temporary_alarm":null}`},
		{"/thing/archive", `"observed_at":1713751200000,"attrs":{"online":false}`},
	} {
		s, _, m = post(t, base, b.path, `{`+cred+`,"thing_id":"`+th+`",`+b.body+`}`)
		data(t, s, m)
	}
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
	snap := data(t, s, m)
	attrs := fmt.Sprint(snap["attrs"])
	if snap["state"] != "archived" || attrs != "map[disk_used:0.74 online:false temperature:44.1]" || snap["version"] != 4.0 ||
		snap["title"] != "Home NAS" || snap["location_value"] != "home/living-room" {
		t.Fatalf("snapshot %v", snap)
	}
	s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"nope"}`)
	if s != 404 || m["error_code"] != "thing_not_found" {
		t.Fatalf("unknown thing: %d %v", s, m)
	}
	s, _, m = post(t, base, "/thing/get", `{"channel_id":"`+ch+`","password":"wrong-password","thing_id":"`+th+`"}`)
	if s != 403 {
		t.Fatalf("wrong password: %d %v", s, m)
	}
}

// TestReadYourWrites: every read started after a write's 200 reflects it.
func TestReadYourWrites(t *testing.T) {
	base := startAll(t)
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"ryw","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	s, _, m = post(t, base, "/event/create", `{`+cred+`,"title":"Deploy","status":"running","message":"0","severity":"normal","event_time":1713750000}`)
	ev := data(t, s, m)["event_id"].(string)
	for i := 1; i <= 100; i++ {
		s, _, m = post(t, base, "/event/update", fmt.Sprintf(`{%s,"event_id":"%s","status":"running","message":"%d","severity":"normal","event_time":1713750000,"attrs":{"i":%d}}`, cred, ev, i, i))
		opID := data(t, s, m)["op_id"].(string)
		s, _, m = post(t, base, "/event/get", `{`+cred+`,"event_id":"`+ev+`"}`)
		snap := data(t, s, m)
		if snap["last_op_id"] != opID || snap["message"] != fmt.Sprint(i) || snap["version"] != float64(i+1) {
			t.Fatalf("read %d did not reflect its write: %v", i, snap)
		}
	}
	s, _, m = post(t, base, "/channel/events", `{`+cred+`,"state":"ONGOING"}`)
	items := data(t, s, m)["items"].([]any)
	if len(items) != 1 || !strings.Contains(fmt.Sprint(items[0]), ev) {
		t.Fatalf("ongoing events %v", items)
	}
}

// TestAllInOneReadsStayInProcess: with ingest and a projector in one
// process, reads are answered by that projector without the broker's
// request and reply (the default binary: make run, a home lab).
func TestAllInOneReadsStayInProcess(t *testing.T) {
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"local","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	cred := `"channel_id":"` + ch + `","password":"correct-horse"`
	s, _, m = post(t, base, "/thing/create", `{`+cred+`,"title":"NAS","observed_at":1713750000000,"attrs":{"n":0}}`)
	th := data(t, s, m)["thing_id"].(string)
	before := g.Projector().ServedLocal()
	const reads = 20
	for i := 1; i <= reads; i++ {
		s, _, m = post(t, base, "/thing/update", fmt.Sprintf(`{%s,"thing_id":"%s","observed_at":%d,"attrs":{"n":%d}}`, cred, th, 1713750000000+i, i))
		data(t, s, m)
		s, _, m = post(t, base, "/thing/get", `{`+cred+`,"thing_id":"`+th+`"}`)
		if n := data(t, s, m)["attrs"].(map[string]any)["n"]; n != float64(i) {
			t.Fatalf("read after update %d saw n=%v", i, n)
		}
	}
	if got := g.Projector().ServedLocal() - before; got < reads {
		t.Fatalf("the projector of the process answered %d of %d reads itself", got, reads)
	}
}

// TestHistoryRefusesACursorPastTheLog: /channel/history with an after past
// the log's last operation (a cursor of another log: the broker restored
// from a backup or recreated, a sync=1s log's last moments lost) is
// refused 400 invalid_cursor, as /channel/stream refuses such a
// Last-Event-ID. Before, it answered an empty page with next_after the
// cursor, so a polling client skipped every new operation up to it. A
// cursor up to the log's last operation, the channel's or another's, is
// answered.
func TestHistoryRefusesACursorPastTheLog(t *testing.T) {
	api := apitest.New(startAll(t))
	channel := func(name string) string {
		r := apitest.MustOK(t, api.Post(t, "/channel/create", `{"channel_name":"`+name+`","password":"correct-horse"}`))
		return `"channel_id":"` + r.Str("channel_id") + `","password":"correct-horse"`
	}
	cred, other := channel("polled"), channel("other")
	for _, title := range []string{"a", "b", "c"} {
		apitest.MustOK(t, api.Post(t, "/message", `{`+cred+`,"title":"`+title+`"}`))
	}
	page := apitest.MustOK(t, api.Post(t, "/channel/history", `{`+cred+`}`))
	last := uint64(page.Data["next_after"].(float64))
	if items := page.Data["items"].([]any); len(items) != 3 {
		t.Fatalf("history: %d items, want 3: %s", len(items), page)
	}
	// The log's last operation is another channel's: a cursor at it is
	// within the log, past the polled channel's last.
	apitest.MustOK(t, api.Post(t, "/message", `{`+other+`,"title":"d"}`))
	for _, after := range []uint64{last, last + 1} {
		r := apitest.MustOK(t, api.Post(t, "/channel/history", fmt.Sprintf(`{%s,"after":%d}`, cred, after)))
		if items := r.Data["items"].([]any); len(items) != 0 || r.Data["has_more"] != false {
			t.Errorf("after %d: %s, want an empty last page", after, r)
		}
	}
	for _, after := range []uint64{last + 2, 999999} {
		r := api.Post(t, "/channel/history", fmt.Sprintf(`{%s,"after":%d}`, cred, after))
		if r.Status != 400 || r.Code() != "invalid_cursor" {
			t.Errorf("after %d, past the log's last operation %d: %s, want 400 invalid_cursor", after, last+1, r)
		}
	}
	// A client that read again from the start sees what comes next.
	apitest.MustOK(t, api.Post(t, "/message", `{`+cred+`,"title":"e"}`))
	r := apitest.MustOK(t, api.Post(t, "/channel/history", fmt.Sprintf(`{%s,"after":%d}`, cred, last)))
	if items := r.Data["items"].([]any); len(items) != 1 || !strings.Contains(fmt.Sprint(items[0]), "title:e") {
		t.Errorf("after %d once e was sent: %s, want e", last, r)
	}
}

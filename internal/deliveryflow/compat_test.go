package deliveryflow_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// TestCompatSendersReachDevices: a message sent through each sender
// compatibility route (ntfy, ntfy's JSON publishing, Bark v1 and v2,
// ServerChan), exactly as the tool's own client would send it to its base
// URL, is pushed to an iOS and an Android device subscribed to the channel,
// with the title, body, severity (and APNs interruption level) and link the
// tool's parameters asked for.
func TestCompatSendersReachDevices(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "scripts", "password": pw})["channel_id"].(string)
	e.device("ios", "apns", apnsToken, ch)
	e.device("android", "fcm", fcmToken, ch)
	key := ch + ":" + pw

	type want struct{ title, body, severity, level, url string }
	sends := []struct {
		name         string
		method, path string
		body         string
		header       http.Header
		want         want
	}{
		{"ntfy", "POST", "/ntfy/" + key, "Backup successful",
			http.Header{"Content-Type": {"text/plain"}, "X-Title": {"NAS"}, "X-Priority": {"4"}, "X-Click": {"https://nas.example"}},
			want{"NAS", "Backup successful", "high", "time-sensitive", "https://nas.example"}},
		{"ntfy JSON", "POST", "/ntfy", `{"topic":"` + key + `","message":"Disk failed","priority":5}`, nil,
			want{"Notification", "Disk failed", "critical", "critical", ""}},
		{"bark v1", "GET", "/bark/" + key + "/Deploy/Finished%20ok?level=passive&url=https://ci.example/1", "", nil,
			want{"Deploy", "Finished ok", "low", "passive", "https://ci.example/1"}},
		{"bark v2", "POST", "/bark/push", `{"device_key":"` + key + `","title":"Door","body":"Opened","level":"timeSensitive"}`, nil,
			want{"Door", "Opened", "high", "time-sensitive", ""}},
		{"serverchan", "POST", "/serverchan/" + key + ".send", "title=Cron&desp=**all+good**",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			want{"Cron", "**all good**", "normal", "active", ""}},
	}
	wants := map[string]want{} // by op_id
	for _, s := range sends {
		var body any
		if s.body != "" {
			body = s.body
		}
		r := apitest.MustOK(t, e.api.Send(t, s.method, s.path, body, s.header))
		wants[r.Str("op_id")] = s.want
	}

	for _, p := range []struct {
		name  string
		prov  sendertest.Provider
		token string
	}{{"apns", e.apns, apnsToken}, {"fcm", e.fcm, fcmToken}} {
		waitFor(t, p.name+" to receive every compat message", func() bool { return len(p.prov.Received(p.token)) >= len(sends) })
		got := p.prov.Received(p.token)
		if len(got) != len(sends) {
			t.Fatalf("%s received %d pushes, want %d", p.name, len(got), len(sends))
		}
		seen := map[string]int{}
		for _, o := range got {
			w, ok := wants[o.Data["op_id"]]
			if !ok {
				t.Errorf("%s: push of an unknown op_id: %v", p.name, o.Data)
				continue
			}
			seen[o.Data["op_id"]]++
			if len(o.Problems) > 0 {
				t.Errorf("%s %s: protocol problems %v", p.name, w.title, o.Problems)
			}
			if o.Data["entity_type"] != "message" || o.Data["channel_id"] != ch || o.Data["title"] != w.title ||
				o.Data["body"] != w.body || o.Data["severity"] != w.severity || o.Data["url"] != w.url {
				t.Errorf("%s push for %q: data %v", p.name, w.title, o.Data)
			}
			if p.name == "apns" && (o.Title != w.title || !strings.Contains(o.Body, strings.Split(w.body, "\n")[0]) || o.InterruptionLevel != w.level) {
				t.Errorf("apns push for %q: alert %q / %q, interruption level %q (want %q)", w.title, o.Title, o.Body, o.InterruptionLevel, w.level)
			}
		}
		if len(seen) != len(sends) {
			t.Errorf("%s: pushes by op_id %v, want one for each of the %d sends", p.name, seen, len(sends))
		}
	}
}

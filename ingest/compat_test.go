package ingest_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// The sender compatibility routes (ingest/compat) over HTTP: each tool's
// table of accepted requests (the Message they append) and rejected ones
// (the status and code, and nothing appended).

// compatCase is one request to a compat route. In path and body, {key} is
// the channel's compat key "<channel_id>:<password>" and {ch} the channel
// id.
type compatCase struct {
	name   string
	method string
	path   string
	body   string
	header http.Header
	// want are members of the appended message.create payload; a nil value
	// means the member is absent. Set for accepted requests.
	want map[string]any
	// status and code are the rejection's (want unset); errorHas, when
	// set, is text the answer's error must hold (the member it names).
	status   int
	code     string
	errorHas string
}

// contentType sets the request's Content-Type ("" sends none; apitest
// sends application/json with every body otherwise).
func contentType(ct string) http.Header { return http.Header{"Content-Type": {ct}} }

// runCompat sends each case to g, on channel ch (password "correct-horse"),
// and checks the answer and what was appended.
func runCompat(t *testing.T, g *gw, ch string, cases []compatCase) {
	t.Helper()
	expand := func(s string) string { return expandCompat(s, ch) }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(streamOps(t, g.nc))
			var body any
			if tc.body != "" {
				body = expand(tc.body)
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			r := g.api.Send(t, method, expand(tc.path), body, tc.header)
			after := streamOps(t, g.nc)
			if tc.want == nil {
				if r.Status != tc.status || r.Code() != tc.code || r.Success {
					t.Fatalf("want %d %s, got %s", tc.status, tc.code, r)
				}
				if tc.errorHas != "" && (r.Error == nil || !strings.Contains(*r.Error, tc.errorHas)) {
					t.Fatalf("want an error naming %q, got %s", tc.errorHas, r)
				}
				if len(after) != before {
					t.Fatalf("a rejected request appended %d operations", len(after)-before)
				}
				return
			}
			mustOK(t, r)
			if r.Str("channel_id") != ch || r.Str("message_id") == "" || r.Str("op_id") == "" || r.Data["accepted"] != true {
				t.Fatalf("answer data: %s", r.Body)
			}
			if len(after) != before+1 {
				t.Fatalf("%d operations appended, want 1", len(after)-before)
			}
			env := envelopeOf(t, after[len(after)-1])
			if env.Op != "message.create" || env.EntityID != r.Str("message_id") || env.OpID != r.Str("op_id") {
				t.Fatalf("appended %s %s %s, answered %s", env.Op, env.EntityID, env.OpID, r.Body)
			}
			var payload map[string]any
			if err := json.Unmarshal(env.Payload, &payload); err != nil {
				t.Fatal(err)
			}
			for k, w := range tc.want {
				got, ok := payload[k]
				if w == nil {
					if ok {
						t.Errorf("payload %s = %#v, want absent", k, got)
					}
					continue
				}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("payload %s = %#v, want %#v", k, got, w)
				}
			}
		})
	}
}

// expandCompat replaces {key} in s by the compat key of channel ch and {ch}
// by ch.
func expandCompat(s, ch string) string {
	return strings.NewReplacer("{key}", ch+":"+password, "{ch}", ch).Replace(s)
}

// list is a JSON list as decoded from a payload.
func list(items ...string) []any {
	out := make([]any, len(items))
	for i, s := range items {
		out[i] = s
	}
	return out
}

// TestCompatAnswersWhatTheToolsClientsRead: beside PushGo's envelope, each
// tool's answer carries the members its own clients read: Bark's "code":
// 200 (shoutrrr, Watchtower's notifier, reported every delivered Bark push
// as "unknown error" without it), ServerChan's "code": 0 (serverchan-sdk's
// callers test it), ntfy's message id, time, event and topic (aiontfy reads
// the answer as the published message). The topic is the channel id: the
// key's password is not echoed.
func TestCompatAnswersWhatTheToolsClientsRead(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("answers")
	for _, c := range []struct {
		method, path, body string
		want               map[string]any
	}{
		{http.MethodPost, "/bark/push", `{"body":"disk","device_key":"{key}","title":"","badge":0}`,
			map[string]any{"code": 200.0, "message": "success"}},
		{http.MethodGet, "/serverchan/{key}.send?title=Backup&desp=done", "", map[string]any{"code": 0.0, "message": ""}},
		{http.MethodPost, "/ntfy/{key}", "Disk 2 failed", map[string]any{"event": "message", "topic": ch, "message": "Disk 2 failed"}},
	} {
		r := g.api.Send(t, c.method, expandCompat(c.path, ch), func() any {
			if c.body == "" {
				return nil
			}
			return expandCompat(c.body, ch)
		}(), nil)
		mustOK(t, r)
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		for k, w := range c.want {
			if m[k] != w {
				t.Errorf("%s: %s = %#v, want %#v (%s)", c.path, k, m[k], w, r.Body)
			}
		}
		if m["success"] != true || r.Str("message_id") == "" || strings.Contains(string(r.Body), password) {
			t.Errorf("%s: the envelope is not whole, or the password is echoed: %s", c.path, r.Body)
		}
		switch {
		case strings.HasPrefix(c.path, "/bark"):
			if ts, _ := m["timestamp"].(float64); ts < 1e9 {
				t.Errorf("bark timestamp %v", m["timestamp"])
			}
		case strings.HasPrefix(c.path, "/ntfy"):
			if m["id"] != r.Str("message_id") || m["time"].(float64) < 1e9 {
				t.Errorf("ntfy id %v time %v", m["id"], m["time"])
			}
		}
	}
}

// TestCompatLongIconIsLeftOut: an icon URL longer than a metadata value
// may be (a signed CDN link) is left out of the message's metadata, and
// the message goes through, on ntfy and on Bark; it was refused 400
// metadata_value_too_long, naming a field the sender never sent. The
// sender's own metadata stays as strict as on POST /message.
func TestCompatLongIconIsLeftOut(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("icons")
	icon := "https://cdn.example.com/i.png?sig=" + strings.Repeat("a", 600)
	runCompat(t, g, ch, []compatCase{
		{name: "ntfy", method: http.MethodPost, path: "/ntfy/{key}", body: "disk",
			header: http.Header{"Icon": {icon}, "Title": {"NAS"}}, want: map[string]any{"body": "disk", "title": "NAS", "metadata": nil}},
		{name: "bark", method: http.MethodPost, path: "/bark/push",
			body: `{"device_key":"{key}","body":"disk","icon":"` + icon + `","sound":"alarm"}`,
			want: map[string]any{"body": "disk", "metadata": map[string]any{"compat.bark.sound": "alarm"}}},
		{name: "the sender's own metadata", method: http.MethodPost, path: "/bark/push",
			body:   `{"device_key":"{key}","body":"disk","metadata":{"k":"` + strings.Repeat("v", 600) + `"}}`,
			status: 400, code: "metadata_value_too_long"},
		// Even under a hint's key: the route added nothing there.
		{name: "the sender's own metadata under a hint's key", method: http.MethodPost, path: "/bark/push",
			body:   `{"device_key":"{key}","body":"disk","metadata":{"compat.bark.icon":"` + strings.Repeat("v", 600) + `"}}`,
			status: 400, code: "metadata_value_too_long"},
		{name: "the sender's own compat metadata on ServerChan", method: http.MethodPost, path: "/serverchan/{key}.send",
			body:   `{"title":"t","metadata":{"compat.note":"` + strings.Repeat("v", 600) + `"}}`,
			status: 400, code: "metadata_value_too_long"},
	})
}

// TestCompatErrorsCarryTheToolsMembers: a refusal carries, beside PushGo's
// failure envelope, the members the tool's clients read of an error:
// ServerChan's non-zero "code" (its SDK reads the body whatever the
// status, and took a refusal without one for a success), Bark's "code"
// (the HTTP status), "message" and "timestamp" (bark-server's failed()),
// ntfy's "code" and "http" (its errHTTP). So does one refused before the
// route's handler: the gateway token's check.
func TestCompatErrorsCarryTheToolsMembers(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("errors")
	wrong := strings.Replace(ch+":"+password, password, "wrong-password", 1)
	for _, c := range []struct {
		method, path, body string
		want               map[string]any
	}{
		{http.MethodGet, "/serverchan/" + wrong + ".send?title=x", "", map[string]any{"code": 403.0}},
		{http.MethodPost, "/bark/push", `{"device_key":"` + wrong + `","body":"x"}`, map[string]any{"code": 403.0}},
		{http.MethodPost, "/ntfy/" + wrong, "x", map[string]any{"code": 40300.0, "http": 403.0}},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := g.api.Send(t, c.method, c.path, body, nil)
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		if r.Status != 403 || m["success"] != false || m["error_code"] == nil {
			t.Fatalf("%s: %d %s, want 403 in PushGo's failure envelope", c.path, r.Status, r.Body)
		}
		for k, w := range c.want {
			if m[k] != w {
				t.Errorf("%s: %s = %v, want %v (%s)", c.path, k, m[k], w, r.Body)
			}
		}
		if strings.HasPrefix(c.path, "/bark") && (m["message"] == "" || m["timestamp"] == nil) {
			t.Errorf("bark error without message or timestamp: %s", r.Body)
		}
	}
	// Refused before the handler: the gateway's token.
	tg := startIngest(t, startBroker(t), ingest.Config{Token: "gateway-token"})
	tg.api.Bearer = "gateway-token"
	tch := tg.createChannel("errors")
	tg.api.Bearer = ""
	r := tg.api.Send(t, http.MethodGet, "/serverchan/"+tch+":"+password+".send?title=x", nil, nil)
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil || r.Status != 401 || m["code"] != 401.0 {
		t.Fatalf("serverchan without the gateway token: %d %s, want 401 with code 401", r.Status, r.Body)
	}
}

package ingest_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// TestCompatNtfy: /ntfy/{topic} (POST, PUT, GET and the /publish, /send,
// /trigger forms) and ntfy's JSON publishing, with ntfy's headers and
// query parameters.
func TestCompatNtfy(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("ntfy")
	text := contentType("text/plain")
	runCompat(t, g, ch, []compatCase{
		// Accepted.
		{name: "body is the message", method: "POST", path: "/ntfy/{key}", body: "Backup successful 😀\n", header: text,
			want: map[string]any{"title": "Notification", "body": "Backup successful 😀", "severity": "normal", "url": nil, "tags": nil}},
		{name: "curl -d form body is text", method: "POST", path: "/ntfy/{key}", body: "a=b&c", header: contentType("application/x-www-form-urlencoded"),
			want: map[string]any{"body": "a=b&c"}},
		{name: "ntfy headers", method: "POST", path: "/ntfy/{key}", body: "Disk full", header: http.Header{
			"Content-Type": {"text/plain"}, "X-Title": {"NAS"}, "X-Priority": {"5"}, "X-Tags": {"warning, skull"},
			"X-Click": {"https://nas.example/disks"}},
			want: map[string]any{"title": "NAS", "body": "Disk full", "severity": "critical", "tags": list("warning", "skull"),
				"url": "https://nas.example/disks"}},
		{name: "PUT with short headers", method: "PUT", path: "/ntfy/{key}", body: "up", header: http.Header{
			"Content-Type": {"text/plain"}, "T": {"Short"}, "Prio": {"high"}, "Ta": {"x"}},
			want: map[string]any{"title": "Short", "severity": "high", "tags": list("x")}},
		{name: "GET publish with query", path: "/ntfy/{key}/publish?message=Hi&title=T&priority=1",
			want: map[string]any{"title": "T", "body": "Hi", "severity": "low"}},
		{name: "GET topic with aliases and escaped newline", path: `/ntfy/{key}/publish?t=Short&m=line1\nline2&p=min`,
			want: map[string]any{"title": "Short", "body": "line1\nline2", "severity": "low"}},
		{name: "send form", method: "POST", path: "/ntfy/{key}/send?priority=default", body: "sent", header: text,
			want: map[string]any{"body": "sent", "severity": "normal"}},
		{name: "trigger without message", path: "/ntfy/{key}/trigger",
			want: map[string]any{"title": "Notification", "body": nil}},
		{name: "priority names", path: "/ntfy/{key}/publish?p=urgent", want: map[string]any{"severity": "critical"}},
		{name: "priority 2 is low", path: "/ntfy/{key}/publish?p=2", want: map[string]any{"severity": "low"}},
		{name: "priority 4 is high", path: "/ntfy/{key}/publish?p=4", want: map[string]any{"severity": "high"}},
		{name: "PushGo severity wins over priority", path: "/ntfy/{key}/publish?severity=high&priority=1",
			want: map[string]any{"severity": "high"}},
		{name: "query wins over header", method: "POST", path: "/ntfy/{key}?title=Query", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Title": {"Header"}},
			want:   map[string]any{"title": "Query"}},
		{name: "message parameter wins over body", method: "POST", path: "/ntfy/{key}?message=param", body: "body", header: text,
			want: map[string]any{"body": "param"}},
		{name: "RFC 2047 header", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "X-Title": {"=?UTF-8?B?8J+HqfCfh6o=?="}},
			want:   map[string]any{"title": "🇩🇪"}},
		{name: "RFC 9218 Priority header is not ntfy's", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Priority": {"u=3, i"}},
			want:   map[string]any{"severity": "normal"}},
		{name: "RFC 9218 Priority header then ntfy's P", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Priority": {"u=0, i"}, "P": {"5"}},
			want:   map[string]any{"severity": "critical"}},
		{name: "attach, icon, markdown and PushGo extras", method: "POST",
			path: "/ntfy/{key}/publish?attach=https://cam.example/snap.jpg&icon=https://x.example/i.png&md=yes&tags=a,b" +
				`&metadata={"room":"hall"}&occurred_at=1713750000&images=https://x.example/1.png`,
			body: "motion", header: text,
			want: map[string]any{"images": list("https://x.example/1.png", "https://cam.example/snap.jpg"),
				"metadata": map[string]any{"room": "hall", "compat.ntfy.icon": "https://x.example/i.png"},
				"tags":     list("a", "b"), "occurred_at": float64(1713750000000)}},
		{name: "click is the url", path: "/ntfy/{key}/publish?click=https://a.example", want: map[string]any{"url": "https://a.example"}},
		// The query read as GET /message reads it: ";" is text, and a "%"
		// that starts no escape is kept (both were 400 invalid_query).
		{name: "a stray percent and a semicolon", path: "/ntfy/{key}/publish?title=CPU%20at%20100%&m=a;b",
			want: map[string]any{"title": "CPU at 100%", "body": "a;b"}},
		// ntfy documents mailto:, geo: and app links as click actions: the
		// message's url, as PushGo passes it (the apps open mailto:).
		{name: "a mailto click is the url", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Click": {"mailto:ops@example.com"}},
			want:   map[string]any{"url": "mailto:ops@example.com"}},
		{name: "escaped key", path: "/ntfy/{ch}%3A" + password + "/publish?m=x", want: map[string]any{"body": "x"}},
		{name: "ntfy delivery switches and auth are accepted", path: "/ntfy/{key}/publish?cache=no&firebase=no&up=0&auth=e30",
			want: map[string]any{"title": "Notification"}},
		{name: "JSON publishing", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","message":"Disk\nfull","title":"NAS","priority":4,"tags":["a","b"],"click":"https://nas.example","markdown":true}`,
			want: map[string]any{"title": "NAS", "body": "Disk\nfull", "severity": "high", "tags": list("a", "b"), "url": "https://nas.example"}},
		{name: "JSON publishing to /ntfy/ with PUT", method: "PUT", path: "/ntfy/", body: `{"topic":"{key}","attach":"https://a.example/x.png"}`,
			header: text, want: map[string]any{"title": "Notification", "images": list("https://a.example/x.png")}},
		// Uptime Kuma (server/notification-providers/ntfy.js) adds a view
		// action to every alert of a monitor with a URL: delivered, the
		// action's URL the link (the apps show no buttons).
		{name: "Uptime Kuma's alert with a view action", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","message":"[web] [🔴 Down] timeout","priority":5,"title":"Uptime Kuma","tags":["red_circle"],` +
				`"actions":[{"action":"view","label":"Open web","url":"https://web.example"}]}`,
			want: map[string]any{"title": "Uptime Kuma", "severity": "critical", "url": "https://web.example", "tags": list("red_circle")}},
		// PowerShell's ConvertTo-Json of ntfy's own examples (docs/publish.md):
		// ntfy's encoding/json matches member names in any case.
		{name: "JSON publishing with PowerShell's member names", method: "POST", path: "/ntfy",
			body: `{"Topic":"{key}","Message":"Somebody retweeted your tweet.","Title":"Low disk","Priority":4,"Tags":["warning"],"Markdown":true,` +
				`"Actions":[{"Action":"view","Label":"Open Twitter","URL":"https://twitter.example/1"}]}`,
			want: map[string]any{"title": "Low disk", "body": "Somebody retweeted your tweet.", "severity": "high", "tags": list("warning"),
				"url": "https://twitter.example/1"}},
		// A view action's link is taken as a click link is (the first the
		// apps open); a script's is left out.
		{name: "a mailto view action is the link, as a mailto click", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","message":"x","actions":[{"action":"view","label":"Mail","url":"mailto:ops@example.com"},{"action":"view","label":"Web","url":"https://w.example"}]}`,
			want: map[string]any{"url": "mailto:ops@example.com"}},
		{name: "a script's view action is no link", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","message":"x","actions":[{"action":"view","label":"Run","url":"javascript:alert(1)"},{"action":"view","label":"Web","url":"https://w.example"}]}`,
			want: map[string]any{"url": "https://w.example"}},
		{name: "PushGo severity keeps the link and attachment", path: "/ntfy/{key}/publish?severity=high&click=https://a.example&attach=https://a.example/x.png",
			want: map[string]any{"severity": "high", "url": "https://a.example", "images": list("https://a.example/x.png")}},
		// ntfy makes a JSON publish's members headers over the request's
		// own; apprise sends X-Priority, X-Tags and X-Click beside its JSON.
		{name: "JSON with ntfy headers", method: "POST", path: "/ntfy", body: `{"topic":"{key}","message":"m","title":"T"}`,
			header: http.Header{"Content-Type": {"application/json"}, "X-Priority": {"max"}, "X-Tags": {"a,b"}, "X-Click": {"https://c.example"}, "X-Title": {"header"}},
			want:   map[string]any{"title": "T", "body": "m", "severity": "critical", "tags": list("a", "b"), "url": "https://c.example"}},
		{name: "JSON priority wins over the header's", method: "POST", path: "/ntfy?priority=5", body: `{"topic":"{key}","message":"m","priority":1}`,
			header: http.Header{"Content-Type": {"application/json"}, "X-Priority": {"4"}}, want: map[string]any{"severity": "low"}},
		{name: "JSON message taken as sent", method: "POST", path: "/ntfy", body: `{"topic":"{key}","message":"C:\\new dir"}`,
			want: map[string]any{"body": `C:\new dir`}},
		{name: "JSON with a delay header", method: "POST", path: "/ntfy", body: `{"topic":"{key}","message":"m"}`,
			header: http.Header{"Content-Type": {"application/json"}, "X-Delay": {"30m"}}, status: 400, code: "invalid_request_body"},
		{name: "JSON click wins over a view action", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","click":"https://a.example","actions":[{"action":"view","label":"x","url":"https://b.example"}]}`,
			want: map[string]any{"url": "https://a.example"}},
		{name: "actions header", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Actions": {"http, Reboot, https://nas.example/reboot; view, Open, https://a.example"}},
			want:   map[string]any{"url": "https://a.example"}},
		// ntfy takes tags of any length and number: fitted to the rules
		// (64 characters, 32 tags) rather than the message refused.
		{name: "a tag longer than 64 characters", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Tags": {"disk, " + strings.Repeat("w", 100) + ", disk"}},
			want:   map[string]any{"tags": list("disk", strings.Repeat("w", 64))}},
		// ntfy's other spellings of the same action (server/actions.go,
		// docs/publish.md): named sections, a url= prefix, quoted labels
		// holding a separator; the link was lost for each.
		{name: "actions header, named sections", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Actions": {"action=view, label=Open door, url=https://door.example/open, clear=true"}},
			want:   map[string]any{"url": "https://door.example/open"}},
		{name: "actions header, url= after positional ones", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Actions": {"view, Open, url=https://home.example/"}},
			want:   map[string]any{"url": "https://home.example/"}},
		{name: "actions header, quoted label with separators", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Actions": {`http, "Reboot; now", https://nas.example/r, body='{"a": 1}'; view, 'Open, "web"', https://b.example`}},
			want:   map[string]any{"url": "https://b.example"}},
		{name: "actions header that does not parse", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Actions": {`view, "Open, https://c.example`}},
			want:   map[string]any{"url": nil}},
		// ntfy's JSON publishing skips unset fields; a client that
		// serialises a whole struct sends them.
		{name: "JSON with unset fields", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","message":"x","priority":0,"title":"","tags":[],"delay":"","email":"","actions":[],"markdown":false}`,
			want: map[string]any{"title": "Notification", "body": "x", "severity": "normal"}},
		// With attach, filename names the linked file (ntfy's publish of a URL).
		{name: "attach with a file name", method: "POST", path: "/ntfy/{key}", body: "look",
			header: http.Header{"Content-Type": {"text/plain"}, "Attach": {"https://f.example/space.jpg"}, "Filename": {"disk.jpg"}},
			want:   map[string]any{"images": list("https://f.example/space.jpg")}},
		{name: "JSON attach with a file name", method: "POST", path: "/ntfy",
			body: `{"topic":"{key}","attach":"https://f.example/space.jpg","filename":"disk.jpg"}`,
			want: map[string]any{"images": list("https://f.example/space.jpg")}},

		// Rejected.
		{name: "topic without password", method: "POST", path: "/ntfy/mytopic", body: "x", header: text, status: 400, code: "compat_key_invalid"},
		{name: "topic without channel", method: "POST", path: "/ntfy/:" + password, body: "x", header: text, status: 400, code: "compat_key_invalid"},
		{name: "topic with a bad channel id", path: "/ntfy/nope:" + password + "/publish", status: 400, code: "invalid_channel_id"},
		{name: "wrong password", path: "/ntfy/{ch}:wrong-password/publish", status: 403, code: "password_mismatch"},
		{name: "unknown channel", path: "/ntfy/3VDNK58JZ14ZV5ZZ19466GK25T:" + password + "/publish", status: 404, code: "channel_not_found"},
		{name: "bad priority", path: "/ntfy/{key}/publish?priority=9", status: 400, code: "invalid_severity"},
		{name: "bad priority header", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "X-Priority": {"loud"}}, status: 400, code: "invalid_severity"},
		{name: "bad PushGo severity", path: "/ntfy/{key}/publish?severity=urgent", status: 400, code: "invalid_severity"},
		{name: "delay header", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "X-Delay": {"30m"}}, status: 400, code: "invalid_request_body"},
		{name: "delay parameter", path: "/ntfy/{key}/publish?in=30m", status: 400, code: "invalid_query"},
		{name: "template header switched off", method: "POST", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "X-Template": {"false"}}, want: map[string]any{"body": "x"}},
		{name: "template header", method: "POST", path: "/ntfy/{key}", body: `{"title":"x"}`,
			header: http.Header{"Content-Type": {"application/json"}, "Template": {"yes"}, "Title": {"{{.title}}"}}, status: 400, code: "invalid_request_body"},
		{name: "template parameter", path: "/ntfy/{key}/publish?tpl=grafana&m=x", status: 400, code: "invalid_query"},
		{name: "template parameter switched off", path: "/ntfy/{key}/publish?tpl=no&m=x", want: map[string]any{"body": "x"}},
		{name: "email parameter", path: "/ntfy/{key}/publish?email=a@b.example", status: 400, code: "invalid_query"},
		{name: "file upload", method: "PUT", path: "/ntfy/{key}?filename=a.bin", body: "x", header: text, status: 400, code: "invalid_query"},
		{name: "file upload by header", method: "PUT", path: "/ntfy/{key}", body: "x",
			header: http.Header{"Content-Type": {"text/plain"}, "Filename": {"a.bin"}}, status: 400, code: "invalid_request_body"},
		{name: "binary body", method: "PUT", path: "/ntfy/{key}", body: "\xff\xfe\x00", header: contentType("application/octet-stream"),
			status: 400, code: "invalid_request_body"},
		{name: "body over 32 KiB", method: "POST", path: "/ntfy/{key}", body: strings.Repeat("a", 33<<10), header: text,
			status: 413, code: "payload_too_large"},
		{name: "unknown parameter", path: "/ntfy/{key}/publish?foo=1", status: 400, code: "invalid_query"},
		{name: "thing_id", path: "/ntfy/{key}/publish?thing_id=nas", status: 400, code: "invalid_query"},
		{name: "repeated parameter", path: "/ntfy/{key}/publish?title=a&title=b", status: 400, code: "invalid_query"},
		{name: "parameter under two spellings", path: "/ntfy/{key}/publish?t=a&title=b", status: 400, code: "invalid_query"},
		{name: "bad click URL", path: "/ntfy/{key}/publish?click=javascript:alert(1)", status: 400, code: "url_invalid"},
		{name: "title too long", path: "/ntfy/{key}/publish?title=" + strings.Repeat("t", 257), status: 400, code: "title_too_long"},
		{name: "bad timestamp", path: "/ntfy/{key}/publish?occurred_at=yesterday", status: 400, code: "invalid_timestamp"},
		{name: "DELETE", method: "DELETE", path: "/ntfy/{key}", status: 405, code: "method_not_allowed"},
		// A browser, a link preview or UnifiedPush's discovery: ntfy
		// publishes nothing on a GET of the topic, and neither do we.
		{name: "GET of the topic publishes nothing", path: "/ntfy/{key}?m=x", status: 405, code: "method_not_allowed"},
		{name: "UnifiedPush discovery publishes nothing", path: "/ntfy/{key}?up=1", status: 405, code: "method_not_allowed"},
		{name: "subscribing is not served", path: "/ntfy/{key}/json", status: 404, code: "route_not_found"},
		{name: "JSON without topic", method: "POST", path: "/ntfy", body: `{"message":"x"}`, status: 400, code: "channel_id_required"},
		{name: "JSON with a file name and no attach", method: "POST", path: "/ntfy", body: `{"topic":"{key}","filename":"a.bin"}`, status: 400, code: "invalid_json_data"},
		{name: "JSON with a delay", method: "POST", path: "/ntfy", body: `{"topic":"{key}","delay":"30m"}`, status: 400, code: "invalid_json_data"},
		{name: "JSON with an unknown member", method: "POST", path: "/ntfy", body: `{"topic":"{key}","foo":1}`, status: 400, code: "invalid_json_data"},
		{name: "JSON malformed", method: "POST", path: "/ntfy", body: `{"topic":`, status: 400, code: "invalid_json_syntax"},
		// I-JSON's refusals, as on the PushGo routes (README, "Limits and
		// abuse"): invalid_json_data naming the member. Until 6 December
		// they were invalid_json_syntax, "request body is not valid JSON".
		{name: "JSON duplicate member", method: "POST", path: "/ntfy/", body: `{"topic":"{key}","message":"m","message":"n"}`,
			status: 400, code: "invalid_json_data", errorHas: "message: duplicate member"},
		{name: "JSON invalid UTF-8", method: "POST", path: "/ntfy", body: "{\"topic\":\"{key}\",\"title\":\"a\xff\xfe\"}",
			status: 400, code: "invalid_json_data", errorHas: "title: not valid UTF-8"},
		{name: "JSON lone surrogate escape", method: "POST", path: "/ntfy", body: `{"topic":"{key}","message":"\ud800"}`,
			status: 400, code: "invalid_json_data", errorHas: `message: not valid UTF-8 (lone surrogate escape \ud800)`},
		{name: "JSON invalid UTF-8 in a name", method: "POST", path: "/ntfy", body: "{\"topic\":\"{key}\",\"\xff\":\"x\"}",
			status: 400, code: "invalid_json_data", errorHas: "body: a member name is not valid UTF-8"},
		{name: "JSON invalid UTF-8, unterminated", method: "POST", path: "/ntfy", body: "{\"topic\":\"{key}\",\"title\":\"\xff",
			status: 400, code: "invalid_json_syntax"},
		{name: "JSON title not a string", method: "POST", path: "/ntfy", body: `{"topic":"{key}","title":["a"]}`, status: 400, code: "invalid_json_data"},
	})
}

// TestCompatNtfyToken: with PUSHGO_TOKEN, the ntfy routes take it as a
// bearer token, as ntfy's Basic form with an empty user, or in ntfy's auth
// query parameter; anything else is 401 and appends nothing.
func TestCompatNtfyToken(t *testing.T) {
	const token = "gateway-token-1"
	g := startIngest(t, startBroker(t), ingest.Config{Token: token})
	g.api.Bearer = token
	ch := g.createChannel("ntfy-token")
	g.api.Bearer = ""
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	auth := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	runCompat(t, g, ch, []compatCase{
		{name: "bearer header", path: "/ntfy/{key}/publish?m=1", header: auth("Bearer " + token), want: map[string]any{"body": "1"}},
		{name: "basic with empty user", path: "/ntfy/{key}/publish?m=2", header: auth("Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token))),
			want: map[string]any{"body": "2"}},
		{name: "auth parameter", path: "/ntfy/{key}/publish?m=3&auth=" + b64("Bearer "+token), want: map[string]any{"body": "3"}},
		{name: "JSON publishing with the auth parameter", method: "POST", path: "/ntfy?auth=" + b64("Bearer "+token),
			body: `{"topic":"{key}","message":"4"}`, want: map[string]any{"body": "4"}},
		{name: "no token", path: "/ntfy/{key}/publish?m=x", status: 401, code: "authentication_failed"},
		{name: "wrong token", path: "/ntfy/{key}/publish?m=x", header: auth("Bearer nope"), status: 401, code: "authentication_failed"},
		{name: "wrong auth parameter", path: "/ntfy/{key}/publish?m=x&auth=" + b64("Bearer nope"), status: 401, code: "authentication_failed"},
		{name: "basic with a user name", path: "/ntfy/{key}/publish?m=x", header: auth("Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+token))),
			status: 401, code: "authentication_failed"},
	})
}

// TestCompatNtfyCORS: a page of another origin can publish to the ntfy
// routes as to ntfy: the preflight is answered without the token and
// appends nothing, and every answer (a refusal too) may be read by the
// page; PushGo's own routes stay without CORS, as PushGo's.
func TestCompatNtfyCORS(t *testing.T) {
	const token = "gateway-token-2"
	g := startIngest(t, startBroker(t), ingest.Config{Token: token})
	g.api.Bearer = token
	ch := g.createChannel("ntfy-cors")
	key := expandCompat("{key}", ch)
	send := func(method, path string, header http.Header) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, g.api.Base+path, strings.NewReader("from a page"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		req.Header.Set("Origin", "https://status.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	before := len(streamOps(t, g.nc))
	for _, path := range []string{"/ntfy/" + key, "/ntfy"} {
		pre := send(http.MethodOptions, path, http.Header{
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"authorization,title"}})
		h := pre.Header
		if pre.StatusCode != http.StatusOK || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "*") {
			t.Fatalf("preflight of %s: %d %v", path, pre.StatusCode, h)
		}
	}
	if n := len(streamOps(t, g.nc)); n != before {
		t.Fatalf("a preflight appended %d operations", n-before)
	}
	ok := send(http.MethodPost, "/ntfy/"+key, http.Header{"Authorization": {"Bearer " + token}, "Title": {"Page"}})
	refused := send(http.MethodPost, "/ntfy/"+key, http.Header{})
	if ok.StatusCode != http.StatusOK || ok.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("publish: %d %v", ok.StatusCode, ok.Header)
	}
	if refused.StatusCode != http.StatusUnauthorized || refused.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("publish without the token: %d %v", refused.StatusCode, refused.Header)
	}
	if n := len(streamOps(t, g.nc)); n != before+1 {
		t.Fatalf("%d operations appended, want 1", n-before)
	}
	own := send(http.MethodOptions, "/message", http.Header{"Access-Control-Request-Method": {"POST"}})
	if own.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("POST /message's preflight allowed: %v", own.Header)
	}
}

package ingest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// chunked hides the length of a body so the server sees Transfer-Encoding:
// chunked and must enforce the limit on the bytes it reads.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestConventions covers spec section 1 at the HTTP level: every rule with
// an accepted and a rejected request, asserting status and error_code.
func TestConventions(t *testing.T) {
	b := startBroker(t)
	const token = "s3cret-gateway-token"
	g := startIngest(t, b, ingest.Config{Token: token})
	ch := ""
	{ // the channel, made with the token
		r := g.api.Send(t, "POST", "/channel/create", `{"channel_name":"conv","password":"`+password+`"}`, http.Header{"Authorization": {"Bearer " + token}})
		ch = mustOK(t, r).Str("channel_id")
	}
	valid := `{"channel_id":"` + ch + `","password":"` + password + `","title":"t","observed_at":1713750000}`
	big := `{"channel_id":"` + ch + `","password":"` + password + `","observed_at":1713750000,"description":"` + strings.Repeat("x", 33_000) + `"}`

	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		auth        string
		body        io.Reader
		status      int
		code        string
	}{
		{"accepted", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(valid), 200, ""},
		{"charset parameter allowed", "POST", "/thing/create", "application/json; charset=utf-8", "Bearer " + token, strings.NewReader(valid), 200, ""},
		{"scheme case-insensitive", "POST", "/thing/create", "application/json", "bEaReR " + token, strings.NewReader(valid), 200, ""},
		{"no token", "POST", "/thing/create", "application/json", "", strings.NewReader(valid), 401, "authentication_failed"},
		{"wrong token", "POST", "/thing/create", "application/json", "Bearer nope", strings.NewReader(valid), 401, "authentication_failed"},
		{"two tokens", "POST", "/thing/create", "application/json", "Bearer " + token + " " + token, strings.NewReader(valid), 401, "authentication_failed"},
		{"basic scheme", "POST", "/thing/create", "application/json", "Basic " + token, strings.NewReader(valid), 401, "authentication_failed"},
		{"token too long", "POST", "/thing/create", "application/json", "Bearer " + strings.Repeat("a", 4097), strings.NewReader(valid), 401, "authentication_failed"},
		// /healthz, /readyz and /metrics are served, open, by the process
		// in front of this API for every target: e2e TestPrivateGateway and
		// internal/gateway's tests hold them.
		{"wrong content type", "POST", "/thing/create", "text/plain", "Bearer " + token, strings.NewReader(valid), 400, "missing_json_content_type"},
		{"no content type", "POST", "/thing/create", "", "Bearer " + token, strings.NewReader(valid), 400, "missing_json_content_type"},
		{"empty body", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(""), 400, "invalid_request_body"},
		{"malformed", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(`{"channel_id":`), 400, "invalid_json_syntax"},
		{"trailing data", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(valid + `{}`), 400, "invalid_json_syntax"},
		{"unknown member", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, `"title"`, `"nickname"`, 1)), 400, "invalid_json_data"},
		{"case variant", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, `"title"`, `"Title"`, 1)), 400, "invalid_json_data"},
		{"duplicate member", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, `"title":"t"`, `"title":"t","title":"u"`, 1)), 400, "invalid_json_data"},
		{"wrong type", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, `"title":"t"`, `"title":7`, 1)), 400, "invalid_json_data"},
		{"too large", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(big), 413, "payload_too_large"},
		{"too large chunked", "POST", "/thing/create", "application/json", "Bearer " + token, chunked{strings.NewReader(big)}, 413, "payload_too_large"},
		{"small chunked", "POST", "/thing/create", "application/json", "Bearer " + token, chunked{strings.NewReader(valid)}, 200, ""},
		{"bad channel id", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, ch, "not-a-channel", 1)), 400, "invalid_channel_id"},
		{"lower-case channel id", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, ch, strings.ToLower(ch), 1)), 200, ""},
		{"unknown channel", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, ch, "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1)), 404, "channel_not_found"},
		{"wrong password", "POST", "/thing/create", "application/json", "Bearer " + token, strings.NewReader(strings.Replace(valid, password, "wrong-password", 1)), 403, "password_mismatch"},
		{"unknown route", "POST", "/thing/explode", "application/json", "Bearer " + token, strings.NewReader(valid), 404, "route_not_found"},
		{"wrong method", "GET", "/thing/create", "", "Bearer " + token, nil, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Exactly the case's headers: "" sends none.
			r := g.api.Send(t, c.method, c.path, c.body, http.Header{"Content-Type": {c.contentType}, "Authorization": {c.auth}})
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.Status, r.Code(), c.status, c.code, r.Body)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
			// The envelope: success without error members, or failure with
			// null data, a message and PushGo's problem object. (A success
			// used to carry "error": null and "error_code": null; the
			// Android app reads both with org.json's optString, which makes
			// a null the string "null", and fails on a non-empty one:
			// app/src/main/java/io/ethan/pushgo/data/ChannelSubscriptionService.kt,
			// execute. So a success has neither, as PushGo's StatusResponse.)
			raw := string(r.Body)
			if c.status == 200 && (strings.Contains(raw, `"error"`) || strings.Contains(raw, `"error_code"`) || !strings.HasPrefix(raw, `{"success":true,"data":{`)) {
				t.Fatalf("success envelope carries error members: %s", raw)
			}
			if c.status != 200 && (!strings.Contains(raw, `"data":null`) || r.Error == nil || *r.Error == "" ||
				!strings.Contains(raw, `"problem":{"code":"`+c.code+`","category":"`)) {
				t.Fatalf("failure envelope malformed: %s", raw)
			}
		})
	}

	t.Run("request id echoed", func(t *testing.T) {
		if got := g.api.Get(t, "/healthz", http.Header{"X-Request-Id": {"trace-abc-123"}}).Header.Get("X-Request-Id"); got != "trace-abc-123" {
			t.Fatalf("X-Request-Id %q", got)
		}
	})
}

// TestChannelRoutes: create, exists and rename, and a rename made through
// one replica taking effect on another.
func TestChannelRoutes(t *testing.T) {
	b := startBroker(t)
	a, c := startIngest(t, b, ingest.Config{}), startIngest(t, b, ingest.Config{})
	ch := a.createChannel("before")

	get := func(g *gw, q string) reply {
		return g.api.Get(t, "/channel/exists?"+q, nil)
	}
	// A channel made on one replica is visible on another at once.
	if r := mustOK(t, get(c, "channel_id="+strings.ToLower(ch))); r.Data["exists"] != true || r.Str("channel_name") != "before" || r.Str("channel_id") != ch {
		t.Fatalf("exists on other replica: %s", r.Body)
	}
	if r := mustOK(t, get(a, "channel_id=01ARZ3NDEKTSV4RRFFQ69G5FAV")); r.Data["exists"] != false {
		t.Fatalf("unknown channel exists: %s", r.Body)
	}
	if r := get(a, "channel_id=bad"); r.Status != 400 || r.Code() != "invalid_channel_id" {
		t.Fatalf("bad id: %d %s", r.Status, r.Body)
	}
	if r := get(a, "channel_id="+ch+"&x=1"); r.Status != 400 || r.Code() != "invalid_query" {
		t.Fatalf("unknown parameter: %d %s", r.Status, r.Body)
	}
	// Warm the password cache on replica a, then rename through c.
	mustOK(t, a.post("/thing/create", body(ch, "observed_at", 1713750000)))
	if r := c.post("/channel/rename", map[string]any{"channel_id": ch, "password": "wrong-password", "channel_name": "x"}); r.Status != 403 || r.Code() != "password_mismatch" {
		t.Fatalf("rename with wrong password: %d %s", r.Status, r.Body)
	}
	if r := mustOK(t, c.post("/channel/rename", map[string]any{"channel_id": ch, "password": password, "channel_name": "after"})); r.Str("channel_name") != "after" {
		t.Fatalf("rename: %s", r.Body)
	}
	waitFor(t, func() bool { return get(a, "channel_id="+ch).Str("channel_name") == "after" })
	// After the rename, replica a verifies again (its cached proof names
	// the record's old revision: one hash), then answers from its cache
	// again (none); the right password passes, a wrong one does not.
	h := hashes(t, a)
	mustOK(t, a.post("/thing/create", body(ch, "observed_at", 1713750000)))
	if got := hashes(t, a); got != h+1 {
		t.Errorf("the first write after the rename made %v password hashes, want 1 (verified again)", got-h)
	}
	mustOK(t, a.post("/thing/create", body(ch, "observed_at", 1713750001)))
	if got := hashes(t, a); got != h+1 {
		t.Errorf("the second write after the rename made %v more password hashes, want none (cached again)", got-h-1)
	}
	if r := a.post("/thing/create", map[string]any{"channel_id": ch, "password": "wrong-password", "observed_at": 1713750000}); r.Status != 403 {
		t.Fatalf("wrong password after rename: %d %s", r.Status, r.Body)
	}
	if r := a.post("/channel/create", map[string]any{"channel_name": "", "password": password}); r.Status != 400 || r.Code() != "channel_name_required" {
		t.Fatalf("empty name: %d %s", r.Status, r.Body)
	}
	if r := a.post("/channel/create", map[string]any{"channel_name": "ok", "password": "short"}); r.Status != 400 || r.Code() != "invalid_password" {
		t.Fatalf("short password: %d %s", r.Status, r.Body)
	}
}

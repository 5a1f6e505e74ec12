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
	b := startBroker(t, "")
	const token = "s3cret-gateway-token"
	g := startIngest(t, b, ingest.Config{Token: token})
	ch := ""
	{ // the channel, made with the token
		req, _ := http.NewRequest("POST", g.url+"/channel/create", strings.NewReader(`{"channel_name":"conv","password":"`+password+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		ch = mustOK(t, g.do(req)).str("channel_id")
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
		{"healthz open", "GET", "/healthz", "", "", nil, 200, ""},
		// Open, but not ready: no projector runs in these tests.
		{"readyz open", "GET", "/readyz", "", "", nil, 503, "broker_unavailable"},
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
			req, _ := http.NewRequest(c.method, g.url+c.path, c.body)
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			r := g.do(req)
			if r.Status != c.status || r.code() != c.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.Status, r.code(), c.status, c.code, r.Raw)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
			// The envelope: success with null error fields, or failure with
			// null data and a message.
			raw := string(r.Raw)
			if c.status == 200 && (!strings.Contains(raw, `"error":null`) || !strings.Contains(raw, `"error_code":null`)) {
				t.Fatalf("success envelope lacks null error fields: %s", raw)
			}
			if c.status != 200 && (!strings.Contains(raw, `"data":null`) || r.Error == nil || *r.Error == "") {
				t.Fatalf("failure envelope malformed: %s", raw)
			}
		})
	}

	t.Run("request id echoed", func(t *testing.T) {
		req, _ := http.NewRequest("GET", g.url+"/healthz", nil)
		req.Header.Set("X-Request-Id", "trace-abc-123")
		if got := g.do(req).Header.Get("X-Request-Id"); got != "trace-abc-123" {
			t.Fatalf("X-Request-Id %q", got)
		}
	})
}

// TestChannelRoutes: create, exists and rename, and a rename made through
// one replica taking effect on another.
func TestChannelRoutes(t *testing.T) {
	b := startBroker(t, "")
	a, c := startIngest(t, b, ingest.Config{}), startIngest(t, b, ingest.Config{})
	ch := a.createChannel("before")

	get := func(g *gw, q string) reply {
		req, _ := http.NewRequest("GET", g.url+"/channel/exists?"+q, nil)
		return g.do(req)
	}
	// A channel made on one replica is visible on another at once.
	if r := mustOK(t, get(c, "channel_id="+strings.ToLower(ch))); r.Data["exists"] != true || r.str("channel_name") != "before" || r.str("channel_id") != ch {
		t.Fatalf("exists on other replica: %s", r.Raw)
	}
	if r := mustOK(t, get(a, "channel_id=01ARZ3NDEKTSV4RRFFQ69G5FAV")); r.Data["exists"] != false {
		t.Fatalf("unknown channel exists: %s", r.Raw)
	}
	if r := get(a, "channel_id=bad"); r.Status != 400 || r.code() != "invalid_channel_id" {
		t.Fatalf("bad id: %d %s", r.Status, r.Raw)
	}
	if r := get(a, "channel_id="+ch+"&x=1"); r.Status != 400 || r.code() != "invalid_query" {
		t.Fatalf("unknown parameter: %d %s", r.Status, r.Raw)
	}
	// Warm the password cache on replica a, then rename through c.
	mustOK(t, a.post("/thing/create", body(ch, "observed_at", 1713750000)))
	if r := c.post("/channel/rename", map[string]any{"channel_id": ch, "password": "wrong-password", "channel_name": "x"}); r.Status != 403 || r.code() != "password_mismatch" {
		t.Fatalf("rename with wrong password: %d %s", r.Status, r.Raw)
	}
	if r := mustOK(t, c.post("/channel/rename", map[string]any{"channel_id": ch, "password": password, "channel_name": "after"})); r.str("channel_name") != "after" {
		t.Fatalf("rename: %s", r.Raw)
	}
	waitFor(t, func() bool { return get(a, "channel_id="+ch).str("channel_name") == "after" })
	// After the rename, replica a verifies again: the right password
	// passes, a wrong one does not.
	mustOK(t, a.post("/thing/create", body(ch, "observed_at", 1713750000)))
	if r := a.post("/thing/create", map[string]any{"channel_id": ch, "password": "wrong-password", "observed_at": 1713750000}); r.Status != 403 {
		t.Fatalf("wrong password after rename: %d %s", r.Status, r.Raw)
	}
	if r := a.post("/channel/create", map[string]any{"channel_name": "", "password": password}); r.Status != 400 || r.code() != "channel_name_required" {
		t.Fatalf("empty name: %d %s", r.Status, r.Raw)
	}
	if r := a.post("/channel/create", map[string]any{"channel_name": "ok", "password": "short"}); r.Status != 400 || r.code() != "invalid_password" {
		t.Fatalf("short password: %d %s", r.Status, r.Raw)
	}
}

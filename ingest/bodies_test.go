package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/apitest"
)

// The request bodies of every route that reads one: Content-Encoding and a
// body that does not arrive in time, the same on the PushGo routes, the
// compat routes and the integration routes (one reader, limits.ReadBody).

// gz is s as one gzip member.
func gz(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantRefusal fails unless r is status with error_code code in the PushGo
// envelope, not retryable, and returns its problem object.
func wantRefusal(t *testing.T, what string, r reply, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status || r.Code() != code {
		t.Fatalf("%s: got %d %q, want %d %q: %s", what, r.Status, r.Code(), status, code, r.Body)
	}
	p, _ := r.Object(t)["problem"].(map[string]any)
	if p == nil || p["code"] != code || p["status"] != float64(status) {
		t.Fatalf("%s: problem %v", what, p)
	}
	return p
}

// TestContentEncodingOnEveryRoute: a body's Content-Encoding is honoured
// on every route that reads a body. gzip is decoded and the request served
// as if sent plain; a body marked gzip that is not gzip is 400
// invalid_request_body; one whose decoded bytes pass the route's limit (a
// gzip bomb) is 413 payload_too_large; identity is none; any other coding
// is 415 unsupported_content_encoding (not retryable, a validation
// problem) with Accept-Encoding: gzip, in the route's own shape on the
// integration routes. A refusal appends nothing. Until 6 December the
// header was ignored: a body marked gzip or br that was not was accepted,
// and a gzip one was refused as invalid JSON.
func TestContentEncodingOnEveryRoute(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("encodings")
	appended := func() int { return len(streamOps(t, g.nc)) }
	enc := func(coding string, h ...string) http.Header {
		hdr := http.Header{"Content-Encoding": {coding}}
		for i := 0; i+1 < len(h); i += 2 {
			hdr.Set(h[i], h[i+1])
		}
		return hdr
	}

	// The PushGo routes.
	msg := `{"channel_id":"` + ch + `","password":"` + password + `","title":"gzipped title"}`
	event := `{"channel_id":"` + ch + `","password":"` + password + `","title":"Deploy","status":"running","message":"started","severity":"normal","event_time":1713750000000}`
	thing := `{"channel_id":"` + ch + `","password":"` + password + `","title":"nas","observed_at":1713750000}`
	bomb := `{"channel_id":"` + ch + `","password":"` + password + `","title":"x","body":"` + strings.Repeat("x", 40_000) + `"}`
	for _, route := range []struct{ path, body string }{{"/message", msg}, {"/event/create", event}, {"/thing/create", thing}} {
		before := appended()
		r := g.api.Send(t, "POST", route.path, route.body, enc("br"))
		p := wantRefusal(t, route.path+" br", r, http.StatusUnsupportedMediaType, "unsupported_content_encoding")
		if p["category"] != "validation" || p["retryable"] != false || r.Header.Get("Accept-Encoding") != "gzip" {
			t.Fatalf("%s br: problem %v, Accept-Encoding %q", route.path, p, r.Header.Get("Accept-Encoding"))
		}
		wantRefusal(t, route.path+" deflate", g.api.Send(t, "POST", route.path, route.body, enc("deflate")), 415, "unsupported_content_encoding")
		wantRefusal(t, route.path+" gzip, not gzip", g.api.Send(t, "POST", route.path, route.body, enc("gzip")), 400, "invalid_request_body")
		wantRefusal(t, route.path+" gzip, truncated", g.api.Send(t, "POST", route.path, gz(t, route.body)[:20], enc("gzip")), 400, "invalid_request_body")
		wantRefusal(t, route.path+" gzip bomb", g.api.Send(t, "POST", route.path, gz(t, bomb), enc("gzip")), 413, "payload_too_large")
		if n := appended() - before; n != 0 {
			t.Fatalf("%s: %d operations appended by refused bodies", route.path, n)
		}
		mustOK(t, g.api.Send(t, "POST", route.path, gz(t, route.body), enc("gzip")))
		mustOK(t, g.api.Send(t, "POST", route.path, route.body, enc("identity")))
		if n := appended() - before; n != 2 {
			t.Fatalf("%s: %d operations appended by a gzip and an identity body, want 2", route.path, n)
		}
	}
	ops := streamOps(t, g.nc)
	var first map[string]any
	for _, m := range ops {
		if e := envelopeOf(t, m); e.Op == "message.create" {
			if err := json.Unmarshal(e.Payload, &first); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if first["title"] != "gzipped title" {
		t.Fatalf("the gzip message was appended as %v", first)
	}
	// A route that appends nothing reads its body the same way.
	created := mustOK(t, g.api.Send(t, "POST", "/channel/create", gz(t, `{"channel_name":"zipped","password":"`+password+`"}`), enc("x-gzip")))
	if created.Str("channel_name") != "zipped" {
		t.Fatalf("/channel/create from gzip: %s", created.Body)
	}
	wantRefusal(t, "/channel/create zstd", g.api.Send(t, "POST", "/channel/create", `{"channel_name":"z","password":"`+password+`"}`, enc("zstd")), 415, "unsupported_content_encoding")

	// The compat routes.
	key := ch + ":" + password
	for _, c := range []struct{ path, body, contentType string }{
		{"/ntfy/" + key, "gzipped ntfy", "text/plain"},
		{"/bark/push", `{"device_key":"` + key + `","body":"gzipped bark"}`, "application/json"},
		{"/serverchan/" + key, "title=gzipped+serverchan", "application/x-www-form-urlencoded"},
	} {
		before := appended()
		r := g.api.Send(t, "POST", c.path, c.body, enc("br", "Content-Type", c.contentType))
		wantRefusal(t, c.path+" br", r, 415, "unsupported_content_encoding")
		if r.Header.Get("Accept-Encoding") != "gzip" {
			t.Fatalf("%s br: Accept-Encoding %q", c.path, r.Header.Get("Accept-Encoding"))
		}
		wantRefusal(t, c.path+" gzip, not gzip", g.api.Send(t, "POST", c.path, c.body, enc("gzip", "Content-Type", c.contentType)), 400, "invalid_request_body")
		if n := appended() - before; n != 0 {
			t.Fatalf("%s: %d operations appended by refused bodies", c.path, n)
		}
		mustOK(t, g.api.Send(t, "POST", c.path, gz(t, c.body), enc("gzip", "Content-Type", c.contentType)))
		last := envelopeOf(t, streamOps(t, g.nc)[appended()-1])
		if !strings.Contains(string(last.Payload), "gzipped") {
			t.Fatalf("%s: the gzip body was appended as %s", c.path, last.Payload)
		}
	}

	// The integration routes, each in its tool's shape.
	tok := mustOK(t, g.post("/channel/token/create", body(ch, "name", "tool", "scopes", []string{"events.ingest"}))).Str("token")
	am := `{"version":"4","status":"firing","receiver":"r","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f"}]}`
	for _, c := range []struct {
		path, body, contentType string
		ok                      int
		shape                   func(r reply) bool // the refusal is in the tool's shape
	}{
		{"/api/v2/events/ingest", `{"eventType":"CUSTOM_ALERT","title":"disk full"}`, "application/json", http.StatusCreated,
			func(r reply) bool { return bytes.Contains(r.Body, []byte(`"error":{"code":`)) }},
		{"/v1/event-bus/recv", `{"eventList":[{"source":"App","type":"DEMO_EVENT","id":"e-1"}],"eventBusId":"` + ch + `"}`, "application/json", http.StatusOK,
			func(r reply) bool { return bytes.Contains(r.Body, []byte(`"code":"INVALID_PARAMETER"`)) }},
		{"/cloudevents", `{"specversion":"1.0","id":"c-1","source":"/s","type":"com.example.disk"}`, "application/cloudevents+json", http.StatusAccepted,
			func(r reply) bool { return r.Code() != "" }},
		{"/integrations/alertmanager", am, "application/json", http.StatusOK,
			func(r reply) bool { return r.Code() != "" }},
		{"/v2/enqueue", `{"routing_key":"` + tok + `","event_action":"trigger","payload":{"summary":"disk full","source":"nas","severity":"critical"}}`, "application/json", http.StatusAccepted,
			func(r reply) bool { return bytes.Contains(r.Body, []byte(`"status":"invalid event"`)) }},
	} {
		hdr := func(coding string) http.Header {
			return enc(coding, "Content-Type", c.contentType, "Authorization", "Api-Token "+tok)
		}
		send := func(body any, coding string) reply {
			r, err := g.api.Do(context.Background(), "POST", c.path, body, hdr(coding))
			if err != nil {
				t.Fatalf("%s: %v", c.path, err)
			}
			return r
		}
		before := appended()
		r := send(c.body, "br")
		if r.Status != http.StatusUnsupportedMediaType || !c.shape(r) || r.Header.Get("Accept-Encoding") != "gzip" ||
			(r.Code() != "" && r.Code() != "unsupported_content_encoding") {
			t.Fatalf("%s br: %s (Accept-Encoding %q)", c.path, r, r.Header.Get("Accept-Encoding"))
		}
		if r := send(c.body, "gzip"); r.Status != http.StatusBadRequest || !c.shape(r) || !bytes.Contains(r.Body, []byte("not valid gzip")) {
			t.Fatalf("%s gzip, not gzip: %s", c.path, r)
		}
		if n := appended() - before; n != 0 {
			t.Fatalf("%s: %d operations appended by refused bodies", c.path, n)
		}
		if r := send(gz(t, c.body), "gzip"); r.Status != c.ok {
			t.Fatalf("%s gzip: %s, want %d", c.path, r, c.ok)
		}
		if n := appended() - before; n == 0 {
			t.Fatalf("%s: the gzip body appended nothing", c.path)
		}
	}
	// Alertmanager's larger bound counts the decoded bytes too: a group of
	// 1.5 to 2 MiB sent as some 100 KiB of gzip is served (its bytes taken
	// from the large bodies' budget and given back), one decoding past 16
	// MiB is 413.
	amHdr := enc("gzip", "Authorization", "Api-Token "+tok)
	if r, err := g.api.Do(context.Background(), "POST", "/integrations/alertmanager", gz(t, amGroup(3000)), amHdr); err != nil || r.Status != http.StatusOK {
		t.Fatalf("a large group in gzip: %v %v", r, err)
	}
	waitFor(t, func() bool { return gauge(t, g, "pushgo_limit_large_body_bytes") == 0 }) // given back just after the answer
	before := appended()
	r, err := g.api.Do(context.Background(), "POST", "/integrations/alertmanager", gz(t, `{"version":"`+strings.Repeat(" ", 17<<20)+`"}`), amHdr)
	if err != nil || r.Status != http.StatusRequestEntityTooLarge || r.Code() != "payload_too_large" {
		t.Fatalf("a gzip bomb on the Alertmanager route: %v %v", r, err)
	}
	if n := appended() - before; n != 0 {
		t.Fatalf("%d operations appended by a gzip bomb", n)
	}
}

// stalled is a request body that sends its first n bytes, then nothing
// until release is closed.
type stalled struct {
	r       *bytes.Reader
	n       int
	release chan struct{}
}

func (s *stalled) Read(p []byte) (int, error) {
	if s.n > 0 {
		k, err := s.r.Read(p[:min(len(p), s.n)])
		s.n -= k
		return k, err
	}
	<-s.release
	return 0, io.ErrUnexpectedEOF
}

// sendStalled posts body to base+path with its whole length announced,
// sends its first sent bytes and no more, and returns the answer and
// whether it closes the connection.
func sendStalled(t *testing.T, base, path string, hdr http.Header, body []byte, sent int) (reply, bool) {
	t.Helper()
	s := &stalled{r: bytes.NewReader(body), n: sent, release: make(chan struct{})}
	defer close(s.release)
	req, err := http.NewRequest(http.MethodPost, base+path, s)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &apitest.Reply{Method: http.MethodPost, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: b}
	r.JSONErr = json.Unmarshal(b, &r.Envelope)
	return r, resp.Close
}

// TestSlowBodyIsAnsweredRetryOnEveryRoute: a body that does not arrive
// within the server's read deadline (http.Server.ReadTimeout, 30 s in
// the binary, short here) is answered 503 append_unavailable with
// Retry-After, a retryable too_busy problem, on the PushGo and the compat
// routes, as the integration routes answer their own body deadline: a
// slow network is no reason to drop a message. Nothing is appended, the
// connection is closed, and the same body sent whole is accepted. Until 6
// December it was 400 invalid_request_body, a validation problem, which
// a sender drops. A body over the limit is still 413.
func TestSlowBodyIsAnsweredRetryOnEveryRoute(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("slow")
	// A server of the same API whose whole-request read deadline is short:
	// what the binary's http.Server does after 30 s.
	slow := httptest.NewUnstartedServer(g.svc.Handler())
	// A second, not less: the deadline covers the headers and the first
	// bytes too, which a loaded machine may take a good part of 100 ms to
	// read (a timeout there is no answer at all).
	slow.Config.ReadTimeout = time.Second
	slow.Start()
	t.Cleanup(slow.Close)

	key := ch + ":" + password
	msg := `{"channel_id":"` + ch + `","password":"` + password + `","title":"sent one byte a second"}`
	cases := []struct {
		name, path, contentType, coding string
		body                            []byte
	}{
		{"message", "/message", "application/json", "", []byte(msg)},
		{"message, gzip", "/message", "application/json", "gzip", gz(t, msg)},
		{"event", "/event/create", "application/json", "", []byte(`{"channel_id":"` + ch + `","password":"` + password + `","title":"Deploy","status":"running","message":"started","severity":"normal","event_time":1713750000000}`)},
		{"channel create", "/channel/create", "application/json", "", []byte(`{"channel_name":"slow2","password":"` + password + `"}`)},
		{"ntfy", "/ntfy/" + key, "text/plain", "", []byte("sent one byte a second")},
		{"bark", "/bark/push", "application/json", "", []byte(`{"device_key":"` + key + `","body":"sent one byte a second"}`)},
		{"serverchan", "/serverchan/" + key, "application/x-www-form-urlencoded", "", []byte("title=sent+one+byte+a+second")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {c.contentType}}
			if c.coding != "" {
				hdr.Set("Content-Encoding", c.coding)
			}
			before := len(streamOps(t, g.nc))
			r, closed := sendStalled(t, slow.URL, c.path, hdr, c.body, 12)
			p := wantRefusalRetry(t, r)
			if p["category"] != "too_busy" || p["retryable"] != true || r.Header.Get("Retry-After") != "1" {
				t.Fatalf("problem %v, Retry-After %q: %s", p, r.Header.Get("Retry-After"), r.Body)
			}
			if !closed {
				t.Errorf("the connection is kept after a body that did not arrive")
			}
			if n := len(streamOps(t, g.nc)) - before; n != 0 {
				t.Fatalf("%d operations appended by a body that did not arrive", n)
			}
			// The retry, sent whole, is served.
			if c.path != "/channel/create" {
				mustOK(t, g.api.Send(t, "POST", c.path, c.body, hdr))
			}
		})
	}

	// Too large is still 413, whatever the pace: refused from its length.
	big := []byte(`{"channel_id":"` + ch + `","password":"` + password + `","title":"x","body":"` + strings.Repeat("x", 40_000) + `"}`)
	r, _ := sendStalled(t, slow.URL, "/message", http.Header{"Content-Type": {"application/json"}}, big, 12)
	wantRefusal(t, "too large, stalled", r, 413, "payload_too_large")
}

// wantRefusalRetry fails unless r is 503 append_unavailable, and returns
// its problem object.
func wantRefusalRetry(t *testing.T, r reply) map[string]any {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.Code() != "append_unavailable" {
		t.Fatalf("got %d %q, want 503 append_unavailable: %s", r.Status, r.Code(), r.Body)
	}
	p, _ := r.Object(t)["problem"].(map[string]any)
	if p == nil {
		t.Fatalf("no problem: %s", r.Body)
	}
	return p
}

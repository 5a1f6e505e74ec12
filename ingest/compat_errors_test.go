package ingest_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// TestCompatErrorsAnswerLikePushGoRoutes: a compat route's rejection is the
// same answer as POST /message's for the same error: the text in the
// language Accept-Language asks for, Content-Language, and PushGo's problem
// object carrying the answer's X-Request-Id.
func TestCompatErrorsAnswerLikePushGoRoutes(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("errors")
	zh := http.Header{"Accept-Language": {"zh-CN,zh;q=0.9"}}
	want := g.api.Send(t, "POST", "/message", map[string]any{"channel_id": ch, "password": "wrong-password", "title": "x"}, zh)
	for _, path := range []string{"/ntfy/" + ch + ":wrong-password/publish", "/bark/" + ch + ":wrong-password/x", "/serverchan/" + ch + ":wrong-password"} {
		got := g.api.Send(t, "GET", path, nil, zh)
		if got.Status != want.Status || got.Code() != want.Code() || *got.Error != *want.Error ||
			got.Header.Get("Content-Language") != want.Header.Get("Content-Language") {
			t.Errorf("%s answered %s (Content-Language %q), POST /message %s (%q)", path, got, got.Header.Get("Content-Language"),
				want, want.Header.Get("Content-Language"))
		}
		problem := got.Object(t)["problem"]
		p, ok := problem.(map[string]any)
		if !ok || p["request_id"] != got.Header.Get("X-Request-Id") || p["locale"] != want.Object(t)["problem"].(map[string]any)["locale"] {
			t.Errorf("%s: problem %v, X-Request-Id %q", path, problem, got.Header.Get("X-Request-Id"))
		}
		if !bytes.Contains(got.Body, []byte(`"password_mismatch"`)) {
			t.Errorf("%s: %s", path, got.Body)
		}
	}
}

package ingest_test

import (
	"testing"

	"github.com/pushgo/gateway/ingest"
)

// TestCompatIdempotencyAndToken: op_id makes a compat send idempotent as on
// POST /message (a retry appends nothing and answers the same ids; other
// fields under the same op_id are 409 op_id_conflict), and the Bark and
// ServerChan routes require PUSHGO_TOKEN as a bearer token, as PushGo.
func TestCompatIdempotencyAndToken(t *testing.T) {
	const token = "gateway-token-2"
	g := startIngest(t, startBroker(t), ingest.Config{Token: token})
	g.api.Bearer = token
	ch := g.createChannel("idem")
	for _, route := range []struct{ first, retry, conflict string }{
		{"/ntfy/{key}/publish?m=one&op_id=n-1", "/ntfy/{key}/publish?op_id=n-1&m=one", "/ntfy/{key}/publish?m=two&op_id=n-1"},
		{"/bark/{key}/one?op_id=b-1", "/bark/{key}?body=one&op_id=b-1", "/bark/{key}/two?op_id=b-1"},
		{"/serverchan/{key}.send?title=one&op_id=s-1", "/serverchan/{key}?title=one&op_id=s-1", "/serverchan/{key}?title=two&op_id=s-1"},
	} {
		first := mustOK(t, g.api.Get(t, expandCompat(route.first, ch), nil))
		retry := mustOK(t, g.api.Get(t, expandCompat(route.retry, ch), nil))
		if retry.Str("message_id") != first.Str("message_id") || retry.Str("op_id") != first.Str("op_id") {
			t.Errorf("%s: retry answered %s, first %s", route.retry, retry.Body, first.Body)
		}
		if r := g.api.Get(t, expandCompat(route.conflict, ch), nil); r.Status != 409 || r.Code() != "op_id_conflict" {
			t.Errorf("%s: %s", route.conflict, r)
		}
	}
	if n := len(streamOps(t, g.nc)); n != 3 {
		t.Fatalf("%d operations appended, want one per route", n)
	}

	g.api.Bearer = ""
	runCompat(t, g, ch, []compatCase{
		{name: "bark without token", path: "/bark/{key}/x", status: 401, code: "authentication_failed"},
		{name: "bark push without token", method: "POST", path: "/bark/push", body: `{"device_key":"{key}"}`, status: 401, code: "authentication_failed"},
		{name: "serverchan without token", path: "/serverchan/{key}?title=x", status: 401, code: "authentication_failed"},
		{name: "bark with token", path: "/bark/{key}/x", header: map[string][]string{"Authorization": {"Bearer " + token}},
			want: map[string]any{"body": "x"}},
		{name: "serverchan with token", path: "/serverchan/{key}?title=x", header: map[string][]string{"Authorization": {"Bearer " + token}},
			want: map[string]any{"title": "x"}},
	})
}

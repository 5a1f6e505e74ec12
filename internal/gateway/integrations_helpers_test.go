package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/apitest"
)

// integ is a whole gateway (embedded broker, projector, pusher, ingest)
// with one channel and one integration token of scope events.ingest.
type integ struct {
	t        *testing.T
	g        *Gateway
	base     string
	channel  string
	password string
	token    string
	// api is a client of the gateway; its Bearer is PUSHGO_TOKEN ("" when
	// the gateway is public), sent on the PushGo routes.
	api *apitest.Client
}

const integPassword = "correct-horse"

// startIntegrations starts a gateway (cfg adjusted by the options) and
// creates a channel named name with an events.ingest token.
func startIntegrations(t *testing.T, name string, opts ...func(*Config)) *integ {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	for _, o := range opts {
		o(&cfg)
	}
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()
	it := &integ{t: t, g: g, base: base, password: integPassword, api: &apitest.Client{Base: base, Bearer: cfg.Token}}
	s, _, m := it.pushgo("/channel/create", map[string]any{"channel_name": name, "password": integPassword})
	it.channel = data(t, s, m)["channel_id"].(string)
	it.token = it.newToken("events.ingest")
	return it
}

// newToken creates a token of the channel with the given scopes.
func (it *integ) newToken(scopes ...string) string {
	it.t.Helper()
	s, _, m := it.pushgo("/channel/token/create", map[string]any{
		"channel_id": it.channel, "password": it.password, "name": "test " + strings.Join(scopes, "+"), "scopes": scopes,
	})
	return data(it.t, s, m)["token"].(string)
}

// pushgo posts a PushGo route with a JSON body and returns the envelope.
func (it *integ) pushgo(path string, body map[string]any) (int, http.Header, map[string]any) {
	it.t.Helper()
	r := it.api.Post(it.t, path, body)
	return r.Status, r.Header, r.Object(it.t)
}

// send makes a raw request: headers as given (no Content-Type unless
// given, like curl --data sends form-urlencoded), body as given. It
// returns the status, headers and raw body.
func (it *integ) send(method, path string, headers map[string]string, body string) (int, http.Header, []byte) {
	it.t.Helper()
	hdr := http.Header{"Content-Type": {""}, "Authorization": {""}} // none unless given
	if path == "/cloudevents" {
		// The answer that lists the Events recorded, which these tests
		// read (by default a success is 202 with no body: TestCloudEventsForKnative).
		hdr.Set("Accept", "application/json")
	}
	for k, v := range headers {
		hdr.Set(k, v)
	}
	r := it.api.Send(it.t, method, path, body, hdr)
	return r.Status, r.Header, r.Body
}

// thing creates a Thing of the channel with the given title, attrs and
// tags, and returns its id.
func (it *integ) thing(title string, attrs map[string]any, tags ...string) string {
	it.t.Helper()
	body := map[string]any{"channel_id": it.channel, "password": it.password, "title": title,
		"observed_at": time.Now().UnixMilli(), "attrs": attrs}
	if len(tags) > 0 {
		body["tags"] = tags
	}
	s, _, m := it.pushgo("/thing/create", body)
	return data(it.t, s, m)["thing_id"].(string)
}

// events lists the channel's events (state "" for all), read after every
// write acknowledged before the call.
func (it *integ) events(state string) []map[string]any {
	it.t.Helper()
	body := map[string]any{"channel_id": it.channel, "password": it.password, "limit": 1000}
	if state != "" {
		body["state"] = state
	}
	s, _, m := it.pushgo("/channel/events", body)
	var out []map[string]any
	for _, item := range data(it.t, s, m)["items"].([]any) {
		out = append(out, item.(map[string]any))
	}
	return out
}

// event reads one event snapshot.
func (it *integ) event(id string) map[string]any {
	it.t.Helper()
	s, _, m := it.pushgo("/event/get", map[string]any{"channel_id": it.channel, "password": it.password, "event_id": id})
	return data(it.t, s, m)
}

// history returns the channel's history items (every operation, in log
// order).
func (it *integ) history() []map[string]any {
	it.t.Helper()
	s, _, m := it.pushgo("/channel/history", map[string]any{"channel_id": it.channel, "password": it.password, "limit": 1000})
	var out []map[string]any
	for _, item := range data(it.t, s, m)["items"].([]any) {
		out = append(out, item.(map[string]any))
	}
	return out
}

// decode unmarshals a raw JSON body into a map, failing the test on bad
// JSON.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

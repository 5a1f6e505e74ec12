package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/apitest"
)

// TestRegistryRoutesAnswerWithinTheAppendTimeout is issue 12's row: with
// the broker down, the routes that write the registries (channels,
// devices, subscriptions, integration tokens) answered 503 after
// JetStream's default timeout per round trip, whatever
// PUSHGO_APPEND_TIMEOUT said: 5 s for most, 10 s for /channel/create, 15 s
// for /device/register. Each answers 503 with Retry-After now, bounded by
// the append timeout (here 500 ms) as an append is; the check allows 8
// times that, still below the 5 s the old code could not go under.
func TestRegistryRoutesAnswerWithinTheAppendTimeout(t *testing.T) {
	const appendTimeout = 500 * time.Millisecond
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	cfg.AppendTimeout = appendTimeout
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	c := apitest.New("http://" + g.Addr())
	ch := apitest.MustOK(t, c.Post(t, "/channel/create", map[string]any{"channel_name": "x", "password": "correct-horse"})).Str("channel_id")
	dk := apitest.MustOK(t, c.Post(t, "/device/register", map[string]any{"platform": "android"})).Str("device_key")
	g.broker.Shutdown()

	pw := "correct-horse"
	for _, r := range []struct {
		path string
		body map[string]any
	}{
		{"/channel/create", map[string]any{"channel_name": "y", "password": pw}},
		{"/channel/rename", map[string]any{"channel_id": ch, "password": pw, "channel_name": "z"}},
		{"/device/register", map[string]any{"platform": "android"}},
		{"/device/register", map[string]any{"platform": "ios", "device_key": dk}},
		{"/channel/device", map[string]any{"device_key": dk, "channel_type": "fcm", "provider_token": "tok"}},
		{"/channel/subscribe", map[string]any{"device_key": dk, "password": pw, "channel_id": ch}},
		{"/channel/subscribe", map[string]any{"device_key": dk, "password": pw, "channel_name": "new"}},
		{"/channel/unsubscribe", map[string]any{"device_key": dk, "channel_id": ch}},
		{"/channel/sync", map[string]any{"device_key": dk, "channels": []any{map[string]any{"channel_id": ch, "password": pw}}}},
		{"/channel/device/delete", map[string]any{"device_key": dk, "channel_type": "fcm"}},
		{"/channel/device/provider-token/retire", map[string]any{"platform": "android", "provider_token": "tok"}},
		{"/channel/token/create", map[string]any{"channel_id": ch, "password": pw, "name": "n", "scopes": []string{"events.ingest"}}},
		{"/event/create", map[string]any{"channel_id": ch, "password": pw, "title": "t", "status": "s", "message": "m", "severity": "low", "event_time": 1713750000}},
	} {
		start := time.Now()
		rep := c.Post(t, r.path, r.body)
		took := time.Since(start)
		t.Logf("%s %d %s", r.path, rep.Status, took.Round(time.Millisecond))
		if rep.Status != 503 || rep.Header.Get("Retry-After") == "" {
			t.Errorf("%s with the broker down: %s, want 503 with Retry-After", r.path, rep)
		}
		if took > 8*appendTimeout {
			t.Errorf("%s with the broker down: answered after %s, want about the append timeout (%s)", r.path, took.Round(time.Millisecond), appendTimeout)
		}
	}
}

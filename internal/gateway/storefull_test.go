package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest/apitest"
)

// TestStoreFullIsSaidClearly: when the broker's storage reaches its limit
// (PUSHGO_MAX_STORE, tiny here) because senders filled it, a write answers
// 507 store_full, not retryable and without Retry-After, on the append
// path and on the registry routes alike (/device/register, the anonymous
// route the issue saw fill a store); /readyz says store_full instead of
// ready; and pushgo_store_full is 1 for an alert rule. Before, every write
// answered 503 "retry" forever while /readyz said ready.
func TestStoreFullIsSaidClearly(t *testing.T) {
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen = "127.0.0.1:0", t.TempDir(), "off"
	cfg.MaxStore = 4 << 20
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	base := "http://" + g.Addr()
	api := apitest.New(base)

	status, _, m := post(t, base, "/channel/create", `{"channel_name":"full","password":"correct-horse"}`)
	if status != 200 {
		t.Fatalf("channel create: %d %v", status, m)
	}
	ch := m["data"].(map[string]any)["channel_id"].(string)
	if r := api.Get(t, "/readyz", nil); r.Status != 200 {
		t.Fatalf("/readyz before the store fills: %d %s", r.Status, r.Body)
	}

	// Senders fill the store: 16 KiB messages until one is refused.
	msg := `{"channel_id":"` + ch + `","password":"correct-horse","title":"filler","ciphertext":"` + strings.Repeat("A", 16000) + `"}`
	var refused map[string]any
	var hdr map[string][]string
	for i := 0; i < 1000; i++ {
		st, h, m := post(t, base, "/message", msg)
		if st == 200 {
			continue
		}
		status, hdr, refused = st, h, m
		break
	}
	if refused == nil {
		t.Fatal("1000 messages of 16 KiB fit a 4 MiB store")
	}
	expectFull := func(what string, status int, h map[string][]string, m map[string]any) {
		t.Helper()
		problem, _ := m["problem"].(map[string]any)
		if status != 507 || m["error_code"] != "store_full" || len(h["Retry-After"]) != 0 || problem["retryable"] != false {
			t.Fatalf("%s with the store full: %d %v Retry-After=%v; want 507 store_full, not retryable, no Retry-After", what, status, m, h["Retry-After"])
		}
	}
	expectFull("/message", status, hdr, refused)
	st, h, m := post(t, base, "/device/register", `{"platform":"android"}`)
	expectFull("/device/register", st, h, m)
	st, h, m = post(t, base, "/event/create", `{"channel_id":"`+ch+`","password":"correct-horse","title":"t","status":"s","message":"m","severity":"low","event_time":1713750000}`)
	expectFull("/event/create", st, h, m)

	r := api.Get(t, "/readyz", nil)
	if r.Status != 507 || !strings.Contains(string(r.Body), `"error_code":"store_full"`) || r.Header.Get("Retry-After") != "" {
		t.Fatalf("/readyz with the store full: %d %s", r.Status, r.Body)
	}
	r = api.Get(t, "/metrics", nil)
	if !strings.Contains(string(r.Body), "\npushgo_store_full 1\n") || !strings.Contains(string(r.Body), "\npushgo_store_limit_bytes 4.194304e+06\n") {
		t.Fatalf("/metrics with the store full lacks pushgo_store_full 1 and the limit:\n%s", grepLines(string(r.Body), "pushgo_store_"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

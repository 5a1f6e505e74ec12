package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/apitest"
)

// TestPoisonedLogEntryIsListed: an entry of PUSHGO_OPS that is not an
// operation (what any publisher on the subject could append) does not stop
// the gateway: the projector sets it aside, /deadletters lists its
// sequence and why, /metrics counts it, /readyz stays ready, and the
// writes and reads after it work. Before, the projector stopped for good
// on it, and a restart or PUSHGO_REBUILD stopped on it again.
func TestPoisonedLogEntryIsListed(t *testing.T) {
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen, cfg.Token = "127.0.0.1:0", t.TempDir(), "off", "ops-token"
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	api := apitest.New("http://" + g.Addr())
	api.Bearer = cfg.Token
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		r := api.Post(t, path, body)
		return r.Status, r.Object(t)
	}

	js, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.Publish(ctx, "pushgo.op.0000000000000000000000BAD0.thing.broken", []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}

	// A write after it is read back: the fold went past the bad entry.
	status, m := post("/channel/create", `{"channel_name":"after","password":"correct-horse"}`)
	if status != 200 {
		t.Fatalf("channel create: %d %v", status, m)
	}
	ch := m["data"].(map[string]any)["channel_id"].(string)
	if status, m = post("/message", `{"channel_id":"`+ch+`","password":"correct-horse","title":"after the poison"}`); status != 200 {
		t.Fatalf("message: %d %v", status, m)
	}
	status, m = post("/channel/history", `{"channel_id":"`+ch+`","password":"correct-horse"}`)
	data, _ := m["data"].(map[string]any)
	if items, _ := data["items"].([]any); status != 200 || len(items) != 1 {
		t.Fatalf("history after the poisoned entry: %d %v", status, m)
	}

	r := api.Get(t, "/deadletters", nil)
	body := string(r.Body)
	if r.Status != 200 || !strings.Contains(body, `"total":1`) || !strings.Contains(body, `"stream":"PUSHGO_OPS"`) ||
		!strings.Contains(body, `"seq":`+strconv.FormatUint(ack.Sequence, 10)+`,`) || !strings.Contains(body, `"reason":"envelope:`) {
		t.Fatalf("/deadletters: %d %s", r.Status, body)
	}
	if r := api.Get(t, "/metrics", nil); !strings.Contains(string(r.Body), `pushgo_projector_dead_letters{stream="PUSHGO_OPS"} 1`) {
		t.Fatalf("/metrics: %s", grepLines(string(r.Body), "dead_letters"))
	}
	if r := api.Get(t, "/readyz", nil); r.Status != 200 {
		t.Fatalf("/readyz after a poisoned entry: %d %s", r.Status, r.Body)
	}
}

// TestDeadLettersAskForTheGatewayToken: on a private gateway (PUSHGO_TOKEN)
// /deadletters answers 401 without the token (its entries name channels
// and entities and quote the log), and lists them with it; the probes stay
// open.
func TestDeadLettersAskForTheGatewayToken(t *testing.T) {
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen, cfg.Token = "127.0.0.1:0", t.TempDir(), "off", "private-gateway-token"
	cfg.Limits.AuthFailuresPerMinute = 3
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	api := apitest.New("http://" + g.Addr())
	if r := api.Get(t, "/deadletters", nil); r.Status != 401 || r.Code() != "authentication_failed" {
		t.Fatalf("/deadletters without the token: %d %s", r.Status, r.Body)
	}
	if r := api.Get(t, "/deadletters", http.Header{"Authorization": {"Bearer wrong"}}); r.Status != 401 {
		t.Fatalf("/deadletters with a wrong token: %d %s", r.Status, r.Body)
	}
	if r := api.Get(t, "/deadletters", http.Header{"Authorization": {"Bearer private-gateway-token"}}); r.Status != 200 || !strings.Contains(string(r.Body), `"total":0`) {
		t.Fatalf("/deadletters with the token: %d %s", r.Status, r.Body)
	}
	if r := api.Get(t, "/healthz", nil); r.Status != 200 {
		t.Fatalf("/healthz: %d", r.Status)
	}
	// Wrong tokens are throttled as on the API (PUSHGO_LIMIT_AUTH_FAILURES,
	// here 3 a minute; two spent above): the right one is refused too,
	// before any check, once they are spent.
	if r := api.Get(t, "/deadletters", http.Header{"Authorization": {"Bearer wrong-again"}}); r.Status != 401 {
		t.Fatalf("/deadletters with a third wrong token: %d %s", r.Status, r.Body)
	}
	if r := api.Get(t, "/deadletters", http.Header{"Authorization": {"Bearer private-gateway-token"}}); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("/deadletters past the failures: %d %v %s", r.Status, r.Header, r.Body)
	}
}

// TestDeadLettersOfAPublicGatewayAreNotListed: without PUSHGO_TOKEN the
// API answers a channel's contents only with its password, and
// /deadletters, which quotes the log of every channel, lists nothing to
// anyone, a request from this host included (a proxy on this host makes
// every request one from the loopback).
func TestDeadLettersOfAPublicGatewayAreNotListed(t *testing.T) {
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen = "127.0.0.1:0", t.TempDir(), "off"
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	api := apitest.New("http://" + g.Addr())
	if r := api.Get(t, "/deadletters", nil); r.Status != 401 || r.Code() != "authentication_failed" ||
		strings.Contains(string(r.Body), `"items"`) || !strings.Contains(string(r.Body), "PUSHGO_TOKEN") {
		t.Fatalf("/deadletters of a public gateway: %d %s", r.Status, r.Body)
	}
	if r := api.Get(t, "/readyz", nil); r.Status != 200 {
		t.Fatalf("/readyz: %d %s", r.Status, r.Body)
	}
}

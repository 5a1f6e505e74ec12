package ingest_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// cheapArgon2 keeps tests fast; production uses registry.DefaultArgon2.
var cheapArgon2 = registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}

const password = "correct-horse"

// startBroker runs a real embedded JetStream server for one test. Its
// streams and buckets are left to ingest.Start, which ensures them with
// the Config's options.
func startBroker(t *testing.T) *brokertest.Broker {
	t.Helper()
	return brokertest.Start(t, brokertest.NoEnsure())
}

// gw is one ingest replica behind an httptest server, with a client of
// its API that fails the test on an answer that is not JSON.
type gw struct {
	t   *testing.T
	api *apitest.Client
	svc *ingest.Service
	nc  *nats.Conn
}

func startIngest(t *testing.T, b *brokertest.Broker, cfg ingest.Config) *gw {
	t.Helper()
	nc, _ := b.Conn(t)
	if cfg.Streams == (streams.Options{}) {
		cfg.Streams = streams.DefaultOptions()
	}
	if cfg.Argon2 == (registry.Argon2Params{}) {
		cfg.Argon2 = cheapArgon2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := ingest.Start(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return &gw{t: t, api: &apitest.Client{Base: srv.URL, RequireJSON: true}, svc: svc, nc: nc}
}

// reply is one answer of the API, its envelope decoded.
type reply = *apitest.Reply

// post sends body (JSON-encoded, or as is when a string) to path.
func (g *gw) post(path string, body any) reply {
	g.t.Helper()
	return g.api.Post(g.t, path, body)
}

// mustOK fails unless r is a 200 success.
var mustOK = apitest.MustOK

func (g *gw) createChannel(name string) string {
	g.t.Helper()
	r := mustOK(g.t, g.post("/channel/create", map[string]any{"channel_name": name, "password": password}))
	return r.Str("channel_id")
}

// body builds a request body for channel ch from key-value pairs.
func body(ch string, kv ...any) map[string]any {
	m := map[string]any{"channel_id": ch, "password": password}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func eventCreate(ch string, kv ...any) map[string]any {
	return body(ch, append([]any{"title", "Deploy", "status", "running", "message", "started", "severity", "normal", "event_time", 1713750000000}, kv...)...)
}

func eventUpdate(ch, id string, kv ...any) map[string]any {
	return body(ch, append([]any{"event_id", id, "status", "running", "message", "progress", "severity", "normal", "event_time", 1713750060000}, kv...)...)
}

// streamOps reads every operation of PUSHGO_OPS in order.
func streamOps(t *testing.T, nc *nats.Conn) []jetstream.RawStreamMsg {
	t.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, *m)
	}
	return out
}

func envelopeOf(t *testing.T, m jetstream.RawStreamMsg) ops.Envelope {
	t.Helper()
	var e ops.Envelope
	if err := json.Unmarshal(m.Data, &e); err != nil {
		t.Fatalf("seq %d: %v", m.Sequence, err)
	}
	return e
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

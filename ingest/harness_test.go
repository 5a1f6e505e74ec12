package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// cheapArgon2 keeps tests fast; production uses registry.DefaultArgon2.
var cheapArgon2 = registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}

const password = "correct-horse"

// startBroker runs a real embedded JetStream server for one test.
func startBroker(t *testing.T, listen string) *broker.Embedded {
	t.Helper()
	b, err := broker.Start(broker.Config{Dir: t.TempDir(), Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

// gw is one ingest replica behind an httptest server.
type gw struct {
	t   *testing.T
	url string
	svc *ingest.Service
	nc  *nats.Conn
}

func startIngest(t *testing.T, b *broker.Embedded, cfg ingest.Config) *gw {
	t.Helper()
	nc, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
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
	t.Cleanup(func() { srv.Close(); svc.Close(); nc.Close() })
	return &gw{t: t, url: srv.URL, svc: svc, nc: nc}
}

// reply is the response envelope.
type reply struct {
	Status    int
	Header    http.Header
	Success   bool            `json:"success"`
	Data      map[string]any  `json:"data"`
	Error     *string         `json:"error"`
	ErrorCode *string         `json:"error_code"`
	Raw       json.RawMessage `json:"-"`
}

func (r reply) code() string {
	if r.ErrorCode == nil {
		return ""
	}
	return *r.ErrorCode
}

func (r reply) str(k string) string { s, _ := r.Data[k].(string); return s }

func (g *gw) post(path string, body any) reply {
	g.t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			g.t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, g.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return g.do(req)
}

func (g *gw) do(req *http.Request) reply {
	g.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if err := json.Unmarshal(raw, &r); err != nil {
		g.t.Fatalf("%s %s: non-JSON answer %d %q", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return r
}

// mustOK fails unless r is a 200 success.
func mustOK(t *testing.T, r reply) reply {
	t.Helper()
	if r.Status != 200 || !r.Success {
		t.Fatalf("want 200, got %d %s", r.Status, r.Raw)
	}
	return r
}

func (g *gw) createChannel(name string) string {
	g.t.Helper()
	r := mustOK(g.t, g.post("/channel/create", map[string]any{"channel_name": name, "password": password}))
	return r.str("channel_id")
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

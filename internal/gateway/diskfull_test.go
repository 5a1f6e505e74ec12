package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestFullDiskIsSaidClearlyAndRecovers fills the real file system under
// the embedded broker's store (a 16 MiB tmpfs mounted on <data
// dir>/jetstream; the projection stays on the test's disk) while the
// gateway serves. Before, JetStream failed the write with "no space left
// on device", answered none after it, and kept that error until the
// process restarted: every write waited out the append timeout and got
// 503 append_unavailable with Retry-After: 1, /readyz said ready and
// pushgo_store_full stayed 0, and freeing space changed nothing. Now:
//   - a write whose publish the full disk left unanswered is 503
//     append_unavailable with its op_id (a publish unanswered may have been
//     stored), and its retry is 507 store_full at once, without
//     Retry-After (the log shows it was not);
//   - later writes (appends and registry writes) are 507 store_full at
//     once (a retry of an acknowledged one is its replay), /readyz is 507
//     store_full naming the disk, pushgo_store_full 1;
//   - once space is freed, without a restart, /readyz is ready again and
//     writes are taken: each retry of a refused op_id is stored once,
//     each retry of an acknowledged one is its replay, and the log holds
//     every acknowledged operation exactly once and nothing refused twice.
func TestFullDiskIsSaidClearlyAndRecovers(t *testing.T) {
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen = "127.0.0.1:0", t.TempDir(), "off"
	cfg.AppendTimeout = 2 * time.Second
	disk := brokertest.MountSmallDisk(t, filepath.Join(cfg.DataDir, "jetstream"), 16<<20)
	logs := &syncLog{}
	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + g.Addr()
	api := apitest.New(base)

	status, _, m := post(t, base, "/channel/create", `{"channel_name":"disk","password":"correct-horse"}`)
	if status != 200 {
		t.Fatalf("channel create: %d %v", status, m)
	}
	ch := m["data"].(map[string]any)["channel_id"].(string)
	message := func(opID string) string {
		return `{"channel_id":"` + ch + `","password":"correct-horse","op_id":"` + opID + `","title":"t","ciphertext":"` + strings.Repeat("A", 16000) + `"}`
	}
	type answer struct {
		status  int
		h       http.Header
		m       map[string]any
		elapsed time.Duration
	}
	send := func(path, body string) answer {
		start := time.Now()
		st, h, m := post(t, base, path, body)
		return answer{st, h, m, time.Since(start)}
	}
	awaitReady := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			r := api.Get(t, "/readyz", nil)
			if r.Status == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz %s: %d %s\n%s", what, r.Status, r.Body, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	awaitReady("at start")

	var acked, refused []string
	for i := range 10 {
		id := fmt.Sprintf("acked-%d", i)
		if a := send("/message", message(id)); a.status != 200 {
			t.Fatalf("message %s: %d %v", id, a.status, a.m)
		}
		acked = append(acked, id)
	}

	expectFull := func(what string, a answer, prompt bool) {
		t.Helper()
		problem, _ := a.m["problem"].(map[string]any)
		if a.status != 507 || a.m["error_code"] != "store_full" || len(a.h["Retry-After"]) != 0 || problem["retryable"] != false {
			t.Fatalf("%s with the disk full: %d %v Retry-After=%v; want 507 store_full, not retryable, no Retry-After", what, a.status, a.m, a.h["Retry-After"])
		}
		if prompt && a.elapsed > time.Second {
			t.Errorf("%s with the disk full answered after %s: want at once", what, a.elapsed)
		}
	}

	// The disk fills between two measures, so a write goes to the broker,
	// which fails to store it and never answers: the publish times out.
	// (When the measure saw the disk full first, the write is refused at
	// once; free the disk and fill it again.)
	latched := false
	for attempt := 0; !latched && attempt < 10; attempt++ {
		if d := g.broker.Disk(); d.Full() {
			t.Fatalf("disk measured full before it was filled: %+v", d)
		}
		brokertest.FillDisk(t, disk, 0)
		id := fmt.Sprintf("latch-%d", attempt)
		a := send("/message", message(id))
		switch {
		case a.status == 200:
			acked = append(acked, id) // it fit in the store's last pages
		case a.elapsed >= cfg.AppendTimeout:
			problem, _ := a.m["problem"].(map[string]any)
			if a.status != 503 || a.m["error_code"] != "append_unavailable" || len(a.h["Retry-After"]) == 0 || problem["op_id"] != id {
				t.Fatalf("a write the full disk left unanswered: %d %v Retry-After=%v; want 503 append_unavailable with its op_id", a.status, a.m, a.h["Retry-After"])
			}
			expectFull("the retry of a write the full disk left unanswered", send("/message", message(id)), true)
			refused = append(refused, id)
			latched = true
			continue
		default:
			expectFull("a write refused before it was tried", a, true)
			refused = append(refused, id)
		}
		brokertest.FreeDisk(t, disk)
		awaitReady("after space was freed")
	}
	if !latched {
		t.Fatalf("no write reached the broker with the disk full in 10 attempts")
	}
	if d := g.broker.Disk(); !strings.Contains(d.WriteErr, "no space left on device") {
		t.Fatalf("JetStream holds no write error after a write failed on the full disk: %+v", d)
	}

	// Writes are refused at once while the disk is full.
	for i := range 3 {
		id := fmt.Sprintf("full-%d", i)
		expectFull("/message", send("/message", message(id)), true)
		refused = append(refused, id)
	}
	// A retry of an acknowledged write (its answer lost) is its replay:
	// a 507 told the client its stored write failed.
	if a := send("/message", message(acked[0])); a.status != 200 {
		t.Fatalf("a retry of acknowledged %s with the disk full: %d %v, want its replay", acked[0], a.status, a.m)
	}
	expectFull("/device/register", send("/device/register", `{"platform":"android"}`), true)
	expectFull("/channel/create", send("/channel/create", `{"channel_name":"more","password":"correct-horse"}`), true)
	r := api.Get(t, "/readyz", nil)
	if r.Status != 507 || !strings.Contains(string(r.Body), `"error_code":"store_full"`) || r.Header.Get("Retry-After") != "" ||
		!strings.Contains(string(r.Body), "disk") || !strings.Contains(string(r.Body), filepath.Join(cfg.DataDir, "jetstream")) {
		t.Fatalf("/readyz with the disk full: %d %s; want 507 store_full naming the disk", r.Status, r.Body)
	}
	if r = api.Get(t, "/metrics", nil); !strings.Contains(string(r.Body), "\npushgo_store_full 1\n") {
		t.Fatalf("/metrics with the disk full:\n%s", grepLines(string(r.Body), "pushgo_store_"))
	}

	// Space is freed; the process recovers by itself.
	brokertest.FreeDisk(t, disk)
	awaitReady("after space was freed")
	if r = api.Get(t, "/metrics", nil); !strings.Contains(string(r.Body), "\npushgo_store_full 0\n") {
		t.Fatalf("/metrics after space was freed:\n%s", grepLines(string(r.Body), "pushgo_store_"))
	}
	for _, id := range refused {
		a := send("/message", message(id))
		if a.status != 200 {
			t.Fatalf("retry of refused %s after recovery: %d %v\n%s", id, a.status, a.m, logs.String())
		}
		if replayed, _ := a.m["data"].(map[string]any)["replayed"].(bool); replayed {
			t.Errorf("retry of refused %s was answered as a replay: it was stored when refused", id)
		}
	}
	for _, id := range acked {
		if a := send("/message", message(id)); a.status != 200 {
			t.Fatalf("retry of acknowledged %s after recovery: %d %v", id, a.status, a.m)
		}
	}
	if a := send("/message", message("after")); a.status != 200 {
		t.Fatalf("a new write after recovery: %d %v", a.status, a.m)
	}

	// The log holds each operation exactly once.
	nc, err := g.broker.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(sctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(sctx)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := s.GetMsg(sctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		count[msg.Header.Get(streams.HeaderOpID)]++
	}
	for _, id := range append(append(append([]string{}, acked...), refused...), "after") {
		if count[id] != 1 {
			t.Errorf("op %s is in the log %d times, want once", id, count[id])
		}
	}
	if !strings.Contains(logs.String(), "JetStream restarted") {
		t.Errorf("no line says JetStream was restarted:\n%s", logs.String())
	}
}

// syncLog collects a logger's lines from concurrent goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

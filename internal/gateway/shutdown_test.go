package gateway

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStopEndsOpenStreams: a GET /channel/stream open when the process is
// told to stop (the console, `pushgo tail`) ends with a comment telling its
// client to reconnect, and Serve returns nil. The HTTP server's shutdown
// does not end a request, and a stream never ends by itself: Serve waited
// out its 10 s grace period and returned "http shutdown: context deadline
// exceeded", which the binary turns into exit code 1, a crash to an
// orchestrator, at every rolling restart.
func TestStopEndsOpenStreams(t *testing.T) {
	cfg := Defaults()
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen = "127.0.0.1:0", t.TempDir(), "off"
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + g.Addr()
	status, _, m := post(t, base, "/channel/create", `{"channel_name":"stop","password":"correct-horse"}`)
	if status != 200 {
		t.Fatalf("channel create: %d %v", status, m)
	}
	ch := m["data"].(map[string]any)["channel_id"].(string)

	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx) }()

	reqCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, base+"/channel/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-PushGo-Channel", ch)
	req.Header.Set("X-PushGo-Password", "correct-horse")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /channel/stream: %d", resp.StatusCode)
	}
	stop()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() { // until the server ends the response
		lines = append(lines, sc.Text())
	}
	if !strings.Contains(strings.Join(lines, "\n"), "gateway is stopping; reconnect with Last-Event-ID") {
		t.Errorf("the stream ended with %q, want a comment telling the client to reconnect", lines)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve with a stream open: %v, want a clean stop", err)
	}
}

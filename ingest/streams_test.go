package ingest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/streams"
)

// sse is one GET /channel/stream over a bare TCP connection: it costs the
// test process little more than the socket, so the memory a test measures
// is the gateway's.
type sse struct {
	conn net.Conn
	resp *http.Response
	br   *bufio.Reader
}

// dialStream opens GET /channel/stream of ch on the server at base
// ("http://host:port"), resuming after lastEventID when it is not empty.
// It returns the answer's status line and headers; on a 200 the events
// are read with next.
func dialStream(t testing.TB, base, ch, lastEventID string) *sse {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	req := "GET /channel/stream HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n" +
		"X-PushGo-Channel: " + ch + "\r\nX-PushGo-Password: " + password + "\r\n"
	if lastEventID != "" {
		req += "Last-Event-ID: " + lastEventID + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		t.Fatalf("GET /channel/stream: %v", err)
	}
	s := &sse{conn: conn, resp: resp, br: bufio.NewReaderSize(resp.Body, 512)}
	t.Cleanup(s.close)
	return s
}

func (s *sse) close() { s.conn.Close() }

// next reads the next event (keep-alive comments skipped) and returns
// its id and data, failing t when none comes within 30 seconds.
func (s *sse) next(t testing.TB) (id, data string) {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	has := false
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			t.Fatalf("channel stream: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" && has:
			return id, data
		case strings.HasPrefix(line, "id: "):
			id, has = line[4:], true
		case strings.HasPrefix(line, "data: "):
			data, has = line[6:], true
		case strings.HasPrefix(line, "event: "):
			has = true
		}
	}
}

// opsConsumers is the number of consumers on PUSHGO_OPS.
func opsConsumers(t testing.TB, g *gw) int {
	t.Helper()
	js, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Consumers
}

// send appends one message with op_id id to ch.
func (g *gw) send(ch, id string) {
	g.t.Helper()
	mustOK(g.t, g.post("/message", body(ch, "title", "live "+id, "op_id", id)))
}

// TestChannelStreamManyShortLived is the regression test of issue 12's
// row "each /channel/stream client creates a JetStream consumer that
// outlives it by 5 minutes → after ~1,050 short-lived streams every new
// stream is empty": 1,100 streams are opened, read and dropped, then a
// new stream still gets the history and a live operation, and the
// consumers on PUSHGO_OPS did not grow with the streams.
func TestChannelStreamManyShortLived(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{DeadlineScan: -1})
	srv := g.api.Base
	ch := g.createChannel("short-lived")
	g.send(ch, "first")
	before := opsConsumers(t, g)
	for i := range 1100 {
		s := dialStream(t, srv, ch, "")
		if s.resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: status %d", i, s.resp.StatusCode)
		}
		if _, data := s.next(t); !strings.Contains(data, `"op_id":"first"`) {
			t.Fatalf("stream %d: first event %s", i, data)
		}
		s.close()
		if i%100 == 99 {
			if n := opsConsumers(t, g); n > before+2 {
				t.Fatalf("after %d short-lived streams PUSHGO_OPS has %d consumers (%d before)", i+1, n, before)
			}
		}
	}
	s := dialStream(t, srv, ch, "")
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", s.resp.StatusCode)
	}
	id, data := s.next(t)
	if !strings.Contains(data, `"op_id":"first"`) {
		t.Fatalf("first event %s", data)
	}
	g.send(ch, "live")
	if id2, data := s.next(t); !strings.Contains(data, `"op_id":"live"`) || id2 <= id {
		t.Fatalf("live event id %s %s (after id %s)", id2, data, id)
	}
}

// TestChannelStreamCursorBound: a Last-Event-ID past the largest log
// sequence (2^63 - 1) is refused 400 invalid_cursor. The stream resumes at
// Last-Event-ID + 1, which the largest uint64 wrapped to 0: the channel's
// whole history was replayed to a client that asked for nothing before
// its cursor. So is one past the log's last operation (a sequence of
// another log: a broker restored or recreated), which skipped every new
// operation up to it, in silence; the log's last itself is accepted.
func TestChannelStreamCursorBound(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{DeadlineScan: -1})
	ch := g.createChannel("cursor")
	g.send(ch, "old")
	for _, id := range []string{"18446744073709551615", "9223372036854775808", "9223372036854775807", "2"} {
		s := dialStream(t, g.api.Base, ch, id)
		if s.resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("Last-Event-ID %s: status %d, want 400", id, s.resp.StatusCode)
		}
		s.close()
	}
	// The stream of a client that has seen "old" resumes after it.
	s := dialStream(t, g.api.Base, ch, "1")
	g.send(ch, "new")
	if _, data := s.next(t); !strings.Contains(data, `"op_id":"new"`) {
		t.Fatalf("first event after Last-Event-ID 1: %s, want the new operation", data)
	}
}

// TestChannelStreamSaysWhereAGapIs: a client resuming after operations
// that aged out of the log (offline longer than the retention) gets a gap
// event first, its id the resume point (a client that does not know it
// drops it as a repeat) and its data where the log now starts, then what
// is left.
func TestChannelStreamSaysWhereAGapIs(t *testing.T) {
	b := startBroker(t)
	so := streams.DefaultOptions()
	so.Retention, so.DedupWindow = 3*time.Second, time.Second
	g := startIngest(t, b, ingest.Config{DeadlineScan: -1, Streams: so})
	ch := g.createChannel("gap")
	for _, id := range []string{"a", "b", "c"} {
		g.send(ch, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := b.JS.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	last := st.CachedInfo().State.LastSeq
	for st.CachedInfo().State.FirstSeq <= last { // a, b and c age out
		time.Sleep(100 * time.Millisecond)
		if _, err := st.Info(ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.send(ch, "d")
	s := dialStream(t, g.api.Base, ch, "1")
	defer s.close()
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", s.resp.StatusCode)
	}
	id, data := s.next(t)
	if want := fmt.Sprintf(`{"after":1,"first_seq":%d}`, last+1); id != "1" || data != want {
		t.Fatalf("first event: id %s data %s, want id 1 data %s", id, data, want)
	}
	if _, data := s.next(t); !strings.Contains(data, `"op_id":"d"`) {
		t.Fatalf("after the gap: %s, want d", data)
	}
}

// TestChannelStreamLeavesOutExpiredMessages: a stream replaying a
// channel's history leaves out a message whose ttl has passed (the spec:
// expired messages are not replayed); one without a ttl, or whose ttl is
// ahead, is sent.
func TestChannelStreamLeavesOutExpiredMessages(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{DeadlineScan: -1})
	ch := g.createChannel("ttl-stream")
	ttl := time.Now().Add(2 * time.Second).UnixMilli()
	mustOK(t, g.post("/message", body(ch, "title", "short-lived", "ttl", ttl, "op_id", "gone")))
	mustOK(t, g.post("/message", body(ch, "title", "kept", "op_id", "kept")))
	for time.Now().UnixMilli() <= ttl {
		time.Sleep(time.Until(time.UnixMilli(ttl + 1)))
	}
	s := dialStream(t, g.api.Base, ch, "")
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", s.resp.StatusCode)
	}
	if _, data := s.next(t); !strings.Contains(data, `"op_id":"kept"`) {
		t.Fatalf("first event %s, want the message without a ttl (the expired one left out)", data)
	}
	mustOK(t, g.post("/message", body(ch, "title", "live", "ttl", time.Now().Add(time.Hour).UnixMilli(), "op_id", "live")))
	if _, data := s.next(t); !strings.Contains(data, `"op_id":"live"`) {
		t.Fatalf("next event %s, want the live message", data)
	}
}

// TestChannelStreamCaps: over the per-channel or the process's cap a
// stream is refused with 429 too_many_streams and a Retry-After, before
// any event; a closed stream frees its place.
func TestChannelStreamCaps(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{DeadlineScan: -1, MaxStreams: 3, MaxStreamsPerChannel: 2})
	srv := g.api.Base
	a, other := g.createChannel("a"), g.createChannel("b")
	refused := func(ch string) {
		t.Helper()
		s := dialStream(t, srv, ch, "")
		defer s.close()
		body, _ := io.ReadAll(s.resp.Body)
		if s.resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"error_code":"too_many_streams"`) {
			t.Fatalf("status %d %s, want 429 too_many_streams", s.resp.StatusCode, body)
		}
		if ra, err := strconv.Atoi(s.resp.Header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Fatalf("Retry-After %q", s.resp.Header.Get("Retry-After"))
		}
	}
	open := func(ch string) *sse {
		t.Helper()
		s := dialStream(t, srv, ch, "")
		if s.resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(s.resp.Body)
			t.Fatalf("status %d %s, want 200", s.resp.StatusCode, body)
		}
		return s
	}
	a1 := open(a)
	open(a)
	refused(a) // the channel's cap
	open(other)
	refused(other) // the process's cap
	a1.close()
	// The closed stream's place comes free once the gateway noticed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := dialStream(t, srv, other, "")
		if s.resp.StatusCode == http.StatusOK {
			break
		}
		s.close()
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's place never came free: status %d", s.resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestManyConcurrentStreams opens 2,000 streams (200 with -short) over
// 100 channels, appends one operation to each channel, and checks that
// every stream gets its channel's operation live; it prints the memory
// the streams cost the process (heap and goroutine stacks, and the
// resident set, after a collection; the test's own side of each stream is
// a bare socket and 1 KiB of buffers). The gateway states at most 64 KiB
// of heap and stacks per open stream (measured: about 30); the resident
// set is printed, not checked (it depends on the collector's pacing).
func TestManyConcurrentStreams(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	const channels = 100
	b := startBroker(t)
	// 100 channels and n streams from one address: over the default
	// creation rate and the default cap per address.
	g := startIngest(t, b, ingest.Config{DeadlineScan: -1, MaxStreamsPerClient: n, Limits: limits.Config{ChannelCreatePerMinute: -1}})
	srv := g.api.Base
	chs := make([]string, channels)
	for i := range chs {
		chs[i] = g.createChannel(fmt.Sprintf("many-%d", i))
	}
	heap0, rss0, gr0 := memory()
	start := time.Now()
	all := make([]*sse, n)
	for i := range all {
		all[i] = dialStream(t, srv, chs[i%channels], "")
		if all[i].resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: status %d", i, all[i].resp.StatusCode)
		}
	}
	opened := time.Since(start)
	heap1, rss1, gr1 := memory()
	for i, ch := range chs {
		g.send(ch, fmt.Sprintf("live-%d", i))
	}
	for i, s := range all {
		if _, data := s.next(t); !strings.Contains(data, fmt.Sprintf(`"op_id":"live-%d"`, i%channels)) {
			t.Fatalf("stream %d: first event %s, want its channel's live operation", i, data)
		}
	}
	if c := opsConsumers(t, g); c != 1 {
		t.Errorf("%d streams open: PUSHGO_OPS has %d consumers, want 1", n, c)
	}
	perStream := (int64(heap1) - int64(heap0)) / int64(n)
	t.Logf("%d streams opened in %s; each got its live operation. Heap and stacks %.1f → %.1f MiB (%d KiB per stream), resident %.1f → %.1f MiB (%d KiB per stream), goroutines %d → %d",
		n, opened.Round(time.Millisecond), mib(heap0), mib(heap1), perStream>>10, mib(rss0), mib(rss1), (int64(rss1)-int64(rss0))/int64(n)>>10, gr0, gr1)
	if perStream > 64<<10 {
		t.Errorf("%d KiB of heap and stacks per open stream, over the 64 KiB stated", perStream>>10)
	}
}

// memory is the live heap plus the goroutine stacks and the resident set
// after a collection, and the goroutine count.
func memory() (heap, rss uint64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = ms.HeapAlloc + ms.StackInuse
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				rss = kb << 10
			}
		}
	}
	return heap, rss, runtime.NumGoroutine()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// The measured bodies must be what the gateway accepts, and about the
// requested size.
func TestBodiesAreValidAndSized(t *testing.T) {
	for _, size := range []int{300, 400, 1000} {
		b := newBodies(ids.NewChannelID(), "bench-password", size)
		now := time.Now().UnixMilli()
		for n := uint64(0); n < 2000; n += 7 {
			ev := b.eventUpdate(nil, ids.NewOpID(), now+int64(n), n)
			var er ops.EventRequest
			if aerr := wire.Decode(ev, &er); aerr != nil {
				t.Fatalf("event body %s: %v", ev, aerr)
			}
			if _, aerr := ops.ValidateEvent(ops.EventUpdate, &er, now); aerr != nil {
				t.Fatalf("event body %s: %v", ev, aerr)
			}
			th := b.thingUpdate(nil, ids.NewOpID(), now+int64(n), n)
			var tr ops.ThingRequest
			if aerr := wire.Decode(th, &tr); aerr != nil {
				t.Fatalf("thing body %s: %v", th, aerr)
			}
			if _, aerr := ops.ValidateThing(ops.ThingUpdate, &tr, now); aerr != nil {
				t.Fatalf("thing body %s: %v", th, aerr)
			}
			for _, body := range [][]byte{ev, th} {
				if d := len(body) - size; d < -10 || d > 10 {
					t.Fatalf("size %d: body is %d bytes", size, len(body))
				}
			}
		}
	}
	b := newBodies(ids.NewChannelID(), "bench-password", 400)
	now := time.Now().UnixMilli()
	var er ops.EventRequest
	if aerr := wire.Decode(b.eventCreate(3, now), &er); aerr != nil {
		t.Fatalf("event create: %v", aerr)
	}
	if _, aerr := ops.ValidateEvent(ops.EventCreate, &er, now); aerr != nil {
		t.Fatalf("event create: %v", aerr)
	}
	var tr ops.ThingRequest
	if aerr := wire.Decode(b.thingCreate(3, now), &tr); aerr != nil {
		t.Fatalf("thing create: %v", aerr)
	}
	if _, aerr := ops.ValidateThing(ops.ThingCreate, &tr, now); aerr != nil {
		t.Fatalf("thing create: %v", aerr)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Millisecond
	}
	if p := percentile(s, 0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := percentile(s, 0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := percentile(nil, 0.99); p != 0 {
		t.Errorf("empty p99 = %s", p)
	}
	m := median([]result{{rate: 3, p99: 9, errors: 1}, {rate: 1, p99: 7}, {rate: 2, p99: 8, errors: 2}})
	if m.rate != 2 || m.p99 != 8 || m.errors != 3 {
		t.Errorf("median = %+v", m)
	}
}

// The light client's response parser: Content-Length and chunked bodies,
// keep-alive and close, several responses back to back on one connection,
// and the malformed or truncated responses it must refuse.
func TestReadResponse(t *testing.T) {
	ok := `{"success":true,"data":{"seq":1},"error":null,"error_code":null}`
	stream := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-LENGTH: " + strconv.Itoa(len(ok)) + "\r\nDate: x\r\n\r\n" + ok +
		"HTTP/1.1 409 Conflict\r\nContent-Length: 16\r\n\r\n{\"success\":false" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}" +
		"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(stream), 64)
	want := []struct {
		status int
		body   string
		close  bool
	}{{200, ok, false}, {409, `{"success":false`, false}, {200, "hello world", false}, {204, "", false}, {200, "{}", true}, {200, "", true}}
	var buf []byte
	for i, w := range want {
		r, err := readResponse(br, buf[:0])
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if r.status != w.status || string(r.body) != w.body || r.close != w.close {
			t.Fatalf("response %d: got %d %q close=%v, want %d %q close=%v", i, r.status, r.body, r.close, w.status, w.body, w.close)
		}
		buf = r.body
	}
	if _, err := readResponse(br, nil); err != io.EOF {
		t.Fatalf("after the last response: %v, want io.EOF", err)
	}

	for name, bad := range map[string]string{
		"no length":          "HTTP/1.1 200 OK\r\n\r\n{}",
		"bad status line":    "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"not http":           "SSH-2.0-OpenSSH\r\n\r\n",
		"bad length":         "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"two lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"header no colon":    "HTTP/1.1 200 OK\r\nbroken\r\nContent-Length: 0\r\n\r\n",
		"truncated body":     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
		"truncated headers":  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
		"truncated chunked":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"bad chunk size":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"gzip":               "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"chunk without CRLF": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
		"empty":              "",
	} {
		if r, err := readResponse(bufio.NewReader(strings.NewReader(bad)), nil); err == nil {
			t.Errorf("%s: accepted as %d %q", name, r.status, r.body)
		}
	}
}

// The light client against net/http's server: keep-alive across requests,
// small (Content-Length) and large (chunked) answers, failures reported,
// and a reconnect after the server drops the connection.
func TestLightClientAgainstNetHTTP(t *testing.T) {
	big := `{"success":true,"data":"` + strings.Repeat("x", 100_000) + `"}`
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"success":true,"data":` + string(b) + `}`))
		case "/big":
			_, _ = w.Write([]byte(big)) // larger than net/http's buffer: chunked
		case "/fail":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"success":false,"data":null,"error":"no","error_code":"event_closed"}`))
		case "/hangup":
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	lc := newLightClient(srv.Listener.Addr().String(), 1)
	defer lc.close()
	c := lc.conn(0)
	ctx := context.Background()
	for i := range 50 {
		body := []byte(`{"n":` + strconv.Itoa(i) + `}`)
		b, err := c.post(ctx, "/echo", body)
		if err != nil || string(b) != `{"success":true,"data":`+string(body)+`}` {
			t.Fatalf("echo %d: %q, %v", i, b, err)
		}
	}
	if b, err := c.post(ctx, "/big", nil); err != nil || string(b) != big {
		t.Fatalf("big: %d bytes, %v", len(b), err)
	}
	if _, err := c.post(ctx, "/fail", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "409 event_closed") {
		t.Fatalf("fail: %v", err)
	}
	if b, err := c.get(ctx, "/echo"); err != nil || string(b) != `{"success":true,"data":}` {
		t.Fatalf("get: %q, %v", b, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for keep-alive requests, want 1", n)
	}
	if _, err := c.post(ctx, "/hangup", []byte(`{}`)); err == nil {
		t.Fatal("hang-up: no error")
	}
	if _, err := c.post(ctx, "/echo", []byte(`1`)); err != nil {
		t.Fatalf("after hang-up: %v", err)
	}
	if n, r := conns.Load(), lc.reconnects.Load(); n != 2 || r != 1 {
		t.Fatalf("after hang-up: %d connections, %d reconnects; want 2 and 1", n, r)
	}
}

// The populated operations are valid envelopes that the projector folds:
// creates first, closes and archives last, about 400 bytes each.
func TestOpGenFolds(t *testing.T) {
	const n = minOps
	g := newOpGen(n, 1, time.Now().UnixMilli())
	events, things := map[string]*fold.Event{}, map[string]*fold.Thing{}
	var total, updates, updateBytes int
	counts := map[ops.Name]int{}
	for i := 0; ; i++ {
		m, ok, err := g.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if i != n {
				t.Fatalf("%d operations, want %d", i, n)
			}
			break
		}
		total += len(m.data)
		counts[m.op]++
		if m.op == ops.EventUpdate || m.op == ops.ThingUpdate {
			updates++
			updateBytes += len(m.data)
		}
		var env ops.Envelope
		if err := json.Unmarshal(m.data, &env); err != nil {
			t.Fatal(err)
		}
		if err := fold.CheckEnvelope(&env); err != nil {
			t.Fatal(err)
		}
		if env.Op != m.op || env.OpID != m.opID || env.BodyHash != m.bodyHash ||
			m.subject != streams.OpSubject(env.ChannelID, env.Op.Kind(), env.EntityID) {
			t.Fatalf("envelope %s does not match its message", m.data)
		}
		nm := m.msg()
		if nm.Header.Get(streams.HeaderOp) != string(m.op) || nm.Header.Get(streams.HeaderOpID) != m.opID || nm.Header.Get(streams.HeaderBodyHash) != m.bodyHash {
			t.Fatalf("headers %v", nm.Header)
		}
		seq := uint64(i + 1)
		switch env.Op.Kind() {
		case ops.KindEvent:
			prev := events[env.EntityID]
			if (prev == nil) != (env.Op == ops.EventCreate) || (prev != nil && prev.State == ops.EventClosed) {
				t.Fatalf("op %d: %s on event in state %v", i, env.Op, prev)
			}
			if events[env.EntityID], err = fold.ApplyEvent(prev, &env, seq); err != nil {
				t.Fatal(err)
			}
		case ops.KindThing:
			prev := things[env.EntityID]
			if (prev == nil) != (env.Op == ops.ThingCreate) || (prev != nil && prev.State != ops.ThingActive) {
				t.Fatalf("op %d: %s on thing in state %v", i, env.Op, prev)
			}
			if things[env.EntityID], err = fold.ApplyThing(prev, &env, seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(events) != genEntities || len(things) != genEntities {
		t.Fatalf("%d events, %d things", len(events), len(things))
	}
	if counts[ops.EventClose] != genTail/2 || counts[ops.ThingArchive] != genTail/2 {
		t.Fatalf("counts %v", counts)
	}
	// Updates are most of a large log.
	if avg := updateBytes / updates; avg < 380 || avg > 480 {
		t.Fatalf("average update envelope %d bytes, want about 400", avg)
	}
	t.Logf("%d operations, %d bytes per envelope on average (updates %d), %v", n, total/n, updateBytes/updates, counts)
}

// A transport error is counted by its kind, not once per connection: the
// connection's ends are left out.
func TestErrorKind(t *testing.T) {
	rec := newRecorder(0)
	for _, e := range []string{
		"transport: read response: read tcp 127.0.0.1:46428->127.0.0.1:36031: i/o timeout",
		"transport: read response: read tcp 127.0.0.1:57810->127.0.0.1:36031: i/o timeout",
		"transport: write: write tcp [::1]:5000->[::1]:8080: broken pipe",
		"/event/update 503 unavailable",
	} {
		rec.fail(errors.New(e))
	}
	want := map[string]int{
		"transport: read response: read tcp <conn>: i/o timeout": 2,
		"transport: write: write tcp <conn>: broken pipe":        1,
		"/event/update 503 unavailable":                          1,
	}
	if len(rec.errKinds) != len(want) || rec.errors != 4 {
		t.Fatalf("kinds %v, errors %d", rec.errKinds, rec.errors)
	}
	for k, n := range want {
		if rec.errKinds[k] != n {
			t.Errorf("%q: %d, want %d (kinds %v)", k, rec.errKinds[k], n, rec.errKinds)
		}
	}
}

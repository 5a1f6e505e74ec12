package apns_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/ops"
)

const (
	keyID  = "ABC123DEFG"
	teamID = "TEAM123456"
	topic  = "app.pushgo.test"
)

func newSender(t *testing.T) (*apns.Sender, *sendertest.FakeAPNs) {
	t.Helper()
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{
		Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), HTTPClient: f.Client(), SendTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

func TestConformance(t *testing.T) {
	sendertest.RunConformance(t, func(t *testing.T) (sender.Sender, sendertest.Provider) {
		return newSender(t)
	})
}

// TestConformanceOverSeveralConnections runs the suite against a sender
// that spreads its pushes over three connections.
func TestConformanceOverSeveralConnections(t *testing.T) {
	sendertest.RunConformance(t, func(t *testing.T) (sender.Sender, sendertest.Provider) {
		f := sendertest.NewFakeAPNs(t)
		s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
			Endpoint: f.URL(), NewHTTPClient: f.NewClient, Connections: 3, SendTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s, f
	})
}

// TestPushesSpreadOverConnections: the sender spreads its devices over its
// connections, and every push to one device takes that device's connection
// (so a device's requests reach Apple in the order they were written).
func TestPushesSpreadOverConnections(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	const conns, devices, pushesEach = 4, 40, 3
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), NewHTTPClient: f.NewClient, Connections: conns, SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := range devices * pushesEach {
		token := fmt.Sprintf("%064x", i%devices)
		n := build(t, ops.MessageCreate, "m"+strconv.Itoa(i), ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, token)
		if res := s.Send(t.Context(), n); res.Outcome != sender.Sent {
			t.Fatalf("push %d: %v", i, res)
		}
	}
	per := map[string]int{}
	connOf := map[string]string{}
	for _, r := range f.Requests() {
		if r.Proto != "HTTP/2.0" {
			t.Fatalf("push over %s, want HTTP/2.0", r.Proto)
		}
		per[r.RemoteAddr]++
		if c, ok := connOf[r.Token]; ok && c != r.RemoteAddr {
			t.Fatalf("device %s…: pushes over %s and %s, want one connection", r.Token[:8], c, r.RemoteAddr)
		}
		connOf[r.Token] = r.RemoteAddr
	}
	if len(per) != conns {
		t.Fatalf("%d devices' pushes came over %d connections (%v), want %d", devices, len(per), per, conns)
	}
}

// TestWrittenBeforeTheAnswer: a caller that asked (sender.WithWritten) is
// told the request is written while the provider has not answered yet,
// so the device's next push need not wait for the answer.
func TestWrittenBeforeTheAnswer(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), NewHTTPClient: f.NewClient, SendTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const token = "aa11"
	f.Script(token, sendertest.Answer{Kind: sendertest.OK, Latency: time.Minute})
	written, returned := make(chan struct{}), make(chan sender.Result, 1)
	var once sync.Once
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n := build(t, ops.MessageCreate, "m1", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, token)
	go func() {
		returned <- s.Send(sender.WithWritten(ctx, func() { once.Do(func() { close(written) }) }), n)
	}()
	select {
	case <-written:
	case res := <-returned:
		t.Fatalf("Send returned %v before the request was reported written", res)
	case <-time.After(20 * time.Second):
		t.Fatal("the request was not reported written in 20 s")
	}
	select {
	case res := <-returned:
		t.Fatalf("Send returned %v: the fake holds its answer for a minute", res)
	default:
	}
	cancel() // the answer would take a minute
	if res := <-returned; res.Outcome != sender.Retry {
		t.Fatalf("abandoned Send: %v, want retry", res)
	}
}

// TestNoWrittenOverAnUnorderedTransport: a sender given a transport that
// may open a second connection when one is full (net/http's) cannot keep a
// device's requests in the order they were written, so it never says
// Written: the caller waits for each answer.
func TestNoWrittenOverAnUnorderedTransport(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), HTTPClient: f.Client(), SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var written atomic.Bool
	n := build(t, ops.MessageCreate, "m1", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "aa11")
	if res := s.Send(sender.WithWritten(t.Context(), func() { written.Store(true) }), n); res.Outcome != sender.Sent {
		t.Fatalf("send: %v", res)
	}
	if written.Load() {
		t.Fatal("Written said over net/http's transport, which may carry a device's next request on another connection")
	}
}

// TestHTTPClientOptions: HTTPClient with NewHTTPClient, or a negative
// connection count, is a configuration error.
func TestHTTPClientOptions(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	if _, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), HTTPClient: f.Client(), NewHTTPClient: f.NewClient}); err == nil {
		t.Fatal("HTTPClient and NewHTTPClient together accepted")
	}
	if _, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), Connections: -1}); err == nil {
		t.Fatal("a negative connection count accepted")
	}
}

func build(t *testing.T, op ops.Name, id string, p any, token string) payload.Notification {
	t.Helper()
	n, err := payload.Build(sendertest.Envelope(t, op, id, p), 9, "dev", payload.APNs, token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRequestHeaders(t *testing.T) {
	s, f := newSender(t)
	ctx := context.Background()
	ttl := time.Now().Add(time.Hour).Truncate(time.Second)
	msg := build(t, ops.MessageCreate, "m1", ops.MessagePayload{Title: "T", Severity: "critical", OccurredAt: 1, TTL: new(ttl.UnixMilli())}, "aa11")
	if r := s.Send(ctx, msg); r.Outcome != sender.Sent {
		t.Fatalf("message: %v", r)
	}
	// A quiet thing update (PUSHGO_THING_UPDATE_QUIET) is a background push.
	up, err := payload.Build(sendertest.Envelope(t, ops.ThingUpdate, "nas", ops.ThingPayload{ObservedAt: 1}), 9, "dev", payload.APNs, "aa11",
		time.Now(), payload.QuietThingUpdates())
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Send(ctx, up); r.Outcome != sender.Sent {
		t.Fatalf("thing.update: %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	h := reqs[0].Header
	for k, want := range map[string]string{
		"apns-topic": topic, "apns-push-type": "alert", "apns-priority": "10",
		"apns-id": apns.ID(msg.DeliveryID), "apns-expiration": ttlString(ttl),
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if reqs[0].KeyID != keyID || reqs[0].TeamID != teamID {
		t.Errorf("JWT kid %q iss %q", reqs[0].KeyID, reqs[0].TeamID)
	}
	if !strings.Contains(string(reqs[0].Body), `"interruption-level":"critical"`) ||
		!strings.Contains(string(reqs[0].Body), `"mutable-content":1`) {
		t.Errorf("body %s", reqs[0].Body)
	}
	h = reqs[1].Header
	if h.Get("apns-push-type") != "background" || h.Get("apns-priority") != "5" || h.Get("apns-collapse-id") != "thing:nas:bg" {
		t.Errorf("background headers %v", h)
	}
	if b := string(reqs[1].Body); !strings.Contains(b, `"aps":{"content-available":1}`) {
		t.Errorf("background body %s", b)
	}
}

func ttlString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestTokenErrors(t *testing.T) {
	s, f := newSender(t)
	for _, reason := range []string{"BadDeviceToken", "DeviceTokenNotForTopic"} {
		tok := "tok-" + reason
		f.Script(tok, sendertest.Answer{Kind: sendertest.BadToken, Reason: reason})
		r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, tok))
		if r.Outcome != sender.RetireToken || r.Reason != reason || r.StatusCode != 400 {
			t.Errorf("%s: %v", reason, r)
		}
	}
	// Another 400 is the payload's fault, not the token's.
	f.Script("tok-x", sendertest.Answer{Kind: sendertest.BadToken, Reason: "BadExpirationDate"})
	r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok-x"))
	if r.Outcome != sender.Failed {
		t.Errorf("BadExpirationDate: %v", r)
	}
}

func TestID(t *testing.T) {
	a, b := apns.ID("12:dev"), apns.ID("12:dev")
	if a != b || a == apns.ID("13:dev") || len(a) != 36 || strings.ToLower(a) != a {
		t.Errorf("ID: %q %q %q", a, b, apns.ID("13:dev"))
	}
}

func TestConnectionErrorIsRetry(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: "https://127.0.0.1:1", HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "aa"))
	if r.Outcome != sender.Retry || r.Reason != "connection" {
		t.Errorf("%v", r)
	}
}

func TestOptions(t *testing.T) {
	key := sendertest.APNsKey(t)
	file := filepath.Join(t.TempDir(), "AuthKey.p8")
	if err := os.WriteFile(file, key, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := apns.Options{KeyFile: file, KeyID: keyID, TeamID: teamID, Topic: topic}
	for name, o := range map[string]apns.Options{
		"file": ok, "development": with(ok, func(o *apns.Options) { o.Endpoint = "development" }),
		"url": with(ok, func(o *apns.Options) { o.Endpoint = "https://apns.example.invalid:8443" }),
	} {
		if _, err := apns.New(o); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, o := range map[string]apns.Options{
		"no key":       with(ok, func(o *apns.Options) { o.KeyFile = "" }),
		"both keys":    with(ok, func(o *apns.Options) { o.Key = key }),
		"missing file": with(ok, func(o *apns.Options) { o.KeyFile = file + ".nope" }),
		"bad key":      with(ok, func(o *apns.Options) { o.KeyFile = ""; o.Key = []byte("nope") }),
		"no topic":     with(ok, func(o *apns.Options) { o.Topic = "" }),
		"no team":      with(ok, func(o *apns.Options) { o.TeamID = "" }),
		"bad endpoint": with(ok, func(o *apns.Options) { o.Endpoint = "staging" }),
		"neg timeout":  with(ok, func(o *apns.Options) { o.SendTimeout = -1 }),
	} {
		if _, err := apns.New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func with(o apns.Options, f func(*apns.Options)) apns.Options { f(&o); return o }

func TestLogsNoToken(t *testing.T) {
	var buf strings.Builder
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: "https://127.0.0.1:1", Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "cafe0123456789secrettoken"
	s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, secret))
	if buf.Len() == 0 || strings.Contains(buf.String(), secret) {
		t.Errorf("log: %s", buf.String())
	}
}

// TestWatchTopic: a push to a device registered as watchos goes under the
// watch app's topic (APNs refuses a watch token under the phone app's,
// which would retire it); every other platform under Topic.
func TestWatchTopic(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic, WatchTopic: topic + ".watchkitapp",
		Endpoint: f.URL(), HTTPClient: f.Client(), SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, platform := range []string{"ios", "watchos", "macos"} {
		n := build(t, ops.MessageCreate, "m-"+platform, ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "aa11")
		n.Platform = platform
		if r := s.Send(context.Background(), n); r.Outcome != sender.Sent {
			t.Fatalf("%s: %v", platform, r)
		}
	}
	reqs := f.Requests()
	for i, want := range []string{topic, topic + ".watchkitapp", topic} {
		if got := reqs[i].Header.Get("apns-topic"); got != want {
			t.Errorf("push %d: apns-topic %q, want %q", i, got, want)
		}
	}
	// Without a WatchTopic, a watch's push goes under Topic.
	plain, pf := newSender(t)
	n := build(t, ops.MessageCreate, "m-plain", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "aa11")
	n.Platform = "watchos"
	if r := plain.Send(context.Background(), n); r.Outcome != sender.Sent {
		t.Fatalf("watchos without WatchTopic: %v", r)
	}
	if got := pf.Requests()[0].Header.Get("apns-topic"); got != topic {
		t.Errorf("watchos without WatchTopic: apns-topic %q, want %q", got, topic)
	}
}

// TestSendTimeoutBoundsAHungRequest: with no deadline from the caller, a
// provider that holds its answer is given up after the sender's own
// SendTimeout (the only bound: the HTTP client has no timeout of its own).
func TestSendTimeoutBoundsAHungRequest(t *testing.T) {
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: f.URL(), NewHTTPClient: f.NewClient, SendTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const token = "aa11"
	f.Script(token, sendertest.Answer{Kind: sendertest.OK, Latency: time.Minute})
	n := build(t, ops.MessageCreate, "m1", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, token)
	returned := make(chan sender.Result, 1)
	go func() { returned <- s.Send(context.Background(), n) }()
	select {
	case res := <-returned:
		if res.Outcome != sender.Retry || res.Reason != "timeout" {
			t.Fatalf("Send of a hung request: %v, want retry (timeout)", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Send did not return in 20 s with a send timeout of 300 ms")
	}
}

// An answer whose body does not decode is classified by its status: a 410
// still retires the token, a 503 is retried with its Retry-After.
func TestUndecodableAnswerByStatus(t *testing.T) {
	answers := map[string]func(w http.ResponseWriter){
		"gone": func(w http.ResponseWriter) { w.WriteHeader(http.StatusGone); io.WriteString(w, `{"reason":`) },
		"busy": func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "9")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<html>`)
		},
		"other": func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadRequest); io.WriteString(w, `{"reason":`) },
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		answers[strings.TrimPrefix(r.URL.Path, "/3/device/")](w)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s, err := apns.New(apns.Options{Key: sendertest.APNsKey(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: srv.URL, HTTPClient: srv.Client(), SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]sender.Outcome{"gone": sender.RetireToken, "busy": sender.Retry, "other": sender.Failed} {
		r := s.Send(context.Background(), plain(t, tok))
		if r.Outcome != want {
			t.Errorf("%s: %v, want %v", tok, r, want)
		}
		if tok == "busy" && r.RetryAfter != 9*time.Second {
			t.Errorf("busy: retry after %v", r.RetryAfter)
		}
	}
}

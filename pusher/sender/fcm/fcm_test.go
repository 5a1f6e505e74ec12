package fcm_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/ops"
)

const project = "pushgo-test"

func newSender(t *testing.T) (*fcm.Sender, *sendertest.FakeFCM) {
	t.Helper()
	f := sendertest.NewFakeFCM(t)
	s, err := fcm.New(fcm.Options{
		ProjectID: project, Endpoint: f.Endpoint(), SendTimeout: 5 * time.Second,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-access-token"}),
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

func build(t *testing.T, op ops.Name, id string, p any, token string) payload.Notification {
	t.Helper()
	n, err := payload.Build(sendertest.Envelope(t, op, id, p), 9, "dev", payload.FCM, token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRequest(t *testing.T) {
	s, f := newSender(t)
	ttl := time.Now().Add(time.Hour)
	n := build(t, ops.EventUpdate, "e1", ops.EventPayload{Status: "ok", Message: "m", Severity: "low", EventTime: 1}, "fcm-token")
	n.Expiration = ttl
	r := s.Send(context.Background(), n)
	if r.Outcome != sender.Sent || !strings.HasPrefix(r.ProviderID, "projects/"+project+"/messages/") {
		t.Fatalf("%v %q", r, r.ProviderID)
	}
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].Project != project {
		t.Fatalf("requests %+v", reqs)
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer test-access-token" {
		t.Errorf("Authorization %q", got)
	}
	var body struct {
		Message struct {
			Token   string            `json:"token"`
			Data    map[string]string `json:"data"`
			Android struct {
				CollapseKey  string         `json:"collapse_key"`
				Priority     string         `json:"priority"`
				TTL          string         `json:"ttl"`
				Notification map[string]any `json:"notification"`
			} `json:"android"`
		} `json:"message"`
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	// Data-only, as PushGo's: the Android app builds the notification from
	// the data (a notification block would bypass it in the background).
	a := body.Message.Android
	// No collapse_key (PushGo's sends none): offline, FCM keeps one
	// message a key and four keys a device.
	if body.Message.Token != "fcm-token" || a.CollapseKey != "" || a.Priority != "normal" ||
		a.Notification != nil || body.Message.Data["body"] != "m" || body.Message.Data["event_id"] != "e1" {
		t.Errorf("message %s", reqs[0].Body)
	}
	var raw struct {
		Message map[string]json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(reqs[0].Body, &raw); err != nil || raw.Message["notification"] != nil {
		t.Errorf("a notification block: %s", reqs[0].Body)
	}
	// A low event, which the Android app does not show: sent now or
	// never, whatever its expiration (payload.Notification.NowOrNever).
	if a.TTL != "0s" {
		t.Errorf("ttl %q, want 0s", a.TTL)
	}
}

// A 503 with Retry-After must not make the SDK sleep and retry: one
// request, a prompt Retry carrying the provider's wait.
func TestNoHiddenSDKRetry(t *testing.T) {
	s, f := newSender(t)
	f.Script("tok", sendertest.Answer{Kind: sendertest.Unavailable, RetryAfter: 90 * time.Second})
	start := time.Now()
	r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok"))
	if r.Outcome != sender.Retry || r.RetryAfter != 90*time.Second || r.StatusCode != 503 || r.Reason != "UNAVAILABLE" {
		t.Errorf("%v", r)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Send took %v", el)
	}
	if n := len(f.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	// The sender stays usable after the stopped attempt.
	if r := s.Send(context.Background(), build(t, ops.MessageCreate, "m2", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok")); r.Outcome != sender.Sent {
		t.Errorf("next send: %v", r)
	}
}

func TestConnectionErrorIsRetry(t *testing.T) {
	s, err := fcm.New(fcm.Options{ProjectID: project, Endpoint: "http://127.0.0.1:1/v1",
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok"))
	if r.Outcome != sender.Retry || r.Reason != "connection" {
		t.Errorf("%v", r)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Send took %v: the SDK retried a connection error", el)
	}
}

// serviceAccount writes a service account key file whose token_uri is a
// local token server, so the credentials-file path runs offline.
func serviceAccount(t *testing.T) (string, *atomic.Int64) {
	return sendertest.ServiceAccount(t, "from-file")
}

func TestCredentialsFile(t *testing.T) {
	file, grants := serviceAccount(t)
	f := sendertest.NewFakeFCM(t)
	s, err := fcm.New(fcm.Options{CredentialsFile: file, Endpoint: f.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Send(context.Background(), build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok"))
	if r.Outcome != sender.Sent {
		t.Fatalf("%v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].Project != "from-file" || reqs[0].Header.Get("Authorization") != "Bearer sa-access-token" {
		t.Errorf("requests %+v", reqs)
	}
	if grants.Load() != 1 {
		t.Errorf("%d token grants", grants.Load())
	}
}

func TestOptions(t *testing.T) {
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})
	for name, o := range map[string]fcm.Options{
		"no credentials": {ProjectID: project},
		"both":           {ProjectID: project, TokenSource: ts, CredentialsFile: "x.json"},
		"no project":     {TokenSource: ts},
		"bad endpoint":   {ProjectID: project, TokenSource: ts, Endpoint: "fcm.local"},
		"missing file":   {CredentialsFile: filepath.Join(t.TempDir(), "none.json")},
		"neg timeout":    {ProjectID: project, TokenSource: ts, SendTimeout: -time.Second},
	} {
		if _, err := fcm.New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestMessage(t *testing.T) {
	now := time.Now()
	// Normal priority: the Android app shows no Thing (payload.androidShows).
	n := build(t, ops.ThingUpdate, "nas", ops.ThingPayload{ObservedAt: 1}, "tok")
	m, ok := fcm.Message(n, now)
	// Now or never (payload.Notification.NowOrNever): ttl 0s.
	if !ok || m.Notification != nil || m.Android.Notification != nil || m.Android.Priority != "normal" ||
		m.Android.TTL == nil || *m.Android.TTL != 0 || m.Data["thing_id"] != "nas" {
		t.Errorf("thing update message %+v", m.Android)
	}
	n = build(t, ops.EventCreate, "e1", ops.EventPayload{Title: "disk", Status: "s", Message: "m", Severity: "high", EventTime: 1}, "tok")
	if m, ok := fcm.Message(n, now); !ok || m.Android.Priority != "high" || m.Android.TTL != nil {
		t.Errorf("high event message %+v", m.Android)
	}
	n.Expiration = now.Add(60 * 24 * time.Hour)
	if m, _ := fcm.Message(n, now); m.Android.TTL == nil || *m.Android.TTL != 28*24*time.Hour {
		t.Errorf("ttl %v, want capped at 28 days", m.Android.TTL)
	}
	n.Expiration = now.Add(-time.Second)
	if _, ok := fcm.Message(n, now); ok {
		t.Errorf("an expired notification made a message")
	}
	n, err := payload.Build(sendertest.Envelope(t, ops.ThingUpdate, "nas", ops.ThingPayload{ObservedAt: 1}), 9, "dev", payload.FCM, "tok",
		now, payload.QuietThingUpdates())
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := fcm.Message(n, now); !ok || m.Notification != nil || m.Android.Notification != nil || m.Android.Priority != "normal" ||
		m.Android.TTL == nil || *m.Android.TTL != 0 {
		t.Errorf("quiet message %+v", m.Android)
	}
}

// A token endpoint that stalls during a refresh holds a send no longer
// than the send's context: the send ends as Retry, and the next one, once
// the endpoint answers, is sent.
func TestStalledTokenEndpointEndsWithTheContext(t *testing.T) {
	asked, release := make(chan struct{}, 16), make(chan struct{})
	var once sync.Once
	answer := func() { once.Do(func() { close(release) }) }
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"late-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	t.Cleanup(answer)
	f := sendertest.NewFakeFCM(t)
	s, err := fcm.New(fcm.Options{CredentialsFile: sendertest.ServiceAccountAt(t, "from-file", tokens.URL+"/token"),
		Endpoint: f.Endpoint(), SendTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan sender.Result, 1)
	go func() {
		done <- s.Send(ctx, build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok"))
	}()
	<-asked // the send waits for the token endpoint
	cancel()
	select {
	case r := <-done:
		if r.Outcome != sender.Retry || len(f.Requests()) != 0 {
			t.Fatalf("a send whose token never came: %v, %d requests to FCM", r, len(f.Requests()))
		}
	case <-time.After(30 * time.Second): // liveness bound, not a measurement
		t.Fatal("the send outlived its context while the token endpoint stalled")
	}
	// The endpoint answers at last: the fetch brings a token, and sends
	// go out with it.
	answer()
	for i := 0; ; i++ {
		r := s.Send(context.Background(), build(t, ops.MessageCreate, "m2", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, "tok"))
		if r.Outcome == sender.Sent {
			break
		}
		if i == 100 {
			t.Fatalf("no send after the endpoint recovered: %v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if reqs := f.Requests(); reqs[len(reqs)-1].Header.Get("Authorization") != "Bearer late-token" {
		t.Errorf("authorization %q", reqs[len(reqs)-1].Header.Get("Authorization"))
	}
}

// TestAPushNearTheLimitIsAWakeUp: a message whose data map's JSON is a
// few dozen bytes under 4,096, over it as FCM counts (its pairs and about
// 39 bytes more), goes out as the wake-up the app fetches the item after,
// and FCM takes it; before, it went whole and FCM refused it (400 "Android
// message is too big"), and the person never heard of it. A body well
// under the limit still goes whole.
func TestAPushNearTheLimitIsAWakeUp(t *testing.T) {
	s, f := newSender(t)
	token := strings.Repeat("t", 163) // an FCM token's usual length
	var nearest, over payload.Notification
	for n := 3300; n < 4096; n += 2 {
		m := build(t, ops.MessageCreate, "m1", ops.MessagePayload{Title: "disk", Body: strings.Repeat("b", n), Severity: "high", OccurredAt: 1}, token)
		if m.Oversized {
			over = m
			break
		}
		nearest = m
	}
	data, _ := json.Marshal(nearest.Data)
	if nearest.Data == nil || over.Data == nil || len(data) < payload.MaxPayloadBytes-200 {
		t.Fatalf("the largest push sent whole has data of %d bytes of JSON", len(data))
	}
	for _, m := range []payload.Notification{nearest, over} {
		if r := s.Send(context.Background(), m); r.Outcome != sender.Sent {
			t.Fatalf("a push (wake-up %t) refused: %+v", m.Oversized, r)
		}
	}
	got := f.Received(token)
	if len(got) != 2 || got[0].Data["body"] != nearest.Body || got[1].Data["provider_wakeup"] != "1" {
		t.Fatalf("received %d pushes, the second a wake-up: %v", len(got), len(got) == 2 && got[1].Data["provider_wakeup"] == "1")
	}
	for _, o := range got {
		for _, p := range o.Problems {
			t.Errorf("FCM saw: %s", p)
		}
	}
}

package deliveryflow_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
	"github.com/pushgo/gateway/schemas/streams"
)

// manualClock is the token caches' clock: expiry is decided by the test,
// not by waiting.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenFlow is the delivery pipeline with senders whose credentials come
// from a fake PushGo token service, as the gateway wires them with only
// PUSHGO_TOKEN_SERVICE_URL set.
type tokenFlow struct {
	*env
	svc *sendertest.FakeTokenService
	clk *manualClock
}

const retryInterval = 5 * time.Second // the caches' pause after a failed fetch

func setupTokenFlow(t *testing.T) *tokenFlow {
	t.Helper()
	b := brokertest.Start(t, brokertest.NoEnsure())
	ctx := context.Background()
	svc, err := ingest.Start(ctx, b.NC, ingest.Config{Streams: streams.DefaultOptions(), Argon2: registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })

	f := &tokenFlow{
		env: &env{t: t, api: apitest.New(srv.URL), b: b, apns: sendertest.NewFakeAPNs(t), fcm: sendertest.NewFakeFCM(t)},
		svc: sendertest.NewFakeTokenService(t),
		clk: &manualClock{t: time.Date(2026, 4, 22, 12, 0, 0, 0, time.UTC)},
	}
	ts, err := tokenservice.New(tokenservice.Options{URL: f.svc.URL(), Now: f.clk.Now, RetryInterval: retryInterval})
	if err != nil {
		t.Fatal(err)
	}
	as, err := apns.New(apns.Options{TokenSource: ts.APNs(tokenservice.Production), Topic: tokenservice.OfficialAPNsTopic,
		Endpoint: f.apns.URL(), NewHTTPClient: f.apns.NewClient, SendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fcm.New(fcm.Options{AccessSource: ts.FCM(), Endpoint: f.fcm.Endpoint(), SendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pusher.Start(ctx, b.NC, pusher.Config{
		Senders: map[payload.Provider]sender.Sender{payload.APNs: as, payload.FCM: fs},
		// Many quick attempts: a push waiting for the token service to
		// come back is retried until the test has brought it back.
		Policy: sender.Policy{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 1000},
		Lanes:  16, SendTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	f.push = p
	return f
}

// pushN waits until both providers have received n requests and returns
// the authorization of the n-th of each, checking where it went.
func (f *tokenFlow) pushN(n int) (apnsAuth, fcmAuth string) {
	t := f.t
	t.Helper()
	waitFor(t, "push "+strconv.Itoa(n)+" at both providers", func() bool {
		return len(f.apns.Requests()) >= n && len(f.fcm.Requests()) >= n
	})
	a, c := f.apns.Requests(), f.fcm.Requests()
	if len(a) != n || len(c) != n {
		t.Fatalf("%d APNs and %d FCM requests, want %d each", len(a), len(c), n)
	}
	if topic := a[n-1].Header.Get("apns-topic"); topic != "io.ethan.pushgo" {
		t.Errorf("APNs push %d: topic %q, want the official app's", n, topic)
	}
	if c[n-1].Project != "pushgo-official" {
		t.Errorf("FCM push %d: project %q, want the token service's", n, c[n-1].Project)
	}
	return a[n-1].Header.Get("Authorization"), c[n-1].Header.Get("Authorization")
}

// TestTokenServiceEndToEnd: messages accepted over HTTP reach an iOS and
// an Android device through the real APNs and FCM senders, authorized by
// the token service's tokens; a token is fetched again a minute before it
// expires; while the service fails, the still-valid token keeps pushes
// flowing; once it has expired, pushes wait (retried) until the service is
// back.
func TestTokenServiceEndToEnd(t *testing.T) {
	f := setupTokenFlow(t)
	ch := f.post("/channel/create", map[string]any{"channel_name": "official", "password": pw})["channel_id"].(string)
	f.device("ios", "apns", apnsToken, ch)
	f.device("android", "fcm", fcmToken, ch)
	message := func(title string) {
		f.post("/message", map[string]any{"channel_id": ch, "password": pw, "title": title})
	}
	tokenRequests := func() (apnsN, fcmN int) {
		return f.svc.Count("/provider/token/production"), f.svc.Count("/provider/token")
	}
	want := func(step, gotA, gotF, wantA, wantF string) {
		t.Helper()
		if gotA != "bearer "+wantA || gotF != "Bearer "+wantF {
			t.Fatalf("%s: APNs authorization %q, FCM %q; want the service's %s and %s", step, gotA, gotF, wantA, wantF)
		}
	}

	// 1. The first pushes fetch one token per provider, from the PushGo
	// paths, with a User-Agent and no credentials.
	message("one")
	a, c := f.pushN(1)
	want("first push", a, c, "apns-production-1", "fcm-1")
	for _, r := range f.svc.Requests() {
		if r.Header.Get("Authorization") != "" || r.Header.Get("User-Agent") != tokenservice.DefaultUserAgent {
			t.Errorf("token request %s: authorization %q, user agent %q", r.Path, r.Header.Get("Authorization"), r.Header.Get("User-Agent"))
		}
	}
	message("two")
	a, c = f.pushN(2)
	want("cached", a, c, "apns-production-1", "fcm-1")
	if an, fn := tokenRequests(); an != 1 || fn != 1 {
		t.Fatalf("%d APNs and %d FCM token requests for two pushes", an, fn)
	}

	// 2. 59 seconds before the tokens expire, the next push gets new ones.
	f.clk.Add(time.Hour - 59*time.Second)
	message("three")
	a, c = f.pushN(3)
	want("a minute before expiry", a, c, "apns-production-2", "fcm-2")
	if an, fn := tokenRequests(); an != 2 || fn != 2 {
		t.Fatalf("%d APNs and %d FCM token requests after the refresh", an, fn)
	}

	// 3. The service fails while the tokens are due but still valid (30 s
	// left): the refresh is tried, fails, and pushes go on with them.
	f.svc.Fail(http.StatusServiceUnavailable)
	f.clk.Add(time.Hour - 30*time.Second)
	message("four")
	a, c = f.pushN(4)
	want("service failing, token valid", a, c, "apns-production-2", "fcm-2")
	if an, fn := tokenRequests(); an != 3 || fn != 3 {
		t.Fatalf("%d APNs and %d FCM token requests: the failed refresh was not tried", an, fn)
	}
	message("five") // within the retry interval: no new request
	a, c = f.pushN(5)
	want("service failing, retry interval", a, c, "apns-production-2", "fcm-2")
	if an, fn := tokenRequests(); an != 3 || fn != 3 {
		t.Fatalf("%d APNs and %d FCM token requests within the retry interval", an, fn)
	}

	// 4. The tokens expire with the service still failing: a push is not
	// sent without a token. It is retried, and goes out with a new token
	// once the service is back.
	f.clk.Add(time.Minute)
	message("six")
	waitFor(t, "the expired tokens' refresh to be tried", func() bool {
		an, fn := tokenRequests()
		return an == 4 && fn == 4
	})
	if n, m := len(f.apns.Requests()), len(f.fcm.Requests()); n != 5 || m != 5 {
		t.Fatalf("pushes sent without a valid token: %d APNs, %d FCM requests", n, m)
	}
	f.svc.Fail(0)
	f.clk.Add(retryInterval)
	a, c = f.pushN(6)
	want("service back", a, c, "apns-production-3", "fcm-3")
}

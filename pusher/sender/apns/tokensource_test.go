package apns_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
	"github.com/pushgo/gateway/schemas/ops"
)

// newServiceSender is a Sender whose provider tokens come from a fake
// PushGo token service.
func newServiceSender(t *testing.T, env tokenservice.Environment) (*apns.Sender, *sendertest.FakeAPNs, *sendertest.FakeTokenService) {
	t.Helper()
	return newServiceSenderWith(t, env, tokenservice.Options{})
}

// newServiceSenderWith is newServiceSender with the token service's
// options o (its URL set here).
func newServiceSenderWith(t *testing.T, env tokenservice.Environment, o tokenservice.Options) (*apns.Sender, *sendertest.FakeAPNs, *sendertest.FakeTokenService) {
	t.Helper()
	svc := sendertest.NewFakeTokenService(t)
	o.URL = svc.URL()
	ts, err := tokenservice.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f := sendertest.NewFakeAPNs(t)
	s, err := apns.New(apns.Options{TokenSource: ts.APNs(env), Topic: tokenservice.OfficialAPNsTopic,
		Endpoint: f.URL(), HTTPClient: f.Client(), SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, f, svc
}

// plain is a message push to token.
func plain(t *testing.T, token string) payload.Notification {
	return build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, token)
}

func TestTokenSourceAuthorizes(t *testing.T) {
	s, f, svc := newServiceSender(t, tokenservice.Sandbox)
	ctx := context.Background()
	for range 3 {
		if r := s.Send(ctx, plain(t, "aa11")); r.Outcome != sender.Sent {
			t.Fatalf("%v", r)
		}
	}
	for i, r := range f.Requests() {
		if a := r.Header.Get("Authorization"); a != "bearer apns-sandbox-1" {
			t.Errorf("request %d: authorization %q", i, a)
		}
		if tp := r.Header.Get("apns-topic"); tp != "io.ethan.pushgo" {
			t.Errorf("request %d: apns-topic %q", i, tp)
		}
	}
	if n := len(svc.Requests()); n != 1 {
		t.Errorf("%d token requests for 3 pushes", n)
	}
}

// APNs 403 ExpiredProviderToken: the token is replaced and the push sent
// once more (pushgo-gateway apns_client.rs); other 403s stand.
func TestExpiredProviderTokenIsReplacedOnce(t *testing.T) {
	// The service's tokens may be replaced at once (the cache otherwise
	// keeps a token rejected within 5 s of its fetch).
	s, f, svc := newServiceSenderWith(t, tokenservice.Production, tokenservice.Options{RetryInterval: time.Nanosecond})
	ctx := context.Background()
	f.Script("aa11", sendertest.Answer{Kind: sendertest.AuthError, Reason: "ExpiredProviderToken"})
	if r := s.Send(ctx, plain(t, "aa11")); r.Outcome != sender.Sent {
		t.Fatalf("after ExpiredProviderToken: %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[0].Header.Get("Authorization") != "bearer apns-production-1" ||
		reqs[1].Header.Get("Authorization") != "bearer apns-production-2" || string(reqs[0].Body) != string(reqs[1].Body) {
		t.Fatalf("requests %+v", reqs)
	}

	f.Script("bb22", sendertest.Answer{Kind: sendertest.AuthError}) // InvalidProviderToken
	r := s.Send(ctx, plain(t, "bb22"))
	if r.Outcome != sender.Failed || r.Reason != "InvalidProviderToken" || len(f.Requests()) != 3 {
		t.Fatalf("InvalidProviderToken: %v after %d requests", r, len(f.Requests()))
	}
	// Expired twice: the push is retried later, when the service may have
	// a fresher token.
	f.Script("cc33", sendertest.Answer{Kind: sendertest.AuthError, Reason: "ExpiredProviderToken"},
		sendertest.Answer{Kind: sendertest.AuthError, Reason: "ExpiredProviderToken"})
	r = s.Send(ctx, plain(t, "cc33"))
	if r.Outcome != sender.Retry || r.Reason != "ExpiredProviderToken" || len(f.Requests()) != 5 {
		t.Fatalf("expired twice: %v after %d requests", r, len(f.Requests()))
	}
	if n := svc.Count("/provider/token/production"); n != 3 {
		t.Errorf("%d token requests", n)
	}
}

// A .p8 key's token signed moments ago and rejected as expired is not
// signed again (Apple refuses a token replaced within 20 minutes, and a new
// signature does not mend a wrong clock): the push is retried later, and
// the next try is sent.
func TestExpiredYoungKeyTokenIsRetried(t *testing.T) {
	s, f := newSender(t)
	f.Script("aa11", sendertest.Answer{Kind: sendertest.ExpiredAuth})
	if r := s.Send(context.Background(), plain(t, "aa11")); r.Outcome != sender.Retry || r.Reason != "ExpiredProviderToken" {
		t.Fatalf("%v", r)
	}
	if r := s.Send(context.Background(), plain(t, "aa11")); r.Outcome != sender.Sent {
		t.Fatalf("the retry: %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[1].KeyID != keyID || reqs[0].Header.Get("Authorization") != reqs[1].Header.Get("Authorization") {
		t.Fatalf("requests %+v", reqs)
	}
}

// Without a token the push is not sent and is retried later, with reason
// "auth" (not "connection": APNs was never asked).
func TestTokenSourceFailureIsRetry(t *testing.T) {
	s, f, svc := newServiceSender(t, tokenservice.Production)
	svc.Fail(http.StatusServiceUnavailable)
	r := s.Send(context.Background(), plain(t, "aa11"))
	if r.Outcome != sender.Retry || r.Reason != "auth" || len(f.Requests()) != 0 {
		t.Fatalf("%v after %d requests", r, len(f.Requests()))
	}
}

func TestTokenSourceOptions(t *testing.T) {
	ts, err := tokenservice.New(tokenservice.Options{URL: "https://token.pushgo.dev"})
	if err != nil {
		t.Fatal(err)
	}
	src := ts.APNs(tokenservice.Production)
	if _, err := apns.New(apns.Options{TokenSource: src, Topic: topic}); err != nil {
		t.Errorf("token source: %v", err)
	}
	for name, o := range map[string]apns.Options{
		"with key":    {TokenSource: src, Topic: topic, Key: sendertest.APNsKey(t)},
		"with key id": {TokenSource: src, Topic: topic, KeyID: keyID},
		"with team":   {TokenSource: src, Topic: topic, TeamID: teamID},
		"no topic":    {TokenSource: src},
	} {
		if _, err := apns.New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

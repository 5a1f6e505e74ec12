package fcm_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
	"github.com/pushgo/gateway/schemas/ops"
)

// newServiceSender is a Sender whose access tokens and project come from a
// fake PushGo token service.
func newServiceSender(t *testing.T) (*fcm.Sender, *sendertest.FakeFCM, *sendertest.FakeTokenService) {
	t.Helper()
	return newServiceSenderWith(t, tokenservice.Options{})
}

// newServiceSenderWith is newServiceSender with the token service's
// options o (its URL set here).
func newServiceSenderWith(t *testing.T, o tokenservice.Options) (*fcm.Sender, *sendertest.FakeFCM, *sendertest.FakeTokenService) {
	t.Helper()
	svc := sendertest.NewFakeTokenService(t)
	o.URL = svc.URL()
	ts, err := tokenservice.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f := sendertest.NewFakeFCM(t)
	s, err := fcm.New(fcm.Options{AccessSource: ts.FCM(), Endpoint: f.Endpoint(), SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, f, svc
}

// plain is a message push to token.
func plain(t *testing.T, token string) payload.Notification {
	return build(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}, token)
}

func TestAccessSourceAuthorizesAndNamesTheProject(t *testing.T) {
	s, f, svc := newServiceSender(t)
	for range 2 {
		r := s.Send(context.Background(), plain(t, "tok"))
		if r.Outcome != sender.Sent || r.ProviderID == "" {
			t.Fatalf("%v", r)
		}
	}
	for i, r := range f.Requests() {
		if r.Project != "pushgo-official" || r.Header.Get("Authorization") != "Bearer fcm-1" {
			t.Errorf("request %d: project %q authorization %q", i, r.Project, r.Header.Get("Authorization"))
		}
	}
	if n := svc.Count("/provider/token"); n != 1 {
		t.Errorf("%d token requests", n)
	}
}

// FCM 401/403: the token (and its project) is replaced and the push sent
// once more (pushgo-gateway fcm_client.rs token_info_fresh).
func TestRejectedAccessTokenIsReplacedOnce(t *testing.T) {
	// The service's tokens may be replaced at once (the cache otherwise
	// keeps a token rejected within 5 s of its fetch).
	s, f, svc := newServiceSenderWith(t, tokenservice.Options{RetryInterval: time.Nanosecond})
	if r := s.Send(context.Background(), plain(t, "warm")); r.Outcome != sender.Sent {
		t.Fatalf("warm: %v", r)
	}
	f.Script("tok", sendertest.Answer{Kind: sendertest.ExpiredAuth})
	svc.SetProjectID("pushgo-next")
	r := s.Send(context.Background(), plain(t, "tok"))
	if r.Outcome != sender.Sent {
		t.Fatalf("after 401: %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[1].Header.Get("Authorization") != "Bearer fcm-1" || reqs[1].Project != "pushgo-official" ||
		reqs[2].Header.Get("Authorization") != "Bearer fcm-2" || reqs[2].Project != "pushgo-next" || string(reqs[1].Body) != string(reqs[2].Body) {
		t.Fatalf("requests %+v", reqs)
	}
	// Rejected twice: a 401 is retried later, when the service may have a
	// fresher token; a 403 (not permitted) fails.
	f.Script("tok", sendertest.Answer{Kind: sendertest.ExpiredAuth}, sendertest.Answer{Kind: sendertest.ExpiredAuth})
	r = s.Send(context.Background(), plain(t, "tok"))
	if r.Outcome != sender.Retry || r.StatusCode != http.StatusUnauthorized || len(f.Requests()) != 5 {
		t.Fatalf("rejected twice: %v after %d requests", r, len(f.Requests()))
	}
	f.Script("tok", sendertest.Answer{Kind: sendertest.AuthError, Reason: "SENDER_ID_MISMATCH"},
		sendertest.Answer{Kind: sendertest.AuthError, Reason: "SENDER_ID_MISMATCH"})
	r = s.Send(context.Background(), plain(t, "tok"))
	if r.Outcome != sender.Failed || r.StatusCode != http.StatusForbidden || r.Reason != "SENDER_ID_MISMATCH" || len(f.Requests()) != 7 {
		t.Fatalf("403 twice: %v after %d requests", r, len(f.Requests()))
	}
}

// A device of another Firebase project (403 SENDER_ID_MISMATCH) pushed to
// again and again costs the token service one fetch, not one a push, and
// the push fails.
func TestSenderIDMismatchFetchesOnce(t *testing.T) {
	frozen := time.Now() // every push within a moment of the fetch, however slow the machine
	s, f, svc := newServiceSenderWith(t, tokenservice.Options{Now: func() time.Time { return frozen }})
	if r := s.Send(context.Background(), plain(t, "warm")); r.Outcome != sender.Sent {
		t.Fatalf("warm: %v", r)
	}
	for i := range 20 {
		f.Script("other-project", sendertest.Answer{Kind: sendertest.AuthError, Reason: "SENDER_ID_MISMATCH"})
		if r := s.Send(context.Background(), plain(t, "other-project")); r.Outcome != sender.Failed || r.Reason != "SENDER_ID_MISMATCH" {
			t.Fatalf("push %d: %v", i, r)
		}
	}
	if n := svc.Count("/provider/token"); n != 1 {
		t.Errorf("%d token requests for 20 rejected pushes", n)
	}
}

// Without an access token the push is not sent and is retried later,
// with reason "auth" (not "connection": FCM was never asked).
func TestAccessSourceFailureIsRetry(t *testing.T) {
	s, f, svc := newServiceSender(t)
	svc.Fail(http.StatusBadGateway)
	r := s.Send(context.Background(), plain(t, "tok"))
	if r.Outcome != sender.Retry || r.Reason != "auth" || len(f.Requests()) != 0 {
		t.Fatalf("%v after %d requests", r, len(f.Requests()))
	}
}

func TestAccessSourceOptions(t *testing.T) {
	ts, err := tokenservice.New(tokenservice.Options{URL: "https://token.pushgo.dev"})
	if err != nil {
		t.Fatal(err)
	}
	src := ts.FCM()
	if _, err := fcm.New(fcm.Options{AccessSource: src}); err != nil {
		t.Errorf("access source: %v", err)
	}
	for name, o := range map[string]fcm.Options{
		"with project":      {AccessSource: src, ProjectID: project},
		"with token source": {AccessSource: src, TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})},
		"with file":         {AccessSource: src, CredentialsFile: "sa.json"},
	} {
		if _, err := fcm.New(o); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
}

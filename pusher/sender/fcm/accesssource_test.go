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
	svc := sendertest.NewFakeTokenService(t)
	ts, err := tokenservice.New(tokenservice.Options{URL: svc.URL()})
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
	s, f, svc := newServiceSender(t)
	if r := s.Send(context.Background(), plain(t, "warm")); r.Outcome != sender.Sent {
		t.Fatalf("warm: %v", r)
	}
	f.Script("tok", sendertest.Answer{Kind: sendertest.AuthError})
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
	// Rejected twice: the second answer stands.
	f.Script("tok", sendertest.Answer{Kind: sendertest.AuthError}, sendertest.Answer{Kind: sendertest.AuthError})
	r = s.Send(context.Background(), plain(t, "tok"))
	if r.Outcome != sender.Failed || r.StatusCode != http.StatusUnauthorized || len(f.Requests()) != 5 {
		t.Fatalf("rejected twice: %v after %d requests", r, len(f.Requests()))
	}
}

func TestAccessSourceFailureIsRetry(t *testing.T) {
	s, f, svc := newServiceSender(t)
	svc.Fail(http.StatusBadGateway)
	r := s.Send(context.Background(), plain(t, "tok"))
	if r.Outcome != sender.Retry || len(f.Requests()) != 0 {
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

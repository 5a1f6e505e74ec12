package tokenservice_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
)

func newService(t *testing.T, url string, clk *clock) *tokenservice.Service {
	t.Helper()
	s, err := tokenservice.New(tokenservice.Options{URL: url, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The requests are the PushGo gateway's: the path per provider and APNs
// environment, ?provider=, a User-Agent and no credentials; the answer's
// token, expires_in and project_id are read as it reads them.
func TestFetchFollowsThePushGoProtocol(t *testing.T) {
	fake := sendertest.NewFakeTokenService(t)
	fake.SetExpiresIn(1800)
	clk := newClock()
	c := newService(t, fake.URL()+"/", clk).Client() // a trailing slash is dropped
	ctx := context.Background()

	for _, tc := range []struct {
		p        tokenservice.Provider
		env      tokenservice.Environment
		path     string
		want     string
		wantProj string
	}{
		{tokenservice.APNs, tokenservice.Production, "/provider/token/production", "apns-production-1", ""},
		{tokenservice.APNs, tokenservice.Sandbox, "/provider/token/sandbox", "apns-sandbox-1", ""},
		{tokenservice.FCM, "", "/provider/token", "fcm-1", "pushgo-official"},
	} {
		tok, err := c.Fetch(ctx, tc.p, tc.env)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.p, tc.env, err)
		}
		if tok.Value != tc.want || tok.ProjectID != tc.wantProj || !tok.Expiry.Equal(clk.Now().Add(30*time.Minute)) {
			t.Errorf("%s %s: %+v", tc.p, tc.env, tok)
		}
		reqs := fake.Requests()
		r := reqs[len(reqs)-1]
		if r.Method != http.MethodGet || r.Path != tc.path || r.Query.Encode() != "provider="+string(tc.p) {
			t.Errorf("%s %s: request %s %s?%s", tc.p, tc.env, r.Method, r.Path, r.Query.Encode())
		}
		if ua := r.Header.Get("User-Agent"); ua != tokenservice.DefaultUserAgent || !strings.HasPrefix(ua, "pushgo-gateway/") {
			t.Errorf("User-Agent %q", ua)
		}
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("Authorization %q sent to the token service", a)
		}
	}
}

func TestFetchKeepsTheBasePath(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		io.WriteString(w, `{"success":true,"data":{"token":"t","expires_in":60}}`)
	}))
	t.Cleanup(srv.Close)
	c := newService(t, srv.URL+"/tokens/", newClock()).Client()
	if _, err := c.Fetch(context.Background(), tokenservice.FCM, ""); err != nil {
		t.Fatal(err)
	}
	if got != "/tokens/provider/token?provider=fcm" {
		t.Fatalf("request %q", got)
	}
}

func TestFetchAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // error text, "" for success
		token  tokenservice.Token
	}{
		{"ok", 200, `{"success":true,"error":null,"data":{"token":" tok ","expires_in":3600,"project_id":" p "},"extra":1}`, "",
			tokenservice.Token{Value: "tok", ProjectID: "p"}},
		{"empty project id is absent", 200, `{"success":true,"data":{"token":"tok","expires_in":60,"project_id":""}}`, "",
			tokenservice.Token{Value: "tok"}},
		{"status", 503, `{"success":false,"error":"upstream down","data":null}`, `status 503: {"success":false,"error":"upstream down","data":null}`, tokenservice.Token{}},
		{"status without body", 502, ``, "status 502: token service error", tokenservice.Token{}},
		{"success false", 200, `{"success":false,"error":"provider disabled","data":null}`, "status 200: provider disabled", tokenservice.Token{}},
		{"success false without error", 200, `{"success":false}`, "token service returned error", tokenservice.Token{}},
		{"no success", 200, `{"data":{"token":"t","expires_in":1}}`, "answer without success", tokenservice.Token{}},
		{"no data", 200, `{"success":true}`, "answer without data", tokenservice.Token{}},
		{"no token", 200, `{"success":true,"data":{"expires_in":60}}`, "answer without token", tokenservice.Token{}},
		{"blank token", 200, `{"success":true,"data":{"token":"  ","expires_in":60}}`, "answer without token", tokenservice.Token{}},
		{"no expires_in", 200, `{"success":true,"data":{"token":"t"}}`, "positive expires_in", tokenservice.Token{}},
		{"zero expires_in", 200, `{"success":true,"data":{"token":"t","expires_in":0}}`, "positive expires_in", tokenservice.Token{}},
		{"bad project id", 200, `{"success":true,"data":{"token":"t","expires_in":60,"project_id":"a/b"}}`, "not a project id", tokenservice.Token{}},
		{"not JSON", 200, `<html>`, "undecodable answer", tokenservice.Token{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			clk := newClock()
			tok, err := newService(t, srv.URL, clk).Client().Fetch(context.Background(), tokenservice.FCM, "")
			if tc.want == "" {
				if err != nil || tok.Value != tc.token.Value || tok.ProjectID != tc.token.ProjectID {
					t.Fatalf("got %+v, %v", tok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), `"token":"t"`) {
				t.Fatalf("the error carries a token: %v", err)
			}
			var se *tokenservice.Error
			if tc.status != 200 && (!errors.As(err, &se) || se.Status != tc.status) {
				t.Fatalf("error %#v is not a *tokenservice.Error with status %d", err, tc.status)
			}
		})
	}
}

func TestServiceOptions(t *testing.T) {
	for _, u := range []string{"", "token.pushgo.dev", "ftp://token.pushgo.dev", "https://", "https://x/?a=b", "https://u:p@x"} {
		if _, err := tokenservice.New(tokenservice.Options{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := tokenservice.New(tokenservice.Options{URL: "https://token.pushgo.dev", RetryInterval: -1}); err == nil {
		t.Error("negative retry interval accepted")
	}
	s, err := tokenservice.New(tokenservice.Options{URL: "https://token.pushgo.dev"})
	if err != nil {
		t.Fatal(err)
	}
	if s.APNs(tokenservice.Production) != s.APNs("") || s.APNs(tokenservice.Sandbox) == s.APNs(tokenservice.Production) || s.FCM() != s.FCM() {
		t.Error("one cache per provider and environment")
	}
	if u := s.Client().URL(tokenservice.APNs, tokenservice.Sandbox); u != "https://token.pushgo.dev/provider/token/sandbox?provider=apns" {
		t.Errorf("URL %q", u)
	}
}

// Through the Service, the caches fetch from the right path and keep a
// valid token while the service fails.
func TestServiceCaches(t *testing.T) {
	fake := sendertest.NewFakeTokenService(t)
	clk := newClock()
	s := newService(t, fake.URL(), clk)
	ctx := context.Background()
	if v, err := s.APNs(tokenservice.Sandbox).Token(ctx); err != nil || v != "apns-sandbox-1" {
		t.Fatalf("APNs sandbox: %q %v", v, err)
	}
	if tok, project, err := s.FCM().Access(ctx); err != nil || tok != "fcm-1" || project != "pushgo-official" {
		t.Fatalf("FCM: %q %q %v", tok, project, err)
	}
	fake.Fail(http.StatusServiceUnavailable)
	clk.Add(time.Hour - 30*time.Second)
	if v, err := s.APNs(tokenservice.Sandbox).Token(ctx); err != nil || v != "apns-sandbox-1" {
		t.Fatalf("APNs sandbox with the service failing: %q %v", v, err)
	}
	if n := fake.Count("/provider/token/sandbox"); n != 2 {
		t.Fatalf("%d requests to the sandbox path", n)
	}
	clk.Add(time.Minute)
	if _, err := s.APNs(tokenservice.Sandbox).Token(ctx); err == nil || !strings.Contains(err.Error(), "apns sandbox: token service: status 503") {
		t.Fatalf("expired with the service failing: %v", err)
	}
}

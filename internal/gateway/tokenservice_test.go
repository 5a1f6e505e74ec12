package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/pusher/sender/tokenservice"
)

func TestLoadTokenServiceURL(t *testing.T) {
	c, err := Load(nil, func(k string) string {
		return map[string]string{"PUSHGO_TOKEN_SERVICE_URL": "https://token.pushgo.dev"}[k]
	})
	if err != nil || c.TokenServiceURL != "https://token.pushgo.dev" {
		t.Fatalf("%q %v", c.TokenServiceURL, err)
	}
	c, err = Load([]string{"-token-service-url", "https://token.pushgo.cn"}, func(string) string { return "" })
	if err != nil || c.TokenServiceURL != "https://token.pushgo.cn" {
		t.Fatalf("%q %v", c.TokenServiceURL, err)
	}
}

// TestTokenServicePushes: with only PUSHGO_TOKEN_SERVICE_URL (and the fake
// provider's endpoint) configured, a message reaches an Android device
// with the service's access token, at the service's project.
func TestTokenServicePushes(t *testing.T) {
	svc := sendertest.NewFakeTokenService(t)
	fake := sendertest.NewFakeFCM(t)
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	cfg.TokenServiceURL, cfg.FCMEndpoint = svc.URL(), fake.Endpoint()
	base, ch := startWithAndroidSubscriber(t, cfg)
	s, _, m := post(t, base, "/message", `{"channel_id":"`+ch+`","password":"correct-horse","title":"Disk 2 failed","op_id":"disk-2"}`)
	data(t, s, m)

	api := apitest.New(base)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := api.Get(t, "/send_status/disk-2?channel_id="+ch, nil)
		if r.Status == 200 && strings.Contains(string(r.Body), `"status":"sent"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send status never reached sent: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Project != "pushgo-official" || reqs[0].Header.Get("Authorization") != "Bearer fcm-1" {
		t.Fatalf("FCM requests %+v", reqs)
	}
	if got := svc.Requests(); len(got) != 1 || got[0].Path != "/provider/token" || got[0].Query.Get("provider") != "fcm" {
		t.Fatalf("token service requests %+v", got)
	}
}

// notification is a message push for provider p.
func notification(t *testing.T, p payload.Provider) payload.Notification {
	t.Helper()
	return payload.Notification{DeliveryID: "1:dev", Provider: p, Token: "tok", Data: map[string]string{"title": "T"},
		Title: "T", Priority: payload.PriorityHigh}
}

// TestBuildSendersTokenService: own keys win, the token service serves a
// provider without them, and a provider with neither stays unconfigured.
func TestBuildSendersTokenService(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	svc := sendertest.NewFakeTokenService(t)
	unreachable := "https://127.0.0.1:1" // a send fails after the token is fetched

	// Neither: nothing configured, as without a token service.
	if out, err := buildSenders(Config{}, log); err != nil || len(out) != 0 {
		t.Fatalf("no configuration: %v %v", out, err)
	}
	if _, err := buildSenders(Config{TokenServiceURL: "token.pushgo.dev"}, log); err == nil {
		t.Fatal("a URL without scheme was accepted")
	}

	// Only the token service: both providers; APNs to the official app.
	out, err := buildSenders(Config{TokenServiceURL: svc.URL(), APNsEndpoint: unreachable, FCMEndpoint: unreachable + "/v1"}, log)
	if err != nil || out[payload.APNs] == nil || out[payload.FCM] == nil {
		t.Fatalf("token service only: %v %v", out, err)
	}
	an, err := out[payload.APNs].(*apns.Sender).Notification(notification(t, payload.APNs))
	if err != nil || an.Topic != "io.ethan.pushgo" {
		t.Fatalf("topic %q %v", an.Topic, err)
	}
	out[payload.APNs].Send(context.Background(), notification(t, payload.APNs))
	out[payload.FCM].Send(context.Background(), notification(t, payload.FCM))
	if svc.Count("/provider/token/production") != 1 || svc.Count("/provider/token") != 1 {
		t.Fatalf("token requests %+v", svc.Requests())
	}

	// A topic of one's own with the service's tokens.
	out, err = buildSenders(Config{TokenServiceURL: svc.URL(), APNsTopic: "io.example.fork"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if an, _ := out[payload.APNs].(*apns.Sender).Notification(notification(t, payload.APNs)); an.Topic != "io.example.fork" {
		t.Fatalf("topic %q", an.Topic)
	}

	// Own keys win: the token service is not asked.
	creds, grants := sendertest.ServiceAccount(t, "own-project")
	fake := sendertest.NewFakeFCM(t)
	out, err = buildSenders(Config{TokenServiceURL: svc.URL(), FCMCredentialsFile: creds, FCMEndpoint: fake.Endpoint()}, log)
	if err != nil {
		t.Fatal(err)
	}
	before := len(svc.Requests())
	if r := out[payload.FCM].Send(context.Background(), notification(t, payload.FCM)); r.Outcome.String() != "sent" {
		t.Fatalf("own FCM credentials: %v", r)
	}
	if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].Project != "own-project" || grants.Load() != 1 || len(svc.Requests()) != before {
		t.Fatalf("own credentials: %+v, %d grants, %d token service requests", reqs, grants.Load(), len(svc.Requests())-before)
	}
	// A credentials file whose key does not parse stops the start, and
	// the error names the setting (it used to start, and every Android
	// push was retried with nothing logged above debug).
	b, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(broken, bytes.ReplaceAll(b, []byte(`\n`), []byte(`\\n`)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := buildSenders(Config{FCMCredentialsFile: broken}, log); err == nil ||
		!strings.HasPrefix(err.Error(), "PUSHGO_FCM_CREDENTIALS_FILE: ") || !strings.Contains(err.Error(), "private_key") {
		t.Fatalf("a credentials file with a broken key: %v", err)
	}
	// Own APNs keys half set: an error, as without a token service.
	if _, err := buildSenders(Config{TokenServiceURL: svc.URL(), APNsKeyID: "ABC123DEFG"}, log); err == nil {
		t.Fatal("an incomplete APNs key was accepted")
	}
}

func TestAPNsEnvironment(t *testing.T) {
	for endpoint, want := range map[string]tokenservice.Environment{
		"":                                     tokenservice.Production,
		"production":                           tokenservice.Production,
		"development":                          tokenservice.Sandbox,
		"https://api.sandbox.push.apple.com":   tokenservice.Sandbox,
		"https://api.push.apple.com:443":       tokenservice.Production,
		"https://apns-proxy.example.com:8443/": tokenservice.Production,
	} {
		if got := apnsEnvironment(endpoint); got != want {
			t.Errorf("%q: %s, want %s", endpoint, got, want)
		}
	}
}

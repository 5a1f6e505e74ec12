package gateway

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// fcmCredentials writes a service account file whose token endpoint is a
// local server, so the FCM sender configured by PUSHGO_FCM_* runs against
// fakes exactly as it would against Google.
func fcmCredentials(t *testing.T) string {
	t.Helper()
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"local-test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "pushgo-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "pusher@pushgo-test.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": tokens.URL + "/token",
	})
	f := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(f, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSendStatus: a message to a subscribed Android device is delivered
// through the configured FCM sender, and /send_status follows it from
// accepted to sent.
func TestSendStatus(t *testing.T) {
	fake := sendertest.NewFakeFCM(t)
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	cfg.FCMCredentialsFile, cfg.FCMProjectID, cfg.FCMEndpoint = fcmCredentials(t), "pushgo-test", fake.Endpoint()
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()

	s, _, m := post(t, base, "/channel/create", `{"channel_name":"ops","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	s, _, m = post(t, base, "/device/register", `{"platform":"android"}`)
	dev := data(t, s, m)["device_key"].(string)
	s, _, m = post(t, base, "/channel/device", `{"device_key":"`+dev+`","channel_type":"fcm","provider_token":"tok-android-1"}`)
	data(t, s, m)
	s, _, m = post(t, base, "/channel/subscribe", `{"device_key":"`+dev+`","channel_id":"`+ch+`","password":"correct-horse"}`)
	data(t, s, m)
	time.Sleep(2 * time.Millisecond) // operations after the subscription's millisecond are pushed
	s, _, m = post(t, base, "/message", `{"channel_id":"`+ch+`","password":"correct-horse","title":"Disk 2 failed","severity":"high","op_id":"disk-2"}`)
	data(t, s, m)

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/send_status/disk-2?channel_id=" + ch)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(raw), `"status":"sent"`) {
			if !strings.Contains(string(raw), `"deliveries":{"sent":1,"failed":0,"pending":0}`) || !strings.Contains(string(raw), `"entity_type":"message"`) {
				t.Fatalf("send status %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send status never reached sent: %d %s", resp.StatusCode, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := fake.Received("tok-android-1")
	if len(got) != 1 || got[0].Data["title"] != "Disk 2 failed" || !got[0].High || !got[0].Authorized {
		t.Fatalf("FCM received %+v", got)
	}
	resp, _ := http.Get(base + "/send_status/unknown-op?channel_id=" + ch)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown op: %d", resp.StatusCode)
	}
}

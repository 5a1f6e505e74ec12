package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// startWithAndroidSubscriber starts a gateway on cfg and makes channel
// "ops" (password correct-horse) with one Android device subscribed, its
// FCM token tok-android-1. It returns the HTTP base and the channel id.
func startWithAndroidSubscriber(t *testing.T, cfg Config) (base, channelID string) {
	t.Helper()
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base = "http://" + g.Addr()
	s, _, m := post(t, base, "/channel/create", `{"channel_name":"ops","password":"correct-horse"}`)
	ch := data(t, s, m)["channel_id"].(string)
	s, _, m = post(t, base, "/device/register", `{"platform":"android"}`)
	dev := data(t, s, m)["device_key"].(string)
	s, _, m = post(t, base, "/channel/device", `{"device_key":"`+dev+`","channel_type":"fcm","provider_token":"tok-android-1"}`)
	data(t, s, m)
	s, _, m = post(t, base, "/channel/subscribe", `{"device_key":"`+dev+`","channel_id":"`+ch+`","password":"correct-horse"}`)
	data(t, s, m)
	return base, ch
}

// TestSendStatus: a message to a subscribed Android device is delivered
// through the configured FCM sender, and /send_status follows it from
// accepted to sent.
func TestSendStatus(t *testing.T) {
	fake := sendertest.NewFakeFCM(t)
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	creds, _ := sendertest.ServiceAccount(t, "pushgo-test")
	cfg.FCMCredentialsFile, cfg.FCMProjectID, cfg.FCMEndpoint = creds, "pushgo-test", fake.Endpoint()
	base, ch := startWithAndroidSubscriber(t, cfg)
	s, _, m := post(t, base, "/message", `{"channel_id":"`+ch+`","password":"correct-horse","title":"Disk 2 failed","severity":"high","op_id":"disk-2"}`)
	data(t, s, m)

	api := apitest.New(base)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := api.Get(t, "/send_status/disk-2?channel_id="+ch, nil)
		raw := r.Body
		if r.Status == 200 && strings.Contains(string(raw), `"status":"sent"`) {
			if !strings.Contains(string(raw), `"deliveries":{"sent":1,"failed":0,"pending":0}`) || !strings.Contains(string(raw), `"entity_type":"message"`) {
				t.Fatalf("send status %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send status never reached sent: %d %s", r.Status, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := fake.Received("tok-android-1")
	if len(got) != 1 || got[0].Data["title"] != "Disk 2 failed" || !got[0].High || !got[0].Authorized {
		t.Fatalf("FCM received %+v", got)
	}
	if r := api.Get(t, "/send_status/unknown-op?channel_id="+ch, nil); r.Status != 404 {
		t.Fatalf("unknown op: %d", r.Status)
	}
}

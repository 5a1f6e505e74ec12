package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/fake"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/ops"
)

func TestConformance(t *testing.T) {
	for _, p := range []payload.Provider{payload.APNs, payload.FCM} {
		t.Run(string(p), func(t *testing.T) {
			sendertest.RunConformance(t, func(t *testing.T) (sender.Sender, sendertest.Provider) {
				s := fake.New(fake.WithPlatform(p))
				return s, s
			})
		})
	}
}

func TestScriptAndRecord(t *testing.T) {
	s := fake.New(fake.WithName("apns"))
	s.Script("t1", sendertest.Answer{Kind: sendertest.Unavailable}, sendertest.Answer{Kind: sendertest.Unavailable}, sendertest.Answer{Kind: sendertest.Unregistered})
	n, err := payload.Build(sendertest.Envelope(t, ops.MessageCreate, "m", ops.MessagePayload{Title: "T", Severity: "normal", OccurredAt: 1}), 1, "d", payload.APNs, "t1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []sender.Outcome
	for range 4 {
		got = append(got, s.Send(context.Background(), n).Outcome)
	}
	want := []sender.Outcome{sender.Retry, sender.Retry, sender.RetireToken, sender.Sent}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("outcomes %v, want %v", got, want)
		}
	}
	if len(s.Notifications()) != 4 || s.Name() != "apns" {
		t.Errorf("recorded %d, name %q", len(s.Notifications()), s.Name())
	}
}

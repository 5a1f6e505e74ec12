package payload

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestTemplateCutsWhatBuildBuilds: a notification cut from an operation's
// template is, byte for byte, what Build makes for that device at that
// time, for every kind of operation; and a template declines what it
// cannot cut (FCM, a push near the size limit, a key needing escapes).
func TestTemplateCutsWhatBuildBuilds(t *testing.T) {
	ttl := now.Add(time.Hour).UnixMilli()
	cases := []ops.Envelope{
		env(t, ops.MessageCreate, "x1", ops.MessagePayload{Title: "Hi \"you\"", Body: "there\n<b>", Severity: "low", OccurredAt: 3000, TTL: &ttl,
			Tags: []string{"a"}, Metadata: jsontext.Value(`{"delivery_id":"not mine","sent_at":"never"}`)}),
		env(t, ops.EventUpdate, "x1", ops.EventPayload{Status: "ok", Message: "sent_at", Severity: "critical", EventTime: 1}),
		env(t, ops.ThingUpdate, "nas", ops.ThingPayload{Title: "NAS", ObservedAt: 2000, Attrs: jsontext.Value(`{"cpu":42}`)}),
	}
	later := now.Add(1500 * time.Millisecond)
	for _, e := range cases {
		tmpl, err := NewTemplate(e, 42, APNs, now, BaseURL("https://gw.example"))
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"0123456789abcdef0123456789abcdef", "k"} {
			got, ok, err := tmpl.For(key, "tok", "ios", later)
			if err != nil || !ok {
				t.Fatalf("%s: For(%q): ok %v err %v", e.Op, key, ok, err)
			}
			want, err := Build(e, 42, key, APNs, "tok", later, BaseURL("https://gw.example"))
			if err != nil {
				t.Fatal(err)
			}
			want.Platform = "ios"
			if !bytes.Equal(got.APNsBody, want.APNsBody) {
				t.Fatalf("%s: body\n got %s\nwant %s", e.Op, got.APNsBody, want.APNsBody)
			}
			// The device's inbox item: the full map, as Build's.
			gotItem, err := InboxItem(got)
			if err != nil {
				t.Fatal(err)
			}
			wantItem, err := json.Marshal(delivery.InboxItem{DeliveryID: want.DeliveryID, Payload: want.Full}, json.Deterministic(true))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotItem, wantItem) {
				t.Fatalf("%s: inbox item\n got %s\nwant %s", e.Op, gotItem, wantItem)
			}
			if got.Data != nil || got.Full != nil || got.DeliveryID != want.DeliveryID || got.Token != "tok" || got.Platform != "ios" ||
				got.CollapseID != want.CollapseID || got.Priority != want.Priority || got.Expiration != want.Expiration ||
				got.NowOrNever != want.NowOrNever || got.Background != want.Background {
				t.Fatalf("%s: notification\n got %+v\nwant %+v", e.Op, got, want)
			}
		}
	}
	// The ttl is checked at each cut.
	tmpl, _ := NewTemplate(cases[0], 42, APNs, now)
	if _, _, err := tmpl.For("k", "tok", "ios", time.UnixMilli(ttl)); !errors.Is(err, ErrExpired) {
		t.Fatalf("past the ttl: %v, want ErrExpired", err)
	}
	// Declined: FCM, a key needing escapes, a body near the limit.
	fcm, _ := NewTemplate(cases[1], 42, FCM, now)
	big, _ := NewTemplate(env(t, ops.MessageCreate, "x2", ops.MessagePayload{Title: "t", Body: strings.Repeat("b", MaxPayloadBytes-700),
		Severity: "low", OccurredAt: 1}), 42, APNs, now)
	apns, _ := NewTemplate(cases[1], 42, APNs, now)
	for name, c := range map[string]struct {
		t   *Template
		key string
	}{"fcm": {fcm, "k"}, "escaped key": {apns, `k"`}, "near the limit": {big, "k"}} {
		if _, ok, _ := c.t.For(c.key, "tok", "ios", now); ok {
			t.Errorf("%s: cut, want declined", name)
		}
	}
}

package deliveryflow_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestRefreshAlertsNoAndroidPhone: an integration's refresh of an open
// event (ops.EventPayload.Refresh: a Dynatrace problem reported again, a
// trigger of an acknowledged incident) is a background push to an iPhone
// and goes to an Android phone's inbox only: the PushGo Android app reads
// no silent flag and alerts for every high or critical event push, so each
// refresh of a critical incident rang its alarm.
func TestRefreshAlertsNoAndroidPhone(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "ops", "password": pw})["channel_id"].(string)
	e.device("ios", "apns", apnsToken, ch)
	e.device("android", "fcm", fcmToken, ch)
	with := withChannel(ch)
	ev := e.post("/event/create", with("title", "Disk full", "status", "firing", "message", "Disk at 99%",
		"severity", "critical", "event_time", 1713750000000))["event_id"].(string)

	// The refresh, as the alert tracker appends it (no HTTP route makes one).
	deadline := int64(1713753600000)
	payload, _ := json.Marshal(ops.EventPayload{EventID: ev, Status: "firing", Message: "Disk at 99%", Severity: ops.SeverityCritical,
		EventTime: 1713750060000, Deadline: &deadline, Refresh: true})
	env, _ := json.Marshal(ops.Envelope{V: 1, Op: ops.EventUpdate, ChannelID: ch, OpID: "refresh-1", EntityID: ev, AcceptedAt: 1713750060000, Payload: payload})
	m := nats.NewMsg(streams.OpSubject(ch, ops.KindEvent, ev))
	m.Header.Set(streams.HeaderOp, string(ops.EventUpdate))
	m.Data = env
	if _, err := e.b.JS.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// Then an update that alerts: once it is at both providers, the
	// refresh before it was handled.
	e.post("/event/update", with("event_id", ev, "status", "resolving", "message", "Cleanup running", "severity", "high", "event_time", 1713750120000))
	waitFor(t, "the update at both providers", func() bool {
		return len(e.fcm.Received(fcmToken)) >= 2 && len(e.apns.Received(apnsToken)) >= 3
	})
	apns, fcm := e.apns.Received(apnsToken), e.fcm.Received(fcmToken)
	if len(apns) != 3 || !apns[1].Background || apns[1].Alert {
		t.Fatalf("iPhone: %d pushes (want create, refresh, update), the refresh background=%v alert=%v", len(apns), len(apns) > 1 && apns[1].Background, len(apns) > 1 && apns[1].Alert)
	}
	if len(fcm) != 2 || fcm[1].Data["status"] != "resolving" {
		t.Fatalf("Android: %d pushes %v, want the create and the update only (the refresh in the inbox)", len(fcm), fcm)
	}
}

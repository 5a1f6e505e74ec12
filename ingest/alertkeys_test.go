package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestAlertKeysGoOnceTheirEventsClosed: a PagerDuty incident triggered and
// resolved and an Alertmanager alert fired and resolved leave nothing in
// PUSHGO_ALERT_KEYS (no key, no group record, no marker) once the keys'
// keep has passed since the close, while an incident still triggered
// keeps its key; a resolve re-sent after the removal is answered as
// before and appends nothing, and a trigger after it opens a new Event.
// Until 6 December every key stayed for good.
func TestAlertKeysGoOnceTheirEventsClosed(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{AlertKeysKeep: 300 * time.Millisecond, AlertKeysSweepEvery: 50 * time.Millisecond})
	ch := g.createChannel("alert keys")
	tok := mustOK(t, g.post("/channel/token/create", body(ch, "name", "tools", "scopes", []string{"events.ingest"}))).Str("token")
	hdr := http.Header{"Authorization": {"Api-Token " + tok}, "Content-Type": {"application/json"}}
	send := func(path string, b any, status int) {
		t.Helper()
		r, err := g.api.Do(context.Background(), "POST", path, b, hdr)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		if r.Status != status {
			t.Fatalf("POST %s answered %d, want %d: %s", path, r.Status, status, r.Body)
		}
	}
	pd := func(action, key string) map[string]any {
		return map[string]any{"routing_key": tok, "event_action": action, "dedup_key": key,
			"payload": map[string]any{"summary": "disk full", "source": "nas", "severity": "error"}}
	}
	am := func(status string) string {
		end := ""
		if status == "resolved" {
			end = `,"endsAt":"2026-01-01T00:05:00Z"`
		}
		return fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"A\"}","truncatedAlerts":0,"status":%q,"receiver":"r","externalURL":"http://am",
			"alerts":[{"status":%q,"labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z"%s,"fingerprint":"f1"}]}`, status, status, end)
	}
	send("/v2/enqueue", pd("trigger", "inc-1"), 202)
	send("/v2/enqueue", pd("trigger", "inc-open"), 202)
	send("/integrations/alertmanager", am("firing"), 200)
	kv, err := jetstream.New(g.nc)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := kv.KeyValue(context.Background(), streams.AlertKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		t.Helper()
		l, err := bucket.ListKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range l.Keys() {
			if strings.Count(k, ".") == 2 { // not the sweep's lease
				out = append(out, k)
			}
		}
		return out
	}
	if n := len(keys()); n != 4 { // two incidents, the alert and its group
		t.Fatalf("%d keys while firing, want 4", n)
	}
	send("/v2/enqueue", pd("resolve", "inc-1"), 202)
	send("/integrations/alertmanager", am("resolved"), 200)

	deadline := time.Now().Add(10 * time.Second)
	for len(keys()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("keys left 10 s after the closes: %v, want the open incident's only", keys())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, err := kv.Stream(context.Background(), "KV_"+streams.AlertKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.NumSubjects != 2 {
		t.Fatalf("subjects left: %+v %v, want the open incident's key and the lease", info.State, err)
	}

	creates := func() (n int) {
		for _, m := range streamOps(t, g.nc) {
			if m.Header.Get(streams.HeaderOp) == "event.create" {
				n++
			}
		}
		return n
	}
	before, all := creates(), len(streamOps(t, g.nc))
	send("/v2/enqueue", pd("resolve", "inc-1"), 202)
	send("/integrations/alertmanager", am("resolved"), 200)
	if n := len(streamOps(t, g.nc)); n != all {
		t.Fatalf("the re-sent resolves appended %d operations", n-all)
	}
	send("/v2/enqueue", pd("trigger", "inc-1"), 202)
	if n := creates(); n != before+1 {
		t.Fatalf("the trigger after the removal created %d events, want 1", n-before)
	}
}

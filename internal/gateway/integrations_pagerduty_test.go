package gateway

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// pagerduty posts an Events v2 body to /v2/enqueue and returns the
// decoded answer; want is the expected status.
func (it *integ) pagerduty(body string, want int) map[string]any {
	it.t.Helper()
	s, h, b := it.send("POST", "/v2/enqueue", map[string]string{"Content-Type": "application/json"}, body)
	if s != want {
		it.t.Fatalf("status %d, want %d: %s", s, want, b)
	}
	if (s == 429) != (h.Get("Retry-After") != "") {
		it.t.Fatalf("Retry-After %q on %d", h.Get("Retry-After"), s)
	}
	return decode(it.t, b)
}

// pdEvent returns the event whose attrs carry dedup_key.
func (it *integ) pdEvent(dedupKey string) map[string]any {
	it.t.Helper()
	var found map[string]any
	for _, e := range it.events("") {
		if attrs, _ := e["attrs"].(map[string]any); attrs["dedup_key"] == dedupKey {
			if found != nil {
				it.t.Fatalf("two events of dedup_key %q", dedupKey)
			}
			found = e
		}
	}
	if found == nil {
		it.t.Fatalf("no event of dedup_key %q", dedupKey)
	}
	return found
}

func pdBody(routingKey, action, dedupKey, extra string) string {
	b := `{"routing_key":"` + routingKey + `","event_action":"` + action + `"`
	if dedupKey != "" {
		b += `,"dedup_key":"` + dedupKey + `"`
	}
	return b + extra + `}`
}

const pdPayload = `,"payload":{"summary":"DISK at 99% on machine prod-datapipe03.example.com","timestamp":"2015-07-17T08:42:58.315+0000",` +
	`"severity":"critical","source":"prod-datapipe03.example.com","component":"mysql","group":"prod-datapipe","class":"disk",` +
	`"custom_details":{"free space":"1%","ping time":"1500ms","load avg":0.75,"nested":{"a":1}}},` +
	`"images":[{"src":"https://chart.example.com/disk.png","href":"https://example.com/","alt":"disk"}],` +
	`"links":[{"href":"https://runbooks.example.com/disk","text":"Runbook"}],"client":"Sample Monitoring Service","client_url":"https://monitoring.example.com"`

// TestPagerDutyLifecycle: trigger opens one Event, an identical trigger
// appends nothing, acknowledge updates it (status acknowledged), resolve
// closes it; repeated and unknown resolves are accepted and change
// nothing.
func TestPagerDutyLifecycle(t *testing.T) {
	it := startIntegrations(t, "pagerduty")

	m := it.pagerduty(pdBody(it.token, "trigger", "srv01/disk", pdPayload), 202)
	if m["status"] != "success" || m["message"] != "Event processed" || m["dedup_key"] != "srv01/disk" || len(m) != 3 {
		t.Fatalf("trigger answer %v", m)
	}
	e := it.pdEvent("srv01/disk")
	id := e["event_id"].(string)
	attrs := e["attrs"].(map[string]any)
	if e["title"] != "DISK at 99% on machine prod-datapipe03.example.com" || e["status"] != "triggered" || e["severity"] != "critical" ||
		e["state"] != "ONGOING" || e["event_time"] != float64(1437122578315) || attrs["source"] != "prod-datapipe03.example.com" ||
		attrs["component"] != "mysql" || attrs["custom_details"].(map[string]any)["nested"] != `{"a":1}` ||
		attrs["links"].(map[string]any)["Runbook"] != "https://runbooks.example.com/disk" {
		t.Fatalf("triggered event %v", e)
	}
	if imgs, _ := e["images"].([]any); len(imgs) != 1 || imgs[0] != "https://chart.example.com/disk.png" {
		t.Fatalf("images %v", e["images"])
	}
	h := len(it.history())

	// The same trigger again, at a later timestamp: nothing appended.
	it.pagerduty(pdBody(it.token, "trigger", "srv01/disk", strings.Replace(pdPayload, "08:42:58.315", "08:47:58.315", 1)), 202)
	if n := len(it.history()); n != h {
		t.Fatalf("history %d after an identical trigger, want %d", n, h)
	}

	// An acknowledge and a resolve without a payload (go-pagerduty sends
	// none) keep the incident's severity: an acknowledged critical
	// incident is not "normal".
	it.pagerduty(pdBody(it.token, "acknowledge", "srv01/disk", ""), 202)
	if e := it.event(id); e["status"] != "acknowledged" || e["message"] != "Acknowledged" || e["state"] != "ONGOING" || e["severity"] != "critical" {
		t.Fatalf("acknowledged event %v", e)
	}
	if n := len(it.history()); n != h+1 {
		t.Fatalf("history %d after acknowledge, want %d", n, h+1)
	}
	it.pagerduty(pdBody(it.token, "acknowledge", "srv01/disk", ""), 202)
	if n := len(it.history()); n != h+1 {
		t.Fatalf("history %d after a repeated acknowledge, want %d", n, h+1)
	}

	m = it.pagerduty(pdBody(it.token, "resolve", "srv01/disk", ""), 202)
	if m["dedup_key"] != "srv01/disk" {
		t.Fatalf("resolve answer %v", m)
	}
	if e := it.event(id); e["state"] != "CLOSED" || e["status"] != "resolved" || e["ended_at"] == nil || e["severity"] != "critical" {
		t.Fatalf("resolved event %v", e)
	}
	h = len(it.history())
	it.pagerduty(pdBody(it.token, "resolve", "srv01/disk", ""), 202)
	it.pagerduty(pdBody(it.token, "resolve", "never-triggered", ""), 202)
	it.pagerduty(pdBody(it.token, "acknowledge", "never-triggered", ""), 202)
	if n := len(it.history()); n != h {
		t.Fatalf("history %d after resolves of closed and unknown keys, want %d", n, h)
	}
	if n := len(it.events("")); n != 1 {
		t.Fatalf("%d events", n)
	}

	// A trigger without dedup_key gets a generated one, returned.
	m = it.pagerduty(pdBody(it.token, "trigger", "", pdPayload), 202)
	key, _ := m["dedup_key"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(key) {
		t.Fatalf("generated dedup_key %q", key)
	}
	if e := it.pdEvent(key); e["state"] != "ONGOING" || e["event_id"] == id {
		t.Fatalf("event of the generated key %v", e)
	}
}

// TestPagerDutyAcknowledgedStaysAcknowledged: a trigger of an acknowledged
// incident leaves it acknowledged and alerts no one, as PagerDuty does
// ("while an incident is acknowledged, it won't generate any additional
// notifications, even if it receives new trigger events"): monitoring
// tools re-send their triggers while the problem lasts. It is taken into
// the Event as a background update (to this Android phone, an inbox item:
// no push). After a resolve, a trigger opens a
// new Event, which alerts again.
func TestPagerDutyAcknowledgedStaysAcknowledged(t *testing.T) {
	fake := sendertest.NewFakeFCM(t)
	creds, _ := sendertest.ServiceAccount(t, "pushgo-test")
	it := startIntegrations(t, "pagerduty-ack", func(c *Config) {
		c.FCMCredentialsFile, c.FCMProjectID, c.FCMEndpoint = creds, "pushgo-test", fake.Endpoint()
	})
	s, _, m := it.pushgo("/device/register", map[string]any{"platform": "android"})
	dev := data(t, s, m)["device_key"].(string)
	s, _, m = it.pushgo("/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": "tok-pd"})
	data(t, s, m)
	s, _, m = it.pushgo("/channel/subscribe", map[string]any{"device_key": dev, "channel_id": it.channel, "password": it.password})
	data(t, s, m)
	// pushes waits for the device's n-th push and returns them all.
	pushes := func(n int) []sendertest.Observed {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := fake.Received("tok-pd")
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d pushes, want %d: %+v", len(got), n, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	it.pagerduty(pdBody(it.token, "trigger", "srv02/disk", pdPayload), 202)
	id := it.pdEvent("srv02/disk")["event_id"].(string)
	if got := pushes(1); !got[0].High {
		t.Fatalf("trigger pushed %+v, want an alert", got[0])
	}
	it.pagerduty(pdBody(it.token, "acknowledge", "srv02/disk", ""), 202)
	if got := pushes(2); !got[1].High || got[1].Body != "Acknowledged" {
		t.Fatalf("acknowledge pushed %+v", got[1])
	}
	h := len(it.history())

	// The tool triggers again while the problem lasts, with new details.
	again := strings.Replace(pdPayload, `"free space":"1%"`, `"free space":"0%"`, 1)
	it.pagerduty(pdBody(it.token, "trigger", "srv02/disk", again), 202)
	e := it.event(id)
	if e["status"] != "acknowledged" || e["message"] != "Acknowledged" || e["state"] != "ONGOING" {
		t.Fatalf("an acknowledged event after a new trigger: %v", e)
	}
	if d := e["attrs"].(map[string]any)["custom_details"].(map[string]any); d["free space"] != "0%" {
		t.Fatalf("the trigger's details were not taken: %v", d)
	}
	// A background update: to an Android phone, an inbox item only (the
	// app alerts for every critical event push); the resolve below is the
	// next push.
	if n := len(it.history()); n != h+1 {
		t.Fatalf("history %d after the trigger, want %d", n, h+1)
	}
	it.pagerduty(pdBody(it.token, "trigger", "srv02/disk", again), 202)
	if n := len(it.history()); n != h+1 {
		t.Fatalf("history %d after the same trigger again, want %d", n, h+1)
	}

	// The tool sends its acknowledge again: no alert either.
	it.pagerduty(pdBody(it.token, "acknowledge", "srv02/disk", ""), 202)

	// Resolved, the next trigger is a new incident.
	it.pagerduty(pdBody(it.token, "resolve", "srv02/disk", ""), 202)
	if e := it.event(id); e["state"] != "CLOSED" || e["status"] != "resolved" {
		t.Fatalf("resolved event %v", e)
	}
	// The resolve is the third push: the trigger of the acknowledged
	// incident and the re-sent acknowledge alerted nobody.
	if got := pushes(3); len(got) != 3 || got[2].Body != "Resolved" {
		t.Fatalf("pushes after the resolve: %+v, want the trigger, the acknowledge and the resolve only", got)
	}
	n := 3
	it.pagerduty(pdBody(it.token, "trigger", "srv02/disk", again), 202)
	var next map[string]any
	for _, e := range it.events("ONGOING") {
		if e["event_id"] != id {
			next = e
		}
	}
	if next == nil || next["status"] != "triggered" {
		t.Fatalf("no new triggered event after the resolve: %v", it.events(""))
	}
	if got := pushes(n + 1); !got[n].High || got[n].Title != "DISK at 99% on machine prod-datapipe03.example.com" {
		t.Fatalf("the new incident pushed %+v, want an alert", got[n])
	}
}

// TestPagerDutyRejections: PagerDuty's error shapes, and nothing appended.
func TestPagerDutyRejections(t *testing.T) {
	it := startIntegrations(t, "pagerduty-rejections")
	readOnly := it.newToken("events.read")
	wrong := it.token[:len(it.token)-4] + "0000"
	for _, c := range []struct {
		name, body string
		status     int
		err        string
	}{
		{"bad JSON", `{"routing_key":`, 400, "not valid JSON"},
		{"trigger without payload", pdBody(it.token, "trigger", "k", ""), 400, "'payload' is required"},
		{"unknown action", pdBody(it.token, "escalate", "k", pdPayload), 400, "'event_action' must be one of"},
		{"resolve without dedup_key", pdBody(it.token, "resolve", "", ""), 400, "'dedup_key' is required"},
		{"wrong routing_key", pdBody(wrong, "trigger", "k", pdPayload), 401, "'routing_key' is not a valid integration token"},
		{"routing_key without scope", pdBody(readOnly, "trigger", "k", pdPayload), 403, "lacks the events.ingest scope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := it.pagerduty(c.body, c.status)
			errs, _ := m["errors"].([]any)
			if m["status"] != "invalid event" || m["message"] != "Event object is invalid" || len(errs) == 0 || !strings.Contains(errs[0].(string), c.err) {
				t.Fatalf("answer %v", m)
			}
		})
	}
	if n := len(it.history()); n != 0 {
		t.Fatalf("rejections appended %d operations", n)
	}
}

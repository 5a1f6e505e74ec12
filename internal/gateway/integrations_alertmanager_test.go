package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// amPayload is a realistic Alertmanager v4 notification of one group with
// two alerts; status is the alerts' status and endsAt their endsAt (a
// firing alert's endsAt moves forward at every resend).
func amPayload(status, endsAt, summary string) string {
	return `{
  "receiver": "pushgo",
  "status": "` + status + `",
  "alerts": [
    {
      "status": "` + status + `",
      "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "job": "node", "severity": "critical"},
      "annotations": {"summary": "` + summary + `", "description": "CPU has been above 90% for 5 minutes"},
      "startsAt": "2025-10-09T08:00:00.123Z",
      "endsAt": "` + endsAt + `",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
      "fingerprint": "1a2b3c4d5e6f7a8b"
    },
    {
      "status": "` + status + `",
      "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "job": "node", "severity": "warning"},
      "annotations": {"description": "Disk /var is 95% full"},
      "startsAt": "2025-10-09T08:01:00Z",
      "endsAt": "` + endsAt + `",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
      "fingerprint": "2b3c4d5e6f7a8b9c"
    }
  ],
  "groupLabels": {"job": "node"},
  "commonLabels": {"job": "node"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{job=\"node\"}",
  "truncatedAlerts": 0
}`
}

// amAnswer is the data of a 200 answer.
type amAnswer struct {
	Alerts, Opened, Updated, Unchanged, Resolved, Absent, Gone int
	Events                                                     []struct {
		Fingerprint string `json:"fingerprint"`
		EventID     string `json:"event_id"`
		Outcome     string `json:"outcome"`
	}
}

// alertmanager posts body as Alertmanager does (Authorization: Api-Token,
// Content-Type application/json) and returns the answer's data; want is
// the expected status.
func (it *integ) alertmanager(auth, body string, want int) (amAnswer, map[string]any) {
	it.t.Helper()
	s, h, b := it.send("POST", "/integrations/alertmanager", map[string]string{"Authorization": auth, "Content-Type": "application/json"}, body)
	m := decode(it.t, b)
	if s != want {
		it.t.Fatalf("status %d, want %d: %s", s, want, b)
	}
	if s != 200 {
		if m["success"] != false || m["data"] != nil || m["error_code"] == nil {
			it.t.Fatalf("failure envelope: %s", b)
		}
		if (s == 503) != (h.Get("Retry-After") != "") {
			it.t.Fatalf("Retry-After %q on %d", h.Get("Retry-After"), s)
		}
		return amAnswer{}, m
	}
	if m["success"] != true || m["error"] != nil || m["error_code"] != nil {
		it.t.Fatalf("success envelope: %s", b)
	}
	var env struct{ Data amAnswer }
	if err := json.Unmarshal(b, &env); err != nil {
		it.t.Fatal(err)
	}
	return env.Data, m
}

func amMillis(t *testing.T, rfc3339 string) float64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, rfc3339)
	if err != nil {
		t.Fatal(err)
	}
	return float64(tm.UnixMilli())
}

// TestAlertmanagerLifecycle: a two-alert group fires (one Event per
// fingerprint), is re-sent unchanged (nothing appended), changes one
// summary (one update), resolves (both closed with ended_at = endsAt), is
// re-sent resolved (nothing), and fires again (new Events).
func TestAlertmanagerLifecycle(t *testing.T) {
	it := startIntegrations(t, "alertmanager")
	auth := "Api-Token " + it.token

	a, _ := it.alertmanager(auth, amPayload("firing", "2025-10-09T08:10:00Z", "CPU above 90% on web-1"), 200)
	if a.Alerts != 2 || a.Opened != 2 || len(a.Events) != 2 || a.Events[0].Outcome != "opened" || a.Events[0].Fingerprint != "1a2b3c4d5e6f7a8b" {
		t.Fatalf("first: %+v", a)
	}
	cpu, disk := a.Events[0].EventID, a.Events[1].EventID
	if cpu == "" || disk == "" || cpu == disk {
		t.Fatalf("event ids %q %q", cpu, disk)
	}
	e := it.event(cpu)
	if e["title"] != "HighCPU" || e["status"] != "firing" || e["message"] != "CPU above 90% on web-1" || e["severity"] != "critical" ||
		e["state"] != "ONGOING" || e["started_at"] != amMillis(t, "2025-10-09T08:00:00.123Z") {
		t.Fatalf("cpu event %v", e)
	}
	attrs := e["attrs"].(map[string]any)
	if attrs["labels"].(map[string]any)["instance"] != "web-1:9100" || attrs["generatorURL"] != "http://prometheus:9090/graph?g0.expr=cpu" ||
		attrs["externalURL"] != "http://alertmanager:9093" || attrs["annotations"].(map[string]any)["description"] == nil {
		t.Fatalf("cpu attrs %v", attrs)
	}
	if d := it.event(disk); d["message"] != "Disk /var is 95% full" || d["severity"] != "normal" || d["title"] != "DiskFull" {
		t.Fatalf("disk event %v", d)
	}
	h := len(it.history())
	if h != 2 {
		t.Fatalf("history %d after the first notification", h)
	}

	// The group_interval resend: same alerts, endsAt moved on.
	a, _ = it.alertmanager(auth, amPayload("firing", "2025-10-09T08:15:00Z", "CPU above 90% on web-1"), 200)
	if a.Unchanged != 2 || a.Opened+a.Updated != 0 || a.Events[0].EventID != cpu || a.Events[1].EventID != disk {
		t.Fatalf("resend: %+v", a)
	}
	if n := len(it.history()); n != h {
		t.Fatalf("history %d after an unchanged resend, want %d", n, h)
	}
	if n := len(it.events("")); n != 2 {
		t.Fatalf("%d events after the resend", n)
	}

	// One summary changes: one update.
	a, _ = it.alertmanager(auth, amPayload("firing", "2025-10-09T08:20:00Z", "CPU above 95% on web-1"), 200)
	if a.Updated != 1 || a.Unchanged != 1 || a.Events[0].Outcome != "updated" {
		t.Fatalf("changed: %+v", a)
	}
	if n := len(it.history()); n != h+1 {
		t.Fatalf("history %d after a change, want %d", n, h+1)
	}
	if e := it.event(cpu); e["message"] != "CPU above 95% on web-1" || e["state"] != "ONGOING" {
		t.Fatalf("updated event %v", e)
	}

	// Resolved: both closed at endsAt.
	end := "2025-10-09T08:30:00.5Z"
	a, _ = it.alertmanager(auth, amPayload("resolved", end, "CPU above 95% on web-1"), 200)
	if a.Resolved != 2 || a.Events[0].EventID != cpu || a.Events[1].Outcome != "resolved" {
		t.Fatalf("resolved: %+v", a)
	}
	for _, id := range []string{cpu, disk} {
		e := it.event(id)
		if e["state"] != "CLOSED" || e["status"] != "resolved" || e["ended_at"] != amMillis(t, end) || e["event_time"] != amMillis(t, end) {
			t.Fatalf("closed event %v", e)
		}
	}
	if n := len(it.events("ONGOING")); n != 0 {
		t.Fatalf("%d events still open", n)
	}
	h = len(it.history())

	// Resolved again (Alertmanager re-sends resolved notifications too).
	a, _ = it.alertmanager(auth, amPayload("resolved", end, "CPU above 95% on web-1"), 200)
	if a.Absent != 2 || a.Resolved != 0 || a.Events[0].EventID != "" || a.Events[0].Outcome != "absent" {
		t.Fatalf("resolved again: %+v", a)
	}
	if n := len(it.history()); n != h {
		t.Fatalf("history %d after a repeated resolve, want %d", n, h)
	}

	// Firing again after resolution opens new Events.
	a, _ = it.alertmanager(auth, amPayload("firing", "2025-10-09T09:10:00Z", "CPU above 95% on web-1"), 200)
	if a.Opened != 2 || a.Events[0].EventID == cpu || a.Events[1].EventID == disk {
		t.Fatalf("refire: %+v", a)
	}
	if n := len(it.events("ONGOING")); n != 2 {
		t.Fatalf("%d open events after refiring", n)
	}
}

// grafanaPayload is Grafana's documented webhook example (two alerts);
// value is the first alert's evaluated value, which changes at every
// evaluation, and imageN names its screenshot.
func grafanaPayload(status, endsAt string, value float64, imageN int) string {
	return fmt.Sprintf(`{
  "receiver": "My Super Webhook",
  "status": %[1]q,
  "orgId": 1,
  "alerts": [
    {
      "status": %[1]q,
      "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
      "annotations": {"description": "The system has high memory usage", "runbook_url": "https://myrunbook.com/runbook/1234", "summary": "This alert was triggered for zone us-1"},
      "startsAt": "2021-10-12T09:51:03.157076+02:00",
      "endsAt": %[2]q,
      "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
      "fingerprint": "c6eadffa33fcdf37",
      "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%%3DT2%%2Cteam%%3Dblue%%2Czone%%3Dus-1",
      "dashboardURL": "",
      "panelURL": "",
      "imageURL": "https://grafana.example.com/render/%[4]d.png",
      "values": {"B": %[3]g, "C": 1}
    },
    {
      "status": %[1]q,
      "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
      "annotations": {"description": "The system has high CPU usage", "runbook_url": "https://myrunbook.com/runbook/1234", "summary": "This alert was triggered for zone eu-1"},
      "startsAt": "2021-10-12T09:56:03.157076+02:00",
      "endsAt": %[2]q,
      "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
      "fingerprint": "bc97ff14869b13e3",
      "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%%3DT1%%2Cteam%%3Dblue%%2Czone%%3Deu-1",
      "dashboardURL": "",
      "panelURL": "",
      "values": {"B": 44.23943737541908, "C": 1}
    }
  ],
  "groupLabels": {},
  "commonLabels": {"team": "blue"},
  "commonAnnotations": {},
  "externalURL": "https://play.grafana.org/",
  "version": "1",
  "groupKey": "{}:{}",
  "truncatedAlerts": 0,
  "title": "[FIRING:2]  (blue)",
  "state": "alerting",
  "message": "**Firing**\n\nValue: B=%[3]g, C=1"
}`, status, endsAt, value, imageN)
}

// TestGrafanaWebhook: Grafana's payload on the same route, with Bearer
// auth: open, a resend whose values and screenshot changed (nothing
// appended), resolve with ended_at = endsAt.
func TestGrafanaWebhook(t *testing.T) {
	it := startIntegrations(t, "grafana")
	auth := "Bearer " + it.token

	a, _ := it.alertmanager(auth, grafanaPayload("firing", "0001-01-01T00:00:00Z", 44.2, 1), 200)
	if a.Opened != 2 {
		t.Fatalf("first: %+v", a)
	}
	mem := a.Events[0].EventID
	e := it.event(mem)
	attrs := e["attrs"].(map[string]any)
	if e["title"] != "High memory usage" || e["message"] != "This alert was triggered for zone us-1" || e["severity"] != "normal" ||
		e["started_at"] != amMillis(t, "2021-10-12T09:51:03.157076+02:00") || attrs["orgId"] != float64(1) ||
		attrs["values"].(map[string]any)["B"] != 44.2 || attrs["silenceURL"] == nil {
		t.Fatalf("event %v", e)
	}
	if imgs, _ := e["images"].([]any); len(imgs) != 1 || imgs[0] != "https://grafana.example.com/render/1.png" {
		t.Fatalf("images %v", e["images"])
	}
	h := len(it.history())

	a, _ = it.alertmanager(auth, grafanaPayload("firing", "0001-01-01T00:00:00Z", 51.7, 2), 200)
	if a.Unchanged != 2 {
		t.Fatalf("resend: %+v", a)
	}
	if n := len(it.history()); n != h {
		t.Fatalf("history %d after a resend with new values, want %d", n, h)
	}

	end := "2021-10-12T10:20:00+02:00"
	a, _ = it.alertmanager(auth, grafanaPayload("resolved", end, 12, 3), 200)
	if a.Resolved != 2 {
		t.Fatalf("resolved: %+v", a)
	}
	if e := it.event(mem); e["state"] != "CLOSED" || e["status"] != "resolved" || e["ended_at"] != amMillis(t, end) {
		t.Fatalf("closed %v", e)
	}
}

// TestAlertmanagerHundredAlerts: one notification of 100 alerts opens 100
// Events; its resend appends nothing.
func TestAlertmanagerHundredAlerts(t *testing.T) {
	it := startIntegrations(t, "hundred")
	auth := "Api-Token " + it.token
	var alerts []string
	for i := range 100 {
		alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"InstanceDown","instance":"host-%03d:9100","severity":"critical"},`+
			`"annotations":{"summary":"host-%03d is down"},"startsAt":"2025-10-09T08:00:00Z","endsAt":"2025-10-09T08:05:00Z",`+
			`"generatorURL":"http://prometheus:9090/graph"}`, i, i)) // no fingerprint: derived from the labels
	}
	body := `{"receiver":"pushgo","status":"firing","version":"4","alerts":[` + strings.Join(alerts, ",") + `]}`

	start := time.Now()
	a, _ := it.alertmanager(auth, body, 200)
	first := time.Since(start)
	if a.Alerts != 100 || a.Opened != 100 {
		t.Fatalf("first: %d alerts, %d opened", a.Alerts, a.Opened)
	}
	seen := map[string]bool{}
	for _, ev := range a.Events {
		if ev.EventID == "" || seen[ev.EventID] || len(ev.Fingerprint) != 16 {
			t.Fatalf("event %+v", ev)
		}
		seen[ev.EventID] = true
	}
	if n := len(it.events("ONGOING")); n != 100 {
		t.Fatalf("%d open events", n)
	}
	h := len(it.history())

	start = time.Now()
	a, _ = it.alertmanager(auth, strings.ReplaceAll(body, "08:05:00Z", "08:10:00Z"), 200)
	resend := time.Since(start)
	if a.Unchanged != 100 {
		t.Fatalf("resend: %d unchanged", a.Unchanged)
	}
	if n := len(it.history()); n != h {
		t.Fatalf("history %d after the resend, want %d", n, h)
	}
	t.Logf("100 alerts: first notification %v, resend %v", first, resend)
}

// TestAlertmanagerRejections: each rejection is answered in the PushGo
// envelope and appends nothing.
func TestAlertmanagerRejections(t *testing.T) {
	it := startIntegrations(t, "rejections")
	auth := "Api-Token " + it.token
	readOnly := it.newToken("events.read")
	valid := amPayload("firing", "2025-10-09T08:10:00Z", "CPU above 90% on web-1")
	for _, c := range []struct {
		name, auth, body string
		status           int
		code             string
	}{
		{"bad JSON", auth, `{"alerts":[`, 400, "invalid_json_syntax"},
		{"missing alerts", auth, `{"receiver":"pushgo","status":"firing","version":"4"}`, 400, "invalid_json_data"},
		{"one bad alert refuses all", auth, strings.Replace(valid, `"startsAt": "2025-10-09T08:01:00Z"`, `"startsAt": "soon"`, 1), 400, "invalid_timestamp"},
		{"no token", "", valid, 401, "invalid_api_token"},
		{"wrong token", "Api-Token " + it.token[:len(it.token)-4] + "0000", valid, 401, "invalid_api_token"},
		{"token without scope", "Api-Token " + readOnly, valid, 403, "scope_missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, m := it.alertmanager(c.auth, c.body, c.status)
			if m["error_code"] != c.code {
				t.Fatalf("error_code %v, want %s", m["error_code"], c.code)
			}
		})
	}
	if n := len(it.history()); n != 0 {
		t.Fatalf("rejections appended %d operations", n)
	}
	// Without a Content-Type, as curl --data sends it, the body is still
	// read as JSON.
	s, _, b := it.send("POST", "/integrations/alertmanager", map[string]string{"Authorization": auth}, valid)
	if s != 200 {
		t.Fatalf("no Content-Type: %d %s", s, b)
	}
}

// amOccurrence is a notification of one alert (fingerprint 0f0f...) of
// status, begun at startsAt.
func amOccurrence(status, startsAt, endsAt string) string {
	return `{"receiver":"pushgo","status":"` + status + `","version":"4","groupKey":"{}:{alertname=\"NodeDown\"}","alerts":[` +
		`{"status":"` + status + `","labels":{"alertname":"NodeDown","instance":"db-2:9100","severity":"critical"},` +
		`"annotations":{"summary":"db-2 is down"},"startsAt":"` + startsAt + `","endsAt":"` + endsAt + `",` +
		`"fingerprint":"0f0f0f0f0f0f0f0f"}]}`
}

// TestAlertmanagerRefiringWithoutResolve: an alert that fires again (a
// later startsAt) with no resolve received for its previous occurrence,
// as with send_resolved: false, Grafana's "Disable resolved message", or a
// resolve cut by max_alerts, opens a new Event and closes the old one at
// the new start. Until 4 December the open Event took it as an unchanged
// resend, and the new incident alerted nobody. A late resolve of the old
// occurrence leaves the new Event open.
func TestAlertmanagerRefiringWithoutResolve(t *testing.T) {
	it := startIntegrations(t, "refire")
	auth := "Api-Token " + it.token
	const first, second = "2026-11-01T08:00:00Z", "2026-11-02T09:30:00Z"
	a, _ := it.alertmanager(auth, amOccurrence("firing", first, "2026-11-01T08:05:00Z"), 200)
	if a.Opened != 1 {
		t.Fatalf("first occurrence: %+v", a)
	}
	old := a.Events[0].EventID
	if a, _ = it.alertmanager(auth, amOccurrence("firing", first, "2026-11-01T08:10:00Z"), 200); a.Unchanged != 1 {
		t.Fatalf("its resend: %+v", a)
	}
	a, _ = it.alertmanager(auth, amOccurrence("firing", second, "2026-11-02T09:35:00Z"), 200)
	if a.Opened != 1 || a.Events[0].EventID == old {
		t.Fatalf("the next occurrence: %+v", a)
	}
	current := a.Events[0].EventID
	if e := it.event(old); e["state"] != "CLOSED" || e["status"] != "resolved" || e["ended_at"] != amMillis(t, second) {
		t.Fatalf("the first occurrence's event: %v", e)
	}
	if e := it.event(current); e["state"] != "ONGOING" || e["started_at"] != amMillis(t, second) {
		t.Fatalf("the next occurrence's event: %v", e)
	}
	if a, _ = it.alertmanager(auth, amOccurrence("resolved", first, "2026-11-01T08:20:00Z"), 200); a.Absent != 1 {
		t.Fatalf("a late resolve of the first occurrence: %+v", a)
	}
	if e := it.event(current); e["state"] != "ONGOING" {
		t.Fatalf("after the late resolve: %v", e)
	}
	if a, _ = it.alertmanager(auth, amOccurrence("resolved", second, "2026-11-02T10:00:00Z"), 200); a.Resolved != 1 || a.Events[0].EventID != current {
		t.Fatalf("the next occurrence's resolve: %+v", a)
	}
}

// amReshaped is amPayload("firing", …) with only its second alert, from
// sender externalURL; truncated is its truncatedAlerts, or nil for a
// payload without the member (a hand-made one).
func amReshaped(t *testing.T, externalURL string, truncated *int) string {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal([]byte(amPayload("firing", "2025-10-09T08:15:00Z", "CPU above 90% on web-1")), &p); err != nil {
		t.Fatal(err)
	}
	p["alerts"] = p["alerts"].([]any)[1:]
	p["externalURL"] = externalURL
	delete(p, "truncatedAlerts")
	if truncated != nil {
		p["truncatedAlerts"] = *truncated
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAlertmanagerAlertLeftOutOfItsGroup: a group's notification that no
// longer names one of its alerts closes that alert's Event (its resolve
// was cut by max_alerts, or never sent), and lists it as gone, but only
// a notification that says it is whole: a hand-made payload without
// truncatedAlerts, one that says alerts were cut, or another
// Alertmanager's notification of a group with the same key (another
// externalURL) closes nothing. Until 4 December nothing closed it.
func TestAlertmanagerAlertLeftOutOfItsGroup(t *testing.T) {
	it := startIntegrations(t, "alertmanager-groups", func(c *Config) { c.AlertmanagerAbsentAfter = 0 })
	auth := "Api-Token " + it.token
	a, _ := it.alertmanager(auth, amPayload("firing", "2025-10-09T08:10:00Z", "CPU above 90% on web-1"), 200)
	if a.Opened != 2 {
		t.Fatalf("first: %+v", a)
	}
	cpu := a.Events[0].EventID
	if _, ok := it.event(cpu)["deadline"]; ok {
		t.Fatalf("without PUSHGO_ALERTMANAGER_EXPIRE_AFTER, the alert's event has a deadline: %v", it.event(cpu))
	}
	zero, one := 0, 1
	for _, p := range []struct{ what, body string }{
		{"a payload without truncatedAlerts", amReshaped(t, "http://alertmanager:9093", nil)},
		{"a truncated notification", amReshaped(t, "http://alertmanager:9093", &one)},
		{"another Alertmanager's notification", amReshaped(t, "http://alertmanager-staging:9093", &zero)},
	} {
		if a, _ := it.alertmanager(auth, p.body, 200); a.Gone != 0 || len(a.Events) != 1 {
			t.Fatalf("%s: %+v", p.what, a)
		}
		if e := it.event(cpu); e["state"] != "ONGOING" {
			t.Fatalf("after %s, the cpu alert's event: %v", p.what, e)
		}
	}
	a, _ = it.alertmanager(auth, amReshaped(t, "http://alertmanager:9093", &zero), 200)
	if a.Alerts != 1 || a.Opened != 0 || a.Gone != 1 || len(a.Events) != 2 ||
		a.Events[1] != (struct {
			Fingerprint string `json:"fingerprint"`
			EventID     string `json:"event_id"`
			Outcome     string `json:"outcome"`
		}{"1a2b3c4d5e6f7a8b", cpu, "gone"}) {
		t.Fatalf("the complete notification without the cpu alert: %+v", a)
	}
	if e := it.event(cpu); e["state"] != "CLOSED" || e["status"] != "resolved" || e["severity"] != "critical" ||
		!strings.HasPrefix(e["message"].(string), "Resolved: no longer in its group") {
		t.Fatalf("the cpu alert's event: %v", e)
	}
	if a, _ = it.alertmanager(auth, amReshaped(t, "http://alertmanager:9093", &zero), 200); a.Gone != 0 {
		t.Fatalf("its resend: %+v", a)
	}
	// An operator sees the gateway's own closes, and the cut notification
	// whose left-out alerts waited, without reading the log.
	m := string(it.api.Get(t, "/metrics", nil).Body)
	for _, want := range []string{
		`pushgo_alertmanager_alerts_total{outcome="gone"} 1`,
		`pushgo_alertmanager_alerts_total{outcome="opened"} 2`,
		`pushgo_alertmanager_alerts_total{outcome="absent"} 0`,
		`pushgo_alertmanager_truncated_notifications_total 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Fatalf("/metrics has no %q:\n%s", want, grepLines(m, "pushgo_alertmanager"))
		}
	}
}

// TestAlertmanagerExpireAfter: with PUSHGO_ALERTMANAGER_EXPIRE_AFTER set,
// a firing alert's Event has a deadline that each notification naming it
// moves on (the repeat is appended, as a background refresh), and an alert
// no notification names again in time (its resolve never sent: a receiver
// without send_resolved, a group no longer notified) is closed timed_out.
// An alert that fires again then opens a new Event. Without the setting
// (every other test) an alert's Event has no deadline.
func TestAlertmanagerExpireAfter(t *testing.T) {
	// Long enough that the repeat below lands well before the deadline
	// even on a loaded machine; the close is awaited, not slept for.
	const expire = 6 * time.Second
	it := startIntegrations(t, "alertmanager-expire", func(c *Config) { c.AlertmanagerExpireAfter = expire })
	auth := "Api-Token " + it.token
	sent := time.Now().Truncate(time.Millisecond) // the deadline is in milliseconds
	a, _ := it.alertmanager(auth, amPayload("firing", "0001-01-01T00:00:00Z", "CPU above 90% on web-1"), 200)
	if a.Opened != 2 {
		t.Fatalf("first: %+v", a)
	}
	cpu := a.Events[0].EventID
	e := it.event(cpu)
	deadline, ok := e["deadline"].(float64)
	if !ok || e["state"] != "ONGOING" {
		t.Fatalf("the firing alert's event: %v", e)
	}
	if d := time.UnixMilli(int64(deadline)).Sub(sent); d < expire || d > expire+5*time.Second {
		t.Fatalf("deadline %v after the notification, want about %v", d, expire)
	}

	// The same notification again (Alertmanager's repeat): one background
	// refresh per alert, answered as updated, and a later deadline.
	time.Sleep(5 * time.Millisecond) // a later millisecond for the deadline
	before := len(it.history())
	if a, _ = it.alertmanager(auth, amPayload("firing", "0001-01-01T00:00:00Z", "CPU above 90% on web-1"), 200); a.Updated != 2 || a.Unchanged != 0 {
		t.Fatalf("the repeat: %+v", a)
	}
	h := it.history()
	if len(h) != before+2 {
		t.Fatalf("history %d after the repeat, want %d (one refresh per alert)", len(h), before+2)
	}
	for _, item := range h[before:] {
		if p, _ := item["payload"].(map[string]any); item["op"] != "event.update" || p["refresh"] != true {
			t.Fatalf("the repeat appended %v, want a background refresh", item)
		}
	}
	if e := it.event(cpu); e["state"] != "ONGOING" || e["deadline"] == nil || e["deadline"].(float64) <= deadline {
		t.Fatalf("after the repeat (deadline was %v): %v", deadline, e)
	}

	// Named by no notification since: closed timed_out at its deadline.
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(200 * time.Millisecond) {
		if e = it.event(cpu); e["state"] == "CLOSED" {
			break
		}
	}
	if e["state"] != "CLOSED" || e["status"] != "timed_out" {
		t.Fatalf("after the deadline: %v", e)
	}
	// Firing again, it opens a new Event.
	a, _ = it.alertmanager(auth, amPayload("firing", "0001-01-01T00:00:00Z", "CPU above 90% on web-1"), 200)
	if a.Opened != 2 || a.Events[0].EventID == cpu {
		t.Fatalf("after the expiry: %+v", a)
	}
}

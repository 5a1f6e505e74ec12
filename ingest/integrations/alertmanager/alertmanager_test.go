package alertmanager

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

const now = int64(1_760_000_000_000)

// sampleAM is a realistic Alertmanager v4 notification: two firing
// alerts of one group.
const sampleAM = `{
  "receiver": "pushgo",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "job": "node", "severity": "critical"},
      "annotations": {"summary": "CPU above 90% on web-1", "description": "CPU has been above 90% for 5 minutes", "runbook_url": "https://runbooks.example.com/cpu"},
      "startsAt": "2025-10-09T08:00:00.123456789Z",
      "endsAt": "2025-10-09T08:09:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
      "fingerprint": "1a2b3c4d5e6f7a8b"
    },
    {
      "status": "firing",
      "labels": {"alertname": "HighCPU", "instance": "web-2:9100", "job": "node", "severity": "warning"},
      "annotations": {"description": "CPU has been above 80% for 5 minutes"},
      "startsAt": "2025-10-09T08:01:00Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
      "fingerprint": "2b3c4d5e6f7a8b9c"
    }
  ],
  "groupLabels": {"alertname": "HighCPU"},
  "commonLabels": {"alertname": "HighCPU", "job": "node"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"HighCPU\"}",
  "truncatedAlerts": 0
}`

// sampleGrafana is Grafana's documented webhook example (trimmed).
const sampleGrafana = `{
  "receiver": "My Super Webhook",
  "status": "firing",
  "orgId": 1,
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
      "annotations": {"description": "The system has high memory usage", "runbook_url": "https://myrunbook.com/runbook/1234", "summary": "This alert was triggered for zone us-1"},
      "startsAt": "2021-10-12T09:51:03.157076+02:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
      "fingerprint": "c6eadffa33fcdf37",
      "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
      "dashboardURL": "",
      "panelURL": "",
      "imageURL": "https://grafana.example.com/render/1.png",
      "values": {"B": 44.23943737541908, "C": 1, "D": null},
      "valueString": "[ var='B' labels={} value=44.2 ]"
    }
  ],
  "groupLabels": {},
  "commonLabels": {"team": "blue"},
  "commonAnnotations": {},
  "externalURL": "https://play.grafana.org/",
  "version": "1",
  "groupKey": "{}:{}",
  "truncatedAlerts": 0,
  "title": "[FIRING:1]  (blue)",
  "state": "alerting",
  "message": "**Firing**\n\nValue: B=44.2"
}`

func mustParse(t *testing.T, body string) []Report {
	t.Helper()
	_, reps, err := Parse([]byte(body), now)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return reps
}

func attrsOf(t *testing.T, r Report) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Event.Attrs, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAlertmanagerSample(t *testing.T) {
	reps := mustParse(t, sampleAM)
	if len(reps) != 2 {
		t.Fatalf("%d reports", len(reps))
	}
	a, b := reps[0], reps[1]
	if a.Fingerprint != "1a2b3c4d5e6f7a8b" || a.Resolved || b.Fingerprint != "2b3c4d5e6f7a8b9c" {
		t.Fatalf("reports %+v %+v", a, b)
	}
	e := a.Event
	if *e.Title != "HighCPU" || *e.Status != "firing" || *e.Message != "CPU above 90% on web-1" || *e.Severity != "critical" {
		t.Fatalf("event %q %q %q %q", *e.Title, *e.Status, *e.Message, *e.Severity)
	}
	starts := int64(1759996800123) // 2025-10-09T08:00:00.123Z
	if int64(*e.EventTime) != starts || int64(*e.StartedAt) != starts || e.EndedAt != nil {
		t.Fatalf("times %v %v %v", *e.EventTime, *e.StartedAt, e.EndedAt)
	}
	want := map[string]any{
		"labels":       map[string]any{"alertname": "HighCPU", "instance": "web-1:9100", "job": "node", "severity": "critical"},
		"annotations":  map[string]any{"summary": "CPU above 90% on web-1", "description": "CPU has been above 90% for 5 minutes", "runbook_url": "https://runbooks.example.com/cpu"},
		"generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
		"externalURL":  "http://alertmanager:9093",
		"receiver":     "pushgo",
	}
	if got := attrsOf(t, a); !reflect.DeepEqual(got, want) {
		t.Fatalf("attrs\n got %v\nwant %v", got, want)
	}
	// The second alert: message from description, severity warning → normal.
	if *b.Event.Message != "CPU has been above 80% for 5 minutes" || *b.Event.Severity != "normal" {
		t.Fatalf("second %q %q", *b.Event.Message, *b.Event.Severity)
	}
}

func TestGrafanaSample(t *testing.T) {
	reps := mustParse(t, sampleGrafana)
	r := reps[0]
	e := r.Event
	if r.Fingerprint != "c6eadffa33fcdf37" || *e.Title != "High memory usage" || *e.Message != "This alert was triggered for zone us-1" || *e.Severity != "normal" {
		t.Fatalf("report %+v", r)
	}
	if int64(*e.EventTime) != 1634025063157 {
		t.Fatalf("event_time %d", *e.EventTime)
	}
	if !reflect.DeepEqual(e.Images, []string{"https://grafana.example.com/render/1.png"}) {
		t.Fatalf("images %v", e.Images)
	}
	got := attrsOf(t, r)
	if got["orgId"] != float64(1) || got["silenceURL"] == nil || got["dashboardURL"] != nil || got["valueString"] != "[ var='B' labels={} value=44.2 ]" {
		t.Fatalf("attrs %v", got)
	}
	// A null value is left out: in a merge patch it would delete.
	if vals := got["values"].(map[string]any); !reflect.DeepEqual(vals, map[string]any{"B": 44.23943737541908, "C": float64(1)}) {
		t.Fatalf("values %v", vals)
	}
}

// TestContentIgnoresResendNoise: what changes on every resend of a steady
// alert (endsAt, startsAt precision of a re-evaluation, Grafana's values,
// valueString and screenshot URL) and who sent it (generatorURL,
// externalURL, receiver) do not change Content; what the alert says does.
func TestContentIgnoresResendNoise(t *testing.T) {
	base := mustParse(t, sampleGrafana)[0].Content
	for name, edit := range map[string][2]string{
		"endsAt":      {`"endsAt": "0001-01-01T00:00:00Z"`, `"endsAt": "2021-10-12T10:30:00Z"`},
		"startsAt":    {`"startsAt": "2021-10-12T09:51:03.157076+02:00"`, `"startsAt": "2021-10-12T09:52:03Z"`},
		"values":      {`"B": 44.23943737541908`, `"B": 51.5`},
		"valueString": {`value=44.2 ]`, `value=51.5 ]`},
		"imageURL":    {`render/1.png`, `render/2.png`},
		// Grafana 12 ends them with to=<now> at every resend.
		"dashboardURL": {`"dashboardURL": ""`, `"dashboardURL": "https://play.grafana.org/d/abc?from=1740070380000&orgId=1&to=1740074106395"`},
		"panelURL":     {`"panelURL": ""`, `"panelURL": "https://play.grafana.org/d/abc?from=1740070380000&orgId=1&to=1740074106395&viewPanel=2"`},
		"group title":  {`"title": "[FIRING:1]  (blue)"`, `"title": "[FIRING:2]  (blue)"`},
		// Who sent it: the other Prometheus of a high-availability pair
		// (Alertmanager keeps the latest sender's generatorURL), the other
		// Alertmanager of a pair, another receiver of one route.
		"generatorURL": {`"generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit"`, `"generatorURL": "https://play-2.grafana.org/alerting/1afz29v7z/edit"`},
		"externalURL":  {`"externalURL": "https://play.grafana.org/"`, `"externalURL": "https://play-2.grafana.org/"`},
		"receiver":     {`"receiver": "My Super Webhook"`, `"receiver": "Another Webhook"`},
	} {
		body := strings.Replace(sampleGrafana, edit[0], edit[1], 1)
		if body == sampleGrafana {
			t.Fatalf("%s: edit did not apply", name)
		}
		if got := mustParse(t, body)[0].Content; !reflect.DeepEqual(got, base) {
			t.Errorf("%s changed Content", name)
		}
	}
	for name, edit := range map[string][2]string{
		"summary":    {`triggered for zone us-1"`, `triggered for zone us-2"`},
		"severity":   {`"zone": "us-1"}`, `"zone": "us-1", "severity": "critical"}`},
		"annotation": {`"runbook_url": "https://myrunbook.com/runbook/1234"`, `"runbook_url": "https://myrunbook.com/runbook/9"`},
		"silenceURL": {`matchers=alertname`, `matchers=x`},
	} {
		body := strings.Replace(sampleGrafana, edit[0], edit[1], 1)
		if body == sampleGrafana {
			t.Fatalf("%s: edit did not apply", name)
		}
		if got := mustParse(t, body)[0].Content; reflect.DeepEqual(got, base) {
			t.Errorf("%s did not change Content", name)
		}
	}
}

func TestResolved(t *testing.T) {
	body := strings.Replace(sampleAM, `"status": "firing",
      "labels": {"alertname": "HighCPU", "instance": "web-1:9100"`, `"status": "resolved",
      "labels": {"alertname": "HighCPU", "instance": "web-1:9100"`, 1)
	// web-2's endsAt is the zero time: resolved without an end, it ends now.
	body = strings.Replace(body, `"status": "firing",
      "labels": {"alertname": "HighCPU", "instance": "web-2:9100"`, `"status": "resolved",
      "labels": {"alertname": "HighCPU", "instance": "web-2:9100"`, 1)
	reps := mustParse(t, body)
	a, b := reps[0], reps[1]
	if !a.Resolved || a.Content != nil || *a.Event.Status != "resolved" || a.Event.StartedAt != nil {
		t.Fatalf("resolved %+v", a)
	}
	ends := int64(1759997340000) // 2025-10-09T08:09:00Z
	if int64(*a.Event.EventTime) != ends || int64(*a.Event.EndedAt) != ends {
		t.Fatalf("times %d %d", *a.Event.EventTime, *a.Event.EndedAt)
	}
	if !b.Resolved || int64(*b.Event.EventTime) != now || int64(*b.Event.EndedAt) != now {
		t.Fatalf("no endsAt: %d", *b.Event.EventTime)
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[string]string{
		"critical": "critical", "CRITICAL": "critical", " critical ": "critical",
		"error": "high", "high": "high", "major": "high",
		"warning": "normal", "": "normal", "page": "normal", "disaster": "normal",
		"info": "low", "low": "low", "none": "low",
	} {
		if got := Severity(in); got != want {
			t.Errorf("Severity(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFingerprint checks the derivation against Prometheus' own test
// vectors (prometheus/common model.labelSetToFingerprint).
func TestFingerprint(t *testing.T) {
	if got := Fingerprint(map[string]string{}); got != fmt.Sprintf("%016x", uint64(14695981039346656037)) {
		t.Fatalf("empty: %s", got)
	}
	got := Fingerprint(map[string]string{"name": "garland, briggs", "fear": "love is not enough"})
	if want := fmt.Sprintf("%016x", uint64(5799056148416392346)); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	body := strings.Replace(sampleAM, `"fingerprint": "1a2b3c4d5e6f7a8b"`, `"fingerprint": ""`, 1)
	r := mustParse(t, body)[0]
	if want := Fingerprint(map[string]string{"alertname": "HighCPU", "instance": "web-1:9100", "job": "node", "severity": "critical"}); r.Fingerprint != want {
		t.Fatalf("derived %q, want %q", r.Fingerprint, want)
	}
}

func TestTitleAndMessage(t *testing.T) {
	alert := func(labels, annotations string) string {
		return `{"title":"[FIRING:3] group","alerts":[{"status":"firing","labels":` + labels + `,"annotations":` + annotations +
			`,"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f1"}]}`
	}
	long := strings.Repeat("é", 600)
	cases := []struct {
		name, body, title, message string
	}{
		{"alertname and summary", alert(`{"alertname":"A"}`, `{"summary":"S","description":"D"}`), "A", "S"},
		{"description", alert(`{"alertname":"A"}`, `{"description":"D"}`), "A", "D"},
		{"blank summary skipped", alert(`{"alertname":"A"}`, `{"summary":"  ","description":"D"}`), "A", "D"},
		{"alertname as message", alert(`{"alertname":"A"}`, `{}`), "A", "A"},
		{"grafana title", alert(`{"team":"x"}`, `{}`), "[FIRING:3] group", "[FIRING:3] group"},
		{"cut", alert(`{"alertname":"`+long+`"}`, `{"summary":"`+long+`"}`), strings.Repeat("é", 256), strings.Repeat("é", 512)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mustParse(t, c.body)[0].Event
			if *e.Title != c.title || *e.Message != c.message {
				t.Fatalf("title %q message %q", *e.Title, *e.Message)
			}
		})
	}
	// No alertname, no Grafana title: the fingerprint names it.
	e := mustParse(t, `{"alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f1"}]}`)[0].Event
	if *e.Title != "Alert f1" {
		t.Fatalf("title %q", *e.Title)
	}
}

// TestAttrsLimits: labels and annotations are bounded deterministically.
func TestAttrsLimits(t *testing.T) {
	labels := map[string]string{"alertname": "A", strings.Repeat("k", MaxAttrKey+1): "skipped", "": "skipped", "big": strings.Repeat("v", MaxAttrValue+10)}
	for i := range MaxAttrEntries + 5 {
		labels[fmt.Sprintf("l%03d", i)] = "x"
	}
	b, _ := json.Marshal(map[string]any{"alerts": []any{map[string]any{
		"status": "firing", "labels": labels, "startsAt": "2025-01-01T00:00:00Z", "fingerprint": "f",
	}}})
	r := mustParse(t, string(b))[0]
	got := attrsOf(t, r)["labels"].(map[string]any)
	if len(got) != MaxAttrEntries {
		t.Fatalf("%d labels kept", len(got))
	}
	// Sorted: alertname, big, l000..l097 are the first 100.
	if got["alertname"] != "A" || len(got["big"].(string)) != MaxAttrValue || got["l097"] != "x" || got["l098"] != nil {
		t.Fatalf("labels kept: %v", got)
	}
	if _, ok := got[strings.Repeat("k", MaxAttrKey+1)]; ok {
		t.Fatal("long name kept")
	}
	// The severity still comes from the full label set, and Content is
	// stable over map order.
	for range 5 {
		if again := mustParse(t, string(b))[0]; !reflect.DeepEqual(again.Content, r.Content) {
			t.Fatal("Content not deterministic")
		}
	}
}

func TestImageURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://g/r.png":                        "https://g/r.png",
		" http://g/r.png ":                       "http://g/r.png",
		"ftp://g/r.png":                          "",
		"/render/r.png":                          "",
		"":                                       "",
		"https://g/" + strings.Repeat("a", 2048): "",
	} {
		if got := imageURL(in); got != want {
			t.Errorf("imageURL(%.40q) = %q, want %q", in, got, want)
		}
	}
}

// TestRejections: every rule, and that Decode is lenient only about
// unknown members.
func TestRejections(t *testing.T) {
	ok := `{"status":"firing","labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f"}`
	one := func(alert string) string { return `{"alerts":[` + alert + `]}` }
	edit := func(old, new string) string { return one(strings.Replace(ok, old, new, 1)) }
	cases := []struct {
		name  string
		body  string
		code  apierr.Code
		field string
	}{
		{"empty body", "  ", apierr.InvalidRequestBody, ""},
		{"malformed", `{"alerts":[`, apierr.InvalidJSONSyntax, ""},
		{"trailing data", one(ok) + `{}`, apierr.InvalidJSONSyntax, ""},
		// Text that is not Unicode is invalid_json_data naming the member,
		// as on every JSON route (it was invalid_json_syntax "malformed JSON
		// at byte N" until 6 December); malformed JSON stays syntax.
		{"invalid utf-8", "{\"receiver\":\"\xff\",\"alerts\":[" + ok + "]}", apierr.InvalidJSONData, "receiver"},
		{"lone surrogate in a label", edit(`{"alertname":"A"}`, `{"alertname":"A\ud800"}`), apierr.InvalidJSONData, "alerts.0.labels.alertname"},
		{"lone surrogate in a label name", edit(`{"alertname":"A"}`, `{"alertname":"A","\udc00":"x"}`), apierr.InvalidJSONData, "alerts.0.labels"},
		{"invalid utf-8, unterminated", "{\"receiver\":\"\xff", apierr.InvalidJSONSyntax, ""},
		{"not an object", `[1]`, apierr.InvalidJSONData, "body"},
		{"duplicate member", `{"receiver":"a","receiver":"b","alerts":[` + ok + `]}`, apierr.InvalidJSONData, "receiver"},
		{"duplicate label", edit(`{"alertname":"A"}`, `{"alertname":"A","alertname":"B"}`), apierr.InvalidJSONData, "alerts.0.labels.alertname"},
		{"alerts not a list", `{"alerts":{}}`, apierr.InvalidJSONData, "alerts"},
		{"label not a string", edit(`"A"`, `7`), apierr.InvalidJSONData, "alerts.0.labels.alertname"},
		{"orgId a string", `{"orgId":"1","alerts":[` + ok + `]}`, apierr.InvalidJSONData, "orgId"},
		{"truncatedAlerts negative", `{"truncatedAlerts":-1,"alerts":[` + ok + `]}`, apierr.InvalidJSONData, "truncatedAlerts"},
		{"value a string", edit(`"fingerprint":"f"`, `"fingerprint":"f","values":{"A":"1"}`), apierr.InvalidJSONData, "alerts.0.values.A"},
		{"alerts missing", `{"receiver":"r"}`, apierr.InvalidJSONData, "alerts"},
		{"alerts null", `{"alerts":null}`, apierr.InvalidJSONData, "alerts"},
		{"alerts empty", `{"alerts":[]}`, apierr.InvalidJSONData, "alerts"},
		{"case variant is not alerts", `{"Alerts":[` + ok + `]}`, apierr.InvalidJSONData, "alerts"},
		{"status missing", edit(`"status":"firing",`, ``), apierr.InvalidJSONData, "alerts.0.status"},
		{"status unknown", edit(`"firing"`, `"pending"`), apierr.InvalidJSONData, "alerts.0.status"},
		{"no fingerprint, no labels", one(`{"status":"firing","startsAt":"2025-01-01T00:00:00Z"}`), apierr.InvalidJSONData, "alerts.0.fingerprint"},
		{"fingerprint too long", edit(`"fingerprint":"f"`, `"fingerprint":"`+strings.Repeat("f", MaxFingerprint+1)+`"`), apierr.InvalidJSONData, "alerts.0.fingerprint"},
		{"startsAt missing", edit(`"startsAt":"2025-01-01T00:00:00Z",`, ``), apierr.InvalidTimestamp, "alerts.0.startsAt"},
		{"startsAt not RFC 3339", edit(`2025-01-01T00:00:00Z`, `2025-01-01 00:00:00`), apierr.InvalidTimestamp, "alerts.0.startsAt"},
		{"startsAt epoch ms", edit(`"2025-01-01T00:00:00Z"`, `1735689600000`), apierr.InvalidJSONData, "alerts.0.startsAt"},
		{"startsAt before 1970", edit(`2025-01-01T00:00:00Z`, `0001-01-01T00:00:00Z`), apierr.InvalidTimestamp, "alerts.0.startsAt"},
		{"endsAt not RFC 3339", edit(`"fingerprint":"f"`, `"fingerprint":"f","endsAt":"soon"`), apierr.InvalidTimestamp, "alerts.0.endsAt"},
		{"second alert bad", `{"alerts":[` + ok + `,` + strings.Replace(ok, `"firing"`, `"bogus"`, 1) + `]}`, apierr.InvalidJSONData, "alerts.1.status"},
		// Large payloads are translated in parts on every core: the first
		// bad alert in payload order is still the one named.
		{"alerts 70 and 90 of 100 bad", manyAlerts(100, 70, 90), apierr.InvalidJSONData, "alerts.70.status"},
		{"alerts 10 and 90 of 100 bad", manyAlerts(100, 10, 90), apierr.InvalidJSONData, "alerts.10.status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, reps, err := Parse([]byte(c.body), now)
			if err == nil {
				t.Fatalf("accepted: %+v", reps)
			}
			if err.Code != c.code || (c.field != "" && !strings.HasPrefix(err.Detail, c.field+":")) {
				t.Fatalf("got %s %q, want %s at %s", err.Code, err.Detail, c.code, c.field)
			}
			if reps != nil {
				t.Fatal("reports returned with an error")
			}
		})
	}

	// Lenient: unknown members anywhere are accepted.
	body := `{"future":{"x":[1]},"version":"5","alerts":[` + strings.Replace(ok, `"fingerprint"`, `"newField":true,"fingerprint"`, 1) + `]}`
	if _, _, err := Parse([]byte(body), now); err != nil {
		t.Fatalf("unknown members: %v", err)
	}
}

// TestReportsValidate: every report is an operation the tracker's
// validation accepts, as create (firing) or close (resolved) and, for
// firing, as update (without started_at).
func TestReportsValidate(t *testing.T) {
	bodies := []string{sampleAM, sampleGrafana, strings.ReplaceAll(sampleAM, `"status": "firing"`, `"status": "resolved"`)}
	for _, body := range bodies {
		for _, r := range mustParse(t, body) {
			ch := "0123456789ABCDEFGHJKMNPQRS"
			e := r.Event
			e.ChannelID = &ch
			if r.Resolved {
				e.EventID = ptr("e1")
				if _, err := ops.ValidateIntegrationEvent(ops.EventClose, &e); err != nil {
					t.Fatalf("close: %v", err)
				}
				continue
			}
			if _, err := ops.ValidateIntegrationEvent(ops.EventCreate, &e); err != nil {
				t.Fatalf("create: %v", err)
			}
			e.EventID, e.StartedAt = ptr("e1"), nil
			if _, err := ops.ValidateIntegrationEvent(ops.EventUpdate, &e); err != nil {
				t.Fatalf("update: %v", err)
			}
		}
	}
}

// TestLargestAlertIsCut: the largest alert Alertmanager sends (100 labels
// and 100 annotations of 4096 characters each, every URL at its limit) is
// accepted with its labels and annotations cut to maxLabelBytes and the
// marker set, and is valid as every operation the tracker makes of it
// (create, the update a resend makes, close). Refused for its size, it
// would drop its whole group's notification: Alertmanager does not
// resend a 4xx.
func TestLargestAlertIsCut(t *testing.T) {
	labels, annotations := map[string]string{"alertname": "A"}, map[string]string{}
	for i := range MaxAttrEntries {
		labels[fmt.Sprintf("l%02d", i)] = strings.Repeat("é", MaxAttrValue)
		annotations[fmt.Sprintf("a%02d", i)] = strings.Repeat("\"", MaxAttrValue) // 2 bytes each, encoded
	}
	long := "https://example.com/" + strings.Repeat("p", 4096)
	alert := map[string]any{"status": "firing", "labels": labels, "annotations": annotations,
		"startsAt": "2025-01-01T00:00:00Z", "fingerprint": "f", "generatorURL": long, "silenceURL": long,
		"dashboardURL": long, "panelURL": long}
	b, _ := json.Marshal(map[string]any{"alerts": []any{alert}, "externalURL": long, "receiver": strings.Repeat("r", 4096)})
	r := mustParse(t, string(b))[0]
	got := attrsOf(t, r)
	if got[TruncatedAttr] != true || got["labels"].(map[string]any)["alertname"] != "A" {
		t.Fatalf("not cut, or cut in the wrong place: marker %v", got[TruncatedAttr])
	}
	if n := len(r.Event.Attrs); n > maxLabelBytes+64<<10 {
		t.Fatalf("attrs %d bytes", n)
	}
	trackerOp(t, "the largest alert", ops.EventCreate, r.Event)
	trackerOp(t, "the largest alert", ops.EventUpdate, r.Event)
	resolved := mustParse(t, strings.Replace(string(b), `"status":"firing"`, `"status":"resolved"`, 1))[0]
	if !resolved.Resolved {
		t.Fatal("not resolved")
	}
	trackerOp(t, "the largest alert, resolved", ops.EventClose, resolved.Event)

	// An alert within the budget is not marked.
	small := mustParse(t, sampleAM)[0]
	if _, ok := attrsOf(t, small)[TruncatedAttr]; ok {
		t.Fatal("a small alert marked as cut")
	}
}

// manyAlerts is a payload of n firing alerts (fingerprints f0, f1, …),
// those at the indexes bad with an unknown status.
func manyAlerts(n int, bad ...int) string {
	var b strings.Builder
	b.WriteString(`{"alerts":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		status := "firing"
		for _, j := range bad {
			if i == j {
				status = "bogus"
			}
		}
		fmt.Fprintf(&b, `{"status":%q,"labels":{"alertname":"A","i":"%d"},"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f%d"}`, status, i, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestLargePayloadKeepsItsOrder: a payload translated in parts gives its
// reports in payload order.
func TestLargePayloadKeepsItsOrder(t *testing.T) {
	_, reps, err := Parse([]byte(manyAlerts(257)), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 257 {
		t.Fatalf("%d reports, want 257", len(reps))
	}
	for i, r := range reps {
		if want := fmt.Sprintf("f%d", i); r.Fingerprint != want || r.Resolved {
			t.Fatalf("report %d: %s, want %s firing", i, r.Fingerprint, want)
		}
	}
}

package pagerduty

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/ops"
)

const now = int64(1_760_000_000_000)

func genKey() string { return "generated-key" }

// sampleTrigger is PagerDuty's documented trigger example, with links and
// images.
const sampleTrigger = `{
  "payload": {
    "summary": "DISK at 99% on machine prod-datapipe03.example.com",
    "timestamp": "2015-07-17T08:42:58.315+0000",
    "severity": "critical",
    "source": "prod-datapipe03.example.com",
    "component": "mysql",
    "group": "prod-datapipe",
    "class": "disk",
    "custom_details": {
      "free space": "1%",
      "ping time": "1500ms",
      "load avg": 0.75,
      "healthy": false,
      "missing": null,
      "nested": {"b": 2, "a": [1, 2]},
      "list": ["x", "y"]
    }
  },
  "routing_key": "pgo1.aaaaaaaaaaaaaaaaaaaaaaaa.0000000000000000000000000000000000000000000000000000000000000000",
  "dedup_key": "samplekeyhere",
  "images": [
    {"src": "https://chart.googleapis.com/chart?chs=600x400", "href": "https://example.com/", "alt": "An example link with an image"},
    {"src": "javascript:alert(1)"},
    {"src": "https://chart.googleapis.com/chart?chs=600x400"}
  ],
  "links": [
    {"href": "http://pagerduty.example.com", "text": "An example link."},
    {"href": "http://other.example.com"},
    {"href": "http://third.example.com", "text": "An example link."}
  ],
  "event_action": "trigger",
  "client": "Sample Monitoring Service",
  "client_url": "https://monitoring.example.com"
}`

func mustParse(t *testing.T, body string) Report {
	t.Helper()
	_, r, inv := Parse([]byte(body), now, genKey)
	if inv != nil {
		t.Fatalf("Parse: %v", inv)
	}
	return r
}

func TestTrigger(t *testing.T) {
	r := mustParse(t, sampleTrigger)
	e := r.Event
	if r.Action != "trigger" || r.DedupKey != "samplekeyhere" {
		t.Fatalf("report %+v", r)
	}
	summary := "DISK at 99% on machine prod-datapipe03.example.com"
	if *e.Title != summary || *e.Message != summary || *e.Status != "triggered" || *e.Severity != "critical" {
		t.Fatalf("event %q %q %q %q", *e.Title, *e.Message, *e.Status, *e.Severity)
	}
	if int64(*e.EventTime) != 1437122578315 {
		t.Fatalf("event_time %d", *e.EventTime)
	}
	if !reflect.DeepEqual(e.Images, []string{"https://chart.googleapis.com/chart?chs=600x400"}) {
		t.Fatalf("images %v", e.Images)
	}
	var attrs map[string]any
	if err := json.Unmarshal(e.Attrs, &attrs); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"dedup_key": "samplekeyhere", "source": "prod-datapipe03.example.com", "component": "mysql",
		"group": "prod-datapipe", "class": "disk", "client": "Sample Monitoring Service", "client_url": "https://monitoring.example.com",
		"custom_details": map[string]any{
			"free space": "1%", "ping time": "1500ms", "load avg": 0.75, "healthy": false,
			"nested": `{"b":2,"a":[1,2]}`, "list": `["x","y"]`,
		},
		"links": map[string]any{"An example link.": "http://pagerduty.example.com", "http://other.example.com": "http://other.example.com"},
	}
	if !reflect.DeepEqual(attrs, want) {
		t.Fatalf("attrs\n got %v\nwant %v", attrs, want)
	}
}

func TestTriggerDefaults(t *testing.T) {
	body := `{"routing_key":"k","event_action":"trigger","payload":{"summary":"` + strings.Repeat("ü", 1000) +
		`","source":"s","severity":"info"}}`
	r := mustParse(t, body)
	e := r.Event
	if r.DedupKey != "generated-key" || int64(*e.EventTime) != now || *e.Severity != "low" {
		t.Fatalf("defaults %+v", r)
	}
	if *e.Title != strings.Repeat("ü", 256) || *e.Message != strings.Repeat("ü", 512) {
		t.Fatal("summary not cut to the PushGo limits")
	}
	if e.Images != nil {
		t.Fatalf("images %v", e.Images)
	}
	// A blank dedup_key on trigger counts as none.
	if r := mustParse(t, strings.Replace(body, `"event_action"`, `"dedup_key":" ","event_action"`, 1)); r.DedupKey != "generated-key" {
		t.Fatalf("blank dedup_key kept: %q", r.DedupKey)
	}
	// A string custom_details is kept under "details".
	r = mustParse(t, strings.Replace(body, `"severity":"info"`, `"severity":"info","custom_details":"free text"`, 1))
	var attrs map[string]any
	_ = json.Unmarshal(r.Event.Attrs, &attrs)
	if !reflect.DeepEqual(attrs["custom_details"], map[string]any{"details": "free text"}) {
		t.Fatalf("custom_details %v", attrs["custom_details"])
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[string]string{"critical": "critical", "error": "high", "warning": "normal", "info": "low", "CRITICAL": "", "high": "", "": ""} {
		if got := Severity(in); got != want {
			t.Errorf("Severity(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimestamps(t *testing.T) {
	for in, want := range map[string]int64{
		"2015-07-17T08:42:58.315+0000":  1437122578315,
		"2015-07-17T08:42:58.315Z":      1437122578315,
		"2015-07-17T10:42:58+02:00":     1437122578000,
		"2015-07-17T08:42:58.315+00:00": 1437122578315,
		// A naive time (Python's isoformat(), str()): UTC.
		"2015-07-17T08:42:58.315":    1437122578315,
		"2015-07-17T08:42:58.315123": 1437122578315,
		"2015-07-17 08:42:58.315":    1437122578315,
		"2015-07-17 10:42:58+02:00":  1437122578000,
	} {
		if got, ok := parseTime(in); !ok || got != want {
			t.Errorf("parseTime(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "yesterday", "1437122578", "2015-07-17", "1969-12-31T23:59:59Z"} {
		if _, ok := parseTime(in); ok {
			t.Errorf("parseTime(%q) accepted", in)
		}
	}
}

// TestContentIgnoresTimestamp: a resent trigger or acknowledge that
// differs only by its timestamp has the same Content; any other change
// does not.
func TestContentIgnoresTimestamp(t *testing.T) {
	base := mustParse(t, sampleTrigger)
	later := mustParse(t, strings.Replace(sampleTrigger, "08:42:58.315", "09:00:00.000", 1))
	if !reflect.DeepEqual(base.Content, later.Content) {
		t.Fatal("timestamp changed Content")
	}
	for name, edit := range map[string][2]string{
		"summary":  {"DISK at 99%", "DISK at 98%"},
		"severity": {`"severity": "critical"`, `"severity": "error"`},
		"details":  {`"ping time": "1500ms"`, `"ping time": "1600ms"`},
		"image":    {`"src": "javascript:alert(1)"`, `"src": "https://other/x.png"`},
	} {
		if got := mustParse(t, strings.Replace(sampleTrigger, edit[0], edit[1], 1)); reflect.DeepEqual(got.Content, base.Content) {
			t.Errorf("%s did not change Content", name)
		}
	}
	ack := `{"routing_key":"k","event_action":"acknowledge","dedup_key":"d"}`
	a1, a2 := mustParse(t, ack), mustParse(t, strings.Replace(ack, `"dedup_key"`, `"payload":{"timestamp":"2020-01-01T00:00:00Z"},"dedup_key"`, 1))
	if !reflect.DeepEqual(a1.Content, a2.Content) || a1.Content == nil {
		t.Fatal("acknowledge Content")
	}
}

func TestAcknowledgeResolve(t *testing.T) {
	ack := mustParse(t, `{"routing_key":"k","event_action":"acknowledge","dedup_key":"d1"}`)
	e := ack.Event
	if ack.DedupKey != "d1" || *e.Status != "acknowledged" || *e.Message != "Acknowledged" || *e.Severity != "normal" || int64(*e.EventTime) != now ||
		!ack.KeepsSeverity {
		t.Fatalf("acknowledge %+v", ack)
	}
	if kept := ack.WithSeverity("critical"); *kept.Event.Severity != "critical" || *ack.Event.Severity != "normal" ||
		reflect.DeepEqual(kept.Content, ack.Content) {
		t.Fatalf("the acknowledge with the Event's severity %+v (the report's own %+v)", kept, ack)
	}
	if e.Title != nil || e.Attrs != nil {
		t.Fatal("acknowledge carries trigger fields")
	}
	// The payload's severity and timestamp are used when sent.
	ack = mustParse(t, `{"routing_key":"k","event_action":"acknowledge","dedup_key":"d1","payload":{"severity":"critical","timestamp":"2015-07-17T08:42:58.315Z"}}`)
	if *ack.Event.Severity != "critical" || int64(*ack.Event.EventTime) != 1437122578315 || ack.KeepsSeverity {
		t.Fatalf("acknowledge with payload %+v", ack.Event)
	}
	res := mustParse(t, `{"routing_key":"k","event_action":"resolve","dedup_key":"d1"}`)
	if *res.Event.Status != "resolved" || *res.Event.Message != "Resolved" || *res.Event.Severity != "normal" || res.Content != nil || !res.KeepsSeverity {
		t.Fatalf("resolve %+v", res)
	}
}

func TestImagesAndLinksBounded(t *testing.T) {
	var imgs, links []string
	for i := range 40 {
		imgs = append(imgs, fmt.Sprintf(`{"src":"https://img/%d.png"}`, i))
	}
	for i := range MaxAttrEntries + 5 {
		links = append(links, fmt.Sprintf(`{"href":"https://l/%d","text":"l%03d"}`, i, i))
	}
	body := `{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info"},"images":[` +
		strings.Join(imgs, ",") + `],"links":[` + strings.Join(links, ",") + `]}`
	r := mustParse(t, body)
	if len(r.Event.Images) != 32 || r.Event.Images[31] != "https://img/31.png" {
		t.Fatalf("images %v", r.Event.Images)
	}
	var attrs map[string]any
	_ = json.Unmarshal(r.Event.Attrs, &attrs)
	if n := len(attrs["links"].(map[string]any)); n != MaxAttrEntries {
		t.Fatalf("%d links", n)
	}
}

func TestCustomDetailsBounded(t *testing.T) {
	d := map[string]any{strings.Repeat("k", MaxAttrKey+1): "skipped", "big": strings.Repeat("v", MaxAttrValue+1)}
	for i := range MaxAttrEntries + 5 {
		d[fmt.Sprintf("d%03d", i)] = i
	}
	b, _ := json.Marshal(d)
	got := customDetails(b)
	if len(got) != MaxAttrEntries || len(got["big"].(string)) != MaxAttrValue || got["d098"] == nil || got["d099"] != nil {
		t.Fatalf("%d kept: big %d", len(got), len(got["big"].(string)))
	}
	if customDetails(nil) != nil || customDetails([]byte("null")) != nil || customDetails([]byte(`{"a":null}`)) != nil {
		t.Fatal("nothing to keep, yet kept")
	}
	if got := customDetails([]byte(`[1, 2]`)); !reflect.DeepEqual(got, map[string]any{"details": "[1,2]"}) {
		t.Fatalf("array %v", got)
	}
}

// TestRejections: every rule, with PagerDuty's error strings.
func TestRejections(t *testing.T) {
	ok := `{"routing_key":"k","event_action":"trigger","dedup_key":"d","payload":{"summary":"s","source":"src","severity":"critical"}}`
	edit := func(old, new string) string {
		s := strings.Replace(ok, old, new, 1)
		if s == ok {
			panic("edit did not apply: " + old)
		}
		return s
	}
	cases := []struct {
		name string
		body string
		want []string // substrings, one per expected error
	}{
		{"empty body", "", []string{"empty"}},
		{"malformed", `{"routing_key":`, []string{"not valid JSON"}},
		{"trailing data", ok + `x`, []string{"not valid JSON"}},
		{"not an object", `"trigger"`, []string{"'body' has the wrong type"}},
		{"duplicate member", edit(`"dedup_key":"d"`, `"dedup_key":"d","dedup_key":"e"`), []string{"'dedup_key' is given more than once"}},
		// Text that is not Unicode names its member (it was "the request
		// body is not valid JSON (at byte N)" until 6 December).
		{"invalid utf-8", edit(`"summary":"s"`, "\"summary\":\"s\xff\""), []string{"'payload.summary' is not valid UTF-8 (byte 0xff)"}},
		{"lone surrogate in a custom detail", edit(`"severity":"critical"`, `"severity":"critical","custom_details":{"k":"\ud800"}`), []string{`'payload.custom_details.k' is not valid UTF-8 (lone surrogate escape \ud800)`}},
		{"lone surrogate in a name", edit(`"dedup_key":"d"`, `"dedup_key":"d","\udc00":1`), []string{"'body' holds a member name that is not valid UTF-8"}},
		{"invalid utf-8, malformed", "{\"routing_key\":\"\xff", []string{"not valid JSON"}},
		{"payload not an object", edit(`"payload":{"summary":"s","source":"src","severity":"critical"}`, `"payload":"x"`), []string{"'payload' has the wrong type"}},
		{"summary a number", edit(`"summary":"s"`, `"summary":1`), []string{"'payload.summary' has the wrong type"}},
		{"dedup_key a number", edit(`"dedup_key":"d"`, `"dedup_key":7`), []string{"'dedup_key' has the wrong type"}},
		{"images not a list", edit(`"dedup_key":"d"`, `"dedup_key":"d","images":{}`), []string{"'images' has the wrong type"}},
		{"image src a number", edit(`"dedup_key":"d"`, `"dedup_key":"d","images":[{"src":1}]`), []string{"'images.0.src' has the wrong type"}},
		{"routing_key missing", edit(`"routing_key":"k",`, ``), []string{"'routing_key' is missing"}},
		{"routing_key blank", edit(`"routing_key":"k"`, `"routing_key":" "`), []string{"'routing_key' is missing"}},
		{"event_action missing", edit(`"event_action":"trigger",`, ``), []string{"'event_action' is missing"}},
		{"event_action unknown", edit(`"trigger"`, `"escalate"`), []string{"'event_action' must be one of"}},
		{"dedup_key too long", edit(`"dedup_key":"d"`, `"dedup_key":"`+strings.Repeat("d", MaxDedupKey+1)+`"`), []string{"'dedup_key' must be at most 255"}},
		{"acknowledge without dedup_key", `{"routing_key":"k","event_action":"acknowledge"}`, []string{"'dedup_key' is required for event_action acknowledge"}},
		{"resolve with blank dedup_key", `{"routing_key":"k","event_action":"resolve","dedup_key":""}`, []string{"'dedup_key' is required for event_action resolve"}},
		{"trigger without payload", `{"routing_key":"k","event_action":"trigger"}`, []string{"'payload' is required"}},
		{"summary missing", edit(`"summary":"s",`, ``), []string{"'payload.summary' is missing"}},
		{"summary too long", edit(`"summary":"s"`, `"summary":"`+strings.Repeat("s", MaxSummary+1)+`"`), []string{"'payload.summary' must be at most 1024"}},
		{"source missing", edit(`"source":"src",`, ``), []string{"'payload.source' is missing"}},
		{"severity missing", edit(`,"severity":"critical"`, ``), []string{"'payload.severity' is missing"}},
		{"severity unknown", edit(`"critical"`, `"high"`), []string{"'payload.severity' must be one of"}},
		{"severity unknown on acknowledge", `{"routing_key":"k","event_action":"acknowledge","dedup_key":"d","payload":{"severity":"Critical"}}`, []string{"'payload.severity' must be one of"}},
		{"timestamp bad", edit(`"severity":"critical"`, `"severity":"critical","timestamp":"now"`), []string{"'payload.timestamp' must be an ISO 8601 time"}},
		{"everything wrong at once", `{"event_action":"trigger","payload":{}}`, []string{"'routing_key'", "'payload.summary'", "'payload.source'", "'payload.severity'"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, inv := Parse([]byte(c.body), now, genKey)
			if inv == nil {
				t.Fatal("accepted")
			}
			if len(inv.Errors) != len(c.want) {
				t.Fatalf("errors %q, want %d", inv.Errors, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(inv.Errors[i], w) {
					t.Fatalf("error %d %q, want %q", i, inv.Errors[i], w)
				}
			}
		})
	}

	// Lenient: unknown members are accepted, and acknowledge/resolve need
	// no payload fields.
	for _, body := range []string{
		edit(`"dedup_key":"d"`, `"dedup_key":"d","future":[1],"payload_version":2`),
		edit(`"summary":"s"`, `"summary":"s","extra":{"a":1}`),
		`{"routing_key":"k","event_action":"resolve","dedup_key":"d","payload":{"summary":""}}`,
	} {
		if _, _, inv := Parse([]byte(body), now, genKey); inv != nil {
			t.Fatalf("%s: %v", body, inv)
		}
	}
}

// TestReportsValidate: every report is an operation the tracker's
// validation accepts.
func TestReportsValidate(t *testing.T) {
	ch := "0123456789ABCDEFGHJKMNPQRS"
	for _, c := range []struct {
		body string
		op   ops.Name
	}{
		{sampleTrigger, ops.EventCreate},
		{sampleTrigger, ops.EventUpdate},
		{`{"routing_key":"k","event_action":"acknowledge","dedup_key":"d"}`, ops.EventUpdate},
		{`{"routing_key":"k","event_action":"resolve","dedup_key":"d"}`, ops.EventClose},
	} {
		e := mustParse(t, c.body).Event
		e.ChannelID = &ch
		if c.op != ops.EventCreate {
			e.EventID = ptr("e1")
		}
		if _, err := ops.ValidateIntegrationEvent(c.op, &e); err != nil {
			t.Fatalf("%s: %v", c.op, err)
		}
	}
}

// TestLargeTriggerIsCut: a trigger within the 1 MiB body whose
// custom_details and links make more than maxDetailsBytes of attrs (a
// nested value's quotes escaped again as JSON text: 800 KB from a 400 KB
// body) is kept with members cut and the marker set, and is a valid
// create; before, its operation was over the size bound and the trigger
// was refused (first as a 429 every retry met again).
func TestLargeTriggerIsCut(t *testing.T) {
	details := map[string]any{}
	for i := range MaxAttrEntries {
		details[fmt.Sprintf("d%02d", i)] = []string{strings.Repeat(`"`, 2040)}
	}
	var links []map[string]string
	for i := range 20 {
		links = append(links, map[string]string{"href": "https://example.com/" + strings.Repeat("😀", 1000), "text": fmt.Sprint("l", i)})
	}
	b, err := json.Marshal(map[string]any{"routing_key": "k", "event_action": "trigger", "dedup_key": "big", "links": links,
		"payload": map[string]any{"summary": "s", "source": "src", "severity": "error", "custom_details": details}})
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, string(b))
	var attrs map[string]any
	if err := json.Unmarshal(r.Event.Attrs, &attrs); err != nil {
		t.Fatal(err)
	}
	if attrs[TruncatedAttr] != true || attrs["dedup_key"] != "big" || len(r.Event.Attrs) > maxDetailsBytes+16<<10 {
		t.Fatalf("marker %v, dedup_key %v, %d bytes", attrs[TruncatedAttr], attrs["dedup_key"], len(r.Event.Attrs))
	}
	ch, opID := "0123456789ABCDEFGHJKMNPQRS", "pagerduty:x"
	e := r.Event
	e.ChannelID, e.OpID = &ch, &opID
	if _, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, &e); aerr != nil {
		t.Fatalf("create: %v", aerr)
	}
}

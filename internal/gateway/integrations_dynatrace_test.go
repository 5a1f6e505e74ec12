package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
)

// seed003 are the three curl bodies of seed 003, as written.
var seed003 = []string{
	`{
    "eventType": "MARKED_FOR_TERMINATION",
    "title": "Planned host downscale",
    "entitySelector": "type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP),entityName(cloud-burst-hosts))",
    "properties": {
        "job.number": "21234346"
    }
}`,
	`{
    "eventType": "CUSTOM_INFO",
    "title": "Loadtest start",
    "timeout": 30,
    "entitySelector": "type(SERVICE),entityName.equals(BookingService)",
    "properties": {
        "Tool": "MyLoadTool",
        "Load per minute": "100",
        "Load pattern": "production"
    }
}`,
	`{
    "eventType": "ERROR_EVENT",
    "title": "Product catalog update failed",
    "timeout": 30,
    "entitySelector": "type(SERVICE),entityName.equals(BookingService)",
    "properties": {
        "allowDavisMerge": "false",
        "Catalog": "APAC travels",
        "Batch processor": "travel-catalog"
    }
}`,
}

// dtTopology creates the Things the seed's selectors are about: a host
// group with two hosts, a host outside it, and two services.
func dtTopology(it *integ) (hosts []string, service string) {
	group := it.thing("cloud-burst-hosts", map[string]any{"type": "HOST_GROUP"})
	other := it.thing("steady-hosts", map[string]any{"type": "HOST_GROUP"})
	for i := range 2 {
		hosts = append(hosts, it.thing(fmt.Sprintf("burst-%d", i), map[string]any{"type": "HOST", "relationships": map[string]any{"isInstanceOf": group}}))
	}
	it.thing("steady-0", map[string]any{"type": "HOST", "relationships": map[string]any{"isInstanceOf": other}})
	service = it.thing("BookingService", map[string]any{"type": "SERVICE"})
	it.thing("BookingServiceLegacy", map[string]any{"type": "SERVICE"})
	return hosts, service
}

func (it *integ) dtIngest(body string) (int, map[string]any) {
	it.t.Helper()
	s, _, b := it.send("POST", "/api/v2/events/ingest", map[string]string{"Authorization": "Api-Token " + it.token}, body)
	return s, decode(it.t, b)
}

// TestDynatraceSeedExamples sends the three curl examples of seed 003 as
// written (no Content-Type, Api-Token header) and checks the 201 answers
// and the Events they made.
func TestDynatraceSeedExamples(t *testing.T) {
	it := startIntegrations(t, "dynatrace")
	hosts, service := dtTopology(it)

	wantCounts := []int{2, 1, 1}
	var correlation []string
	for i, body := range seed003 {
		s, m := it.dtIngest(body)
		if s != 201 || m["reportCount"] != float64(wantCounts[i]) {
			t.Fatalf("example %d: %d %v", i+1, s, m)
		}
		results := m["eventIngestResults"].([]any)
		if len(results) != wantCounts[i] {
			t.Fatalf("example %d: results %v", i+1, results)
		}
		for _, r := range results {
			r := r.(map[string]any)
			if r["status"] != "OK" || r["correlationId"] == nil || r["correlationId"] == "" {
				t.Fatalf("example %d: result %v", i+1, r)
			}
			correlation = append(correlation, r["correlationId"].(string))
		}
	}

	byID := map[string]map[string]any{}
	for _, e := range it.events("") {
		byID[e["event_id"].(string)] = e
	}
	// Example 1: an info event per host of the group, closed at once.
	linked := map[string]bool{}
	for _, id := range correlation[:2] {
		e := byID[id]
		if e == nil || e["state"] != "CLOSED" || e["title"] != "Planned host downscale" || e["severity"] != "low" {
			t.Fatalf("downscale event %s: %v", id, e)
		}
		if fmt.Sprint(e["attrs"]) != "map[job.number:21234346]" {
			t.Fatalf("downscale attrs: %v", e["attrs"])
		}
		linked[e["thing_id"].(string)] = true
	}
	if !linked[hosts[0]] || !linked[hosts[1]] {
		t.Fatalf("downscale events link %v, want %v", linked, hosts)
	}
	// Example 2: info, closed, on the service only (equals is not contains).
	if e := byID[correlation[2]]; e["state"] != "CLOSED" || e["thing_id"] != service || e["title"] != "Loadtest start" {
		t.Fatalf("loadtest event: %v", e)
	}
	// Example 3: a problem, open, high, with a deadline 30 minutes out.
	e := byID[correlation[3]]
	if e["state"] != "ONGOING" || e["severity"] != "high" || e["thing_id"] != service {
		t.Fatalf("error event: %v", e)
	}
	deadline := int64(e["deadline"].(float64))
	if d := time.Until(time.UnixMilli(deadline)); d < 29*time.Minute || d > 31*time.Minute {
		t.Fatalf("deadline in %v, want about 30m", d)
	}
	if len(byID) != 4 {
		t.Fatalf("%d events, want 4", len(byID))
	}

	// Sending the problem again refreshes the open event: same correlation
	// id, one more operation, no new event, a later deadline.
	time.Sleep(5 * time.Millisecond)
	before := len(it.history())
	s, m := it.dtIngest(seed003[2])
	if s != 201 || m["eventIngestResults"].([]any)[0].(map[string]any)["correlationId"] != correlation[3] {
		t.Fatalf("refresh: %d %v (want correlation %s)", s, m, correlation[3])
	}
	if n := len(it.history()); n != before+1 {
		t.Fatalf("history %d after refresh, want %d", n, before+1)
	}
	if n := len(it.events("")); n != 4 {
		t.Fatalf("%d events after refresh, want 4", n)
	}
	refreshed := it.event(correlation[3])
	if refreshed["version"] != 2.0 || refreshed["state"] != "ONGOING" {
		t.Fatalf("refreshed event: %v", refreshed)
	}
	if moved := int64(refreshed["deadline"].(float64)); moved <= deadline {
		t.Fatalf("refresh kept the deadline at %d (was %d): it must move to the last report + timeout", moved, deadline)
	}
}

// TestDynatraceTimeoutClose: a problem not refreshed before its deadline is
// closed by the gateway with status timed_out, once.
func TestDynatraceTimeoutClose(t *testing.T) {
	it := startIntegrations(t, "dynatrace-timeout")
	_, service := dtTopology(it)
	end := time.Now().Add(1500 * time.Millisecond).UnixMilli()
	s, m := it.dtIngest(fmt.Sprintf(`{"eventType":"AVAILABILITY_EVENT","title":"BookingService down","endTime":%d,
		"entitySelector":"entityId(%s)"}`, end, service))
	if s != 201 || m["reportCount"] != 1.0 {
		t.Fatalf("ingest: %d %v", s, m)
	}
	id := m["eventIngestResults"].([]any)[0].(map[string]any)["correlationId"].(string)
	if e := it.event(id); e["state"] != "ONGOING" || e["severity"] != "critical" {
		t.Fatalf("before the deadline: %v", e)
	}
	var e map[string]any
	for wait := time.Now().Add(15 * time.Second); time.Now().Before(wait); time.Sleep(200 * time.Millisecond) {
		if e = it.event(id); e["state"] == "CLOSED" {
			break
		}
	}
	if e["state"] != "CLOSED" || e["status"] != "timed_out" || e["ended_at"] != float64(end) {
		t.Fatalf("after the deadline: %v", e)
	}
	closes := 0
	for _, h := range it.history() {
		if h["op"] == "event.close" {
			closes++
		}
	}
	if closes != 1 {
		t.Fatalf("%d closes in the history, want 1", closes)
	}
	// The same report now opens a new event: the old one is over.
	s, m = it.dtIngest(fmt.Sprintf(`{"eventType":"AVAILABILITY_EVENT","title":"BookingService down","entitySelector":"entityId(%s)"}`, service))
	if next := m["eventIngestResults"].([]any)[0].(map[string]any)["correlationId"]; s != 201 || next == id {
		t.Fatalf("report after the timeout: %d %v", s, m)
	}
}

// TestDynatraceEndedProblem: a problem report whose endTime has passed
// closes the problem's open Event at that time, status "closed", with the
// same correlation id; sent again, or for a problem that had no open
// Event, it is accepted and changes nothing. Before, each such report
// opened a new Event (devices alerted to a problem already over) that the
// deadline scan closed a second later.
func TestDynatraceEndedProblem(t *testing.T) {
	it := startIntegrations(t, "dynatrace-ended")
	_, service := dtTopology(it)
	result := func(s int, m map[string]any) map[string]any {
		t.Helper()
		if s != 201 || m["reportCount"] != 1.0 {
			t.Fatalf("ingest: %d %v", s, m)
		}
		r := m["eventIngestResults"].([]any)[0].(map[string]any)
		if r["status"] != "OK" {
			t.Fatalf("ingest result: %v", r)
		}
		return r
	}
	open := result(it.dtIngest(fmt.Sprintf(`{"eventType":"AVAILABILITY_EVENT","title":"BookingService down",
		"entitySelector":"entityId(%s)"}`, service)))
	id := open["correlationId"].(string)
	now := time.Now().UnixMilli()
	start, end := now-60_000, now-1_000
	ended := fmt.Sprintf(`{"eventType":"AVAILABILITY_EVENT","title":"BookingService down","startTime":%d,"endTime":%d,
		"entitySelector":"entityId(%s)"}`, start, end, service)
	if r := result(it.dtIngest(ended)); r["correlationId"] != id {
		t.Fatalf("the ended report: %v, want the open Event's correlation id %s", r, id)
	}
	if e := it.event(id); e["state"] != "CLOSED" || e["status"] != "closed" || e["ended_at"] != float64(end) {
		t.Fatalf("after the ended report: %v", e)
	}
	again := result(it.dtIngest(ended))
	never := result(it.dtIngest(fmt.Sprintf(`{"eventType":"ERROR_EVENT","title":"Reported once over","startTime":%d,"endTime":%d}`, start, end)))
	for name, r := range map[string]map[string]any{"the ended report again": again, "a problem never open": never} {
		if r["correlationId"] != nil {
			t.Errorf("%s: %v, want no correlation id (nothing recorded)", name, r)
		}
	}
	if evs := it.events(""); len(evs) != 1 || evs[0]["event_id"] != id {
		t.Fatalf("the channel's events: %v, want only %s", evs, id)
	}
}

// TestDynatraceInfoEventSpan: an info event (created and closed at once)
// spans startTime to endTime when the report names its end (a deployment
// from its start to its end); without one it is an instant. Its end was
// always its start.
func TestDynatraceInfoEventSpan(t *testing.T) {
	it := startIntegrations(t, "dynatrace-info")
	now := time.Now().UnixMilli()
	for _, c := range []struct {
		body       string
		start, end int64
	}{
		{fmt.Sprintf(`{"eventType":"CUSTOM_DEPLOYMENT","title":"deploy 1.2","startTime":%d,"endTime":%d}`, now-600_000, now-60_000), now - 600_000, now - 60_000},
		{fmt.Sprintf(`{"eventType":"CUSTOM_INFO","title":"note","startTime":%d}`, now-5_000), now - 5_000, now - 5_000},
	} {
		s, m := it.dtIngest(c.body)
		if s != 201 || m["reportCount"] != 1.0 {
			t.Fatalf("ingest: %d %v", s, m)
		}
		id := m["eventIngestResults"].([]any)[0].(map[string]any)["correlationId"].(string)
		if e := it.event(id); e["state"] != "CLOSED" || e["started_at"] != float64(c.start) || e["ended_at"] != float64(c.end) {
			t.Errorf("%s: state %v, started_at %v, ended_at %v; want CLOSED, %d, %d", c.body, e["state"], e["started_at"], e["ended_at"], c.start, c.end)
		}
	}
}

// TestDynatraceRejections: every rejection answers Dynatrace's own error
// envelope and changes nothing.
func TestDynatraceRejections(t *testing.T) {
	it := startIntegrations(t, "dynatrace-rejections")
	_, service := dtTopology(it)
	readOnly := it.newToken("events.read")
	before := len(it.history())

	violation := func(body, path, contains string) {
		t.Helper()
		s, m := it.dtIngest(body)
		e, _ := m["error"].(map[string]any)
		if s != 400 || e == nil || e["code"] != 400.0 {
			t.Fatalf("%s: %d %v", body, s, m)
		}
		vs, _ := e["constraintViolations"].([]any)
		for _, v := range vs {
			v := v.(map[string]any)
			if v["path"] == path && strings.Contains(v["message"].(string), contains) && v["parameterLocation"] == "PAYLOAD_BODY" {
				return
			}
		}
		t.Fatalf("%s: no violation at %s containing %q: %v", body, path, contains, m)
	}
	violation(`{"title":"x"}`, "eventType", "must not be null")
	violation(`{"eventType":"SOMETHING","title":"x"}`, "eventType", "must be one of")
	violation(`{"eventType":"CUSTOM_INFO"}`, "title", "must not be empty")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","colour":"red"}`, "colour", "unknown member")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","timeout":0}`, "timeout", "at least 1")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","startTime":2000,"endTime":1000}`, "endTime", "before startTime")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","properties":{"a":{"b":1}}}`, "properties.a", "string, number or boolean")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","properties":{"a":"`+strings.Repeat("v", 4097)+`"}}`, "properties.a", "at most 4096")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","entitySelector":"type(SERVICE),mzName(\"prod\")"}`, "entitySelector", "mzName")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","entitySelector":"entityName(BookingService)"}`, "entitySelector", "type(...) or entityId(...)")
	violation(`{"eventType":"CUSTOM_INFO","title":"x","entitySelector":"type(SERVICE"}`, "entitySelector", "")

	status := func(body string) (int, map[string]any) {
		t.Helper()
		s, m := it.dtIngest(body)
		if s != 201 {
			t.Fatalf("%s: %d %v", body, s, m)
		}
		return len(m["eventIngestResults"].([]any)), m["eventIngestResults"].([]any)[0].(map[string]any)
	}
	if n, r := status(`{"eventType":"CUSTOM_INFO","title":"x","entitySelector":"type(DATABASE)"}`); n != 1 || r["status"] != "INVALID_ENTITY_TYPE" {
		t.Fatalf("unknown type: %v", r)
	}
	if _, r := status(`{"eventType":"CUSTOM_INFO","title":"x","entitySelector":"entityId(\"` + service + `\")","properties":{"dt.secret.thing":"1"}}`); r["status"] != "INVALID_METADATA" {
		t.Fatalf("reserved key: %v", r)
	}
	if _, r := status(`{"eventType":"CUSTOM_INFO","title":"x","properties":{"dt.event.allow_davis_merge":"maybe"}}`); r["status"] != "INVALID_METADATA" {
		t.Fatalf("reserved value: %v", r)
	}
	old := time.Now().Add(-7 * time.Hour).UnixMilli()
	if _, r := status(fmt.Sprintf(`{"eventType":"ERROR_EVENT","title":"x","startTime":%d}`, old)); r["status"] != "INVALID_TIMESTAMPS" {
		t.Fatalf("old problem: %v", r)
	}

	auth := func(header, path string, want int, contains string) {
		t.Helper()
		h := map[string]string{}
		if header != "" {
			h["Authorization"] = header
		}
		s, _, b := it.send("POST", path, h, seed003[1])
		m := decode(t, b)
		e, _ := m["error"].(map[string]any)
		if s != want || e == nil || e["code"] != float64(want) || !strings.Contains(fmt.Sprint(e["message"]), contains) {
			t.Fatalf("%s %s: %d %v", header, path, s, m)
		}
	}
	auth("", "/api/v2/events/ingest", 401, "Authentication failed")
	auth("Api-Token pgo1.nottherightshapeatall", "/api/v2/events/ingest", 401, "Authentication failed")
	auth("Api-Token "+readOnly, "/api/v2/events/ingest", 403, "events.ingest")
	auth("Api-Token "+it.token, "/e/01ARZ3NDEKTSV4RRFFQ69G5FAV/api/v2/events/ingest", 403, "environment")

	s, _, b := it.send("POST", "/api/v2/events/ingest", map[string]string{"Authorization": "Api-Token " + it.token},
		`{"eventType":"CUSTOM_INFO","title":"`+strings.Repeat("x", 1<<20)+`"}`)
	if m := decode(t, b); s != 413 || m["error"].(map[string]any)["code"] != 413.0 {
		t.Fatalf("large body: %d %v", s, m)
	}
	s, _, b = it.send("POST", "/api/v2/events/ingest", map[string]string{"Authorization": "Api-Token " + it.token}, `{"eventType":`)
	if m := decode(t, b); s != 400 || m["error"].(map[string]any)["code"] != 400.0 {
		t.Fatalf("bad JSON: %d %v", s, m)
	}
	if n := len(it.history()); n != before {
		t.Fatalf("rejections changed the history: %d → %d", before, n)
	}

	// The environment form with the channel's own id, a Bearer token and
	// the events.read lookup of the correlation id.
	s, _, b = it.send("POST", "/e/"+strings.ToLower(it.channel)+"/api/v2/events/ingest", map[string]string{"Authorization": "Bearer " + it.token}, seed003[1])
	m := decode(t, b)
	if s != 201 || m["reportCount"] != 1.0 {
		t.Fatalf("environment form: %d %v", s, m)
	}
	id := m["eventIngestResults"].([]any)[0].(map[string]any)["correlationId"].(string)
	s, _, b = it.send("GET", "/api/v2/events/"+id, map[string]string{"Authorization": "Api-Token " + readOnly}, "")
	if m := decode(t, b); s != 200 || m["eventType"] != "CUSTOM_INFO" || m["status"] != "CLOSED" || m["correlationId"] != id {
		t.Fatalf("event get: %d %v", s, m)
	}
	s, _, _ = it.send("GET", "/api/v2/events/"+id, map[string]string{"Authorization": "Api-Token " + it.token}, "")
	if s != 403 {
		t.Fatalf("event get without events.read: %d", s)
	}
}

// TestDynatraceWithGatewayToken: with PUSHGO_TOKEN set, an integration
// token alone is enough on the integration route (a tool sends one
// Authorization header), and the PushGo routes still need the gateway
// token.
func TestDynatraceWithGatewayToken(t *testing.T) {
	it := startIntegrations(t, "private", func(c *Config) { c.Token = "gateway-secret-token" })
	s, m := it.dtIngest(`{"eventType":"CUSTOM_DEPLOYMENT","title":"v2 rollout"}`)
	if s != 201 || m["reportCount"] != 1.0 {
		t.Fatalf("ingest with an integration token only: %d %v", s, m)
	}
	s, _, b := it.send("POST", "/event/create", map[string]string{"Content-Type": "application/json", "Authorization": "Api-Token " + it.token},
		`{"channel_id":"`+it.channel+`","password":"`+it.password+`","title":"t","status":"s","message":"m","severity":"low","event_time":1}`)
	if s != 401 {
		t.Fatalf("PushGo route with an integration token: %d %s", s, b)
	}
}

// TestDynatraceDescription: dt.event.description is the event's message and
// description; a blank one is no description, and the message falls back to
// the title instead of the report being refused for a message nobody wrote.
func TestDynatraceDescription(t *testing.T) {
	it := startIntegrations(t, "dynatrace-description")
	for _, tc := range []struct{ description, message string }{
		{`"Disk /var is 97% full"`, "Disk /var is 97% full"},
		{`" "`, "Disk alert"},
		{`"\t\n"`, "Disk alert"},
		// More leading blanks than the message keeps (512 characters):
		// the message was cut from the untrimmed text, all blanks, and the
		// report refused "message is required".
		{`"` + strings.Repeat(" ", 600) + `Disk /var is full  "`, "Disk /var is full"},
	} {
		s, m := it.dtIngest(`{"eventType":"CUSTOM_INFO","title":"Disk alert","properties":{"dt.event.description":` + tc.description + `}}`)
		if s != 201 || m["reportCount"] != 1.0 {
			t.Fatalf("description %s: %d %v", tc.description, s, m)
		}
		r := m["eventIngestResults"].([]any)[0].(map[string]any)
		if r["status"] != "OK" {
			t.Fatalf("description %s: result %v", tc.description, r)
		}
		e := it.event(r["correlationId"].(string))
		want := any(tc.message)
		if tc.message == "Disk alert" {
			want = nil // no description
		}
		if e["message"] != tc.message || e["description"] != want {
			t.Fatalf("description %s: event %v, want message %q", tc.description, e, tc.message)
		}
	}
}

// TestDynatraceLargeReport: a report within Dynatrace's own limits whose
// properties make more than dynatrace.MaxAttrsBytes of attrs (60
// properties of 4096 four-byte characters: nearly the 1 MiB body) is
// recorded with the properties cut and the marker set; before, its
// operation was over the size bound and the report was refused. A
// property named like the marker is left out.
func TestDynatraceLargeReport(t *testing.T) {
	it := startIntegrations(t, "dynatrace-large")
	props := map[string]string{"pushgo.attrs_truncated": "mine", "dt.event.description": strings.Repeat("😀", 4096)}
	for i := range 59 {
		props[fmt.Sprintf("p%02d", i)] = strings.Repeat("😀", 4096)
	}
	b, err := json.Marshal(map[string]any{"eventType": "CUSTOM_INFO", "title": "big", "properties": props})
	if err != nil {
		t.Fatal(err)
	}
	s, m := it.dtIngest(string(b))
	if s != 201 || m["reportCount"] != 1.0 {
		t.Fatalf("%d %v", s, m)
	}
	r := m["eventIngestResults"].([]any)[0].(map[string]any)
	e := it.event(r["correlationId"].(string))
	attrs := e["attrs"].(map[string]any)
	if attrs["pushgo.attrs_truncated"] != true || len(attrs) < 2 || len(attrs) > 6 {
		t.Fatalf("attrs: marker %v, %d members", attrs["pushgo.attrs_truncated"], len(attrs))
	}
}

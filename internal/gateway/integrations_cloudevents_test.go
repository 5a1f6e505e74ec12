package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pushgo/gateway/ingest/integrations"
)

// ceClient is the CloudEvents SDK's own HTTP client aimed at the gateway
// with an integration token.
func (it *integ) ceClient(token string) cloudevents.Client {
	it.t.Helper()
	c, err := cloudevents.NewClientHTTP(
		cloudevents.WithTarget(it.base+"/cloudevents"),
		cehttp.WithHeader("Authorization", "Api-Token "+token),
	)
	if err != nil {
		it.t.Fatal(err)
	}
	return c
}

// ceEvent builds a CloudEvent with JSON data.
func ceEvent(t *testing.T, id, source, typ string, data any, ext map[string]any) cloudevents.Event {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource(source)
	e.SetType(typ)
	for k, v := range ext {
		e.SetExtension(k, v)
	}
	if data != nil {
		if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// ceStatus is the HTTP status of a Send result.
func ceStatus(t *testing.T, res error) int {
	t.Helper()
	if cloudevents.IsACK(res) {
		return 200
	}
	var r *cehttp.Result
	if !cloudevents.ResultAs(res, &r) {
		t.Fatalf("send: %v", res)
	}
	return r.StatusCode
}

// ceBatch posts events as one batched request built by the SDK.
func (it *integ) ceBatch(token string, events ...cloudevents.Event) (int, map[string]any) {
	it.t.Helper()
	req, err := cehttp.NewHTTPRequestFromEvents(context.Background(), it.base+"/cloudevents", events)
	if err != nil {
		it.t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		it.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	r := it.api.Send(it.t, req.Method, "/cloudevents", body, req.Header)
	return r.Status, decode(it.t, r.Body)
}

func TestCloudEventsModes(t *testing.T) {
	it := startIntegrations(t, "ce")
	host := it.thing("web-1", map[string]any{"type": "HOST"})
	client := it.ceClient(it.token)
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	// Binary mode (the client's default): ce-* headers, JSON body.
	bin := ceEvent(t, "b-1", "/monitor/web", "com.example.cpu.high", map[string]any{
		"message": "CPU above 90%", "cpu": 93.5, "host": map[string]any{"name": "web-1", "cores": 8},
	}, map[string]any{"severity": "high", "region": "eu-west"})
	bin.SetSubject(host)
	bin.SetTime(at)
	if s := ceStatus(t, client.Send(ctx, bin)); s != 200 {
		t.Fatalf("binary: %d", s)
	}
	// Structured mode: application/cloudevents+json.
	st := ceEvent(t, "s-1", "/monitor/db", "com.example.disk.full", map[string]any{"info": "disk full"},
		map[string]any{"level": "CRITICAL", "eventaliasen": "Disk full"})
	if s := ceStatus(t, client.Send(cloudevents.WithEncodingStructured(ctx), st)); s != 200 {
		t.Fatalf("structured: %d", s)
	}
	// Batched mode, built by the SDK: one without data, one with.
	b1 := ceEvent(t, "k-1", "/deploy", "com.example.deploy", nil, nil)
	b2 := ceEvent(t, "k-2", "/deploy", "com.example.deploy", map[string]any{"version": "1.2.3"}, map[string]any{"level": "warning"})
	s, m := it.ceBatch(it.token, b1, b2)
	if s != 200 || m["success"] != true {
		t.Fatalf("batch: %d %v", s, m)
	}
	items := m["data"].(map[string]any)["events"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["id"] != "k-1" || items[1].(map[string]any)["source"] != "/deploy" ||
		items[0].(map[string]any)["event_id"] == "" {
		t.Fatalf("batch answer %v", items)
	}

	byID := map[string]map[string]any{}
	for _, e := range it.events("CLOSED") {
		byID[e["attrs"].(map[string]any)["ce.id"].(string)] = e
	}
	if len(byID) != 4 || len(it.events("")) != 4 {
		t.Fatalf("events %v", byID)
	}
	e := byID["b-1"]
	attrs := e["attrs"].(map[string]any)
	if e["title"] != "com.example.cpu.high" || e["message"] != "CPU above 90%" || e["severity"] != "high" ||
		e["thing_id"] != host || e["event_time"] != float64(at.UnixMilli()) || e["status"] != "occurred" {
		t.Fatalf("binary event %v", e)
	}
	if attrs["cpu"] != 93.5 || attrs["host.name"] != "web-1" || attrs["host.cores"] != 8.0 || attrs["ce.source"] != "/monitor/web" ||
		attrs["ce.region"] != "eu-west" || attrs["ce.severity"] != "high" || attrs["ce.subject"] != host {
		t.Fatalf("binary attrs %v", attrs)
	}
	if e := byID["s-1"]; e["title"] != "Disk full" || e["message"] != "disk full" || e["severity"] != "critical" {
		t.Fatalf("structured event %v", e)
	}
	if e := byID["k-1"]; e["title"] != "com.example.deploy" || e["message"] != "com.example.deploy" || e["severity"] != "low" {
		t.Fatalf("batch event %v", e)
	}
	if e := byID["k-2"]; e["severity"] != "normal" || e["attrs"].(map[string]any)["version"] != "1.2.3" {
		t.Fatalf("batch event %v", e)
	}
	if items[1].(map[string]any)["event_id"] != byID["k-2"]["event_id"] {
		t.Fatalf("answered event_id %v, recorded %v", items[1], byID["k-2"]["event_id"])
	}

	// Resent in every mode, and the same CloudEvent through the event bus
	// route: source+id, nothing new.
	history := len(it.history())
	if s := ceStatus(t, client.Send(ctx, bin)); s != 200 {
		t.Fatalf("binary again: %d", s)
	}
	if s := ceStatus(t, client.Send(cloudevents.WithEncodingStructured(ctx), st)); s != 200 {
		t.Fatalf("structured again: %d", s)
	}
	if s, m := it.ceBatch(it.token, b1, b2); s != 200 {
		t.Fatalf("batch again: %d %v", s, m)
	}
	if s, _, m := it.eventBus("/v1/event-bus/recv", it.token,
		`{"eventList":[{"source":"/deploy","type":"com.example.deploy","id":"k-1"}],"eventBusId":"`+it.channel+`"}`); s != 200 {
		t.Fatalf("event bus: %d %v", s, m)
	}
	if n := len(it.events("")); n != 4 {
		t.Fatalf("%d events after resending", n)
	}
	if n := len(it.history()); n != history {
		t.Fatalf("history %d, want %d", n, history)
	}
}

// TestCloudEventsAnyData: data that is not a JSON object, which
// CloudEvents allows (a string, an array, a number; a text or binary body
// in binary mode), is recorded under the attr "data" (or "data_base64"),
// and an empty batch is answered with no events: all were refused with
// 400, which the SDK's senders do not retry, so the events were lost.
func TestCloudEventsAnyData(t *testing.T) {
	it := startIntegrations(t, "ce")
	auth := "Bearer " + it.token
	bin := func(id, contentType string) map[string]string {
		return map[string]string{"Authorization": auth, "Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/s", "Ce-Type": "t", "Content-Type": contentType}
	}
	structured := map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents+json"}
	for _, c := range []struct {
		headers    map[string]string
		body, want string
	}{
		{bin("text", "text/plain"), `hello`, "text"},
		{bin("array", "application/json"), `[1,2]`, "array"},
		{bin("bytes", "application/octet-stream"), "\xff\x00", "bytes"},
		{structured, `{"specversion":"1.0","id":"string","source":"/s","type":"t","data":"I'm just a string"}`, "string"},
		{structured, `{"specversion":"1.0","id":"number","source":"/s","type":"t","datacontenttype":"application/json","data":42}`, "number"},
	} {
		s, _, b := it.send("POST", "/cloudevents", c.headers, c.body)
		if m := decode(t, b); s != 200 || m["success"] != true {
			t.Fatalf("%s: %d %v", c.want, s, m)
		}
	}
	byID := map[string]map[string]any{}
	for _, e := range it.events("CLOSED") {
		attrs := e["attrs"].(map[string]any)
		byID[attrs["ce.id"].(string)] = attrs
	}
	for id, want := range map[string]map[string]any{
		"text": {"data": "hello", "ce.datacontenttype": "text/plain"}, "array": {"data": "[1,2]"},
		"bytes": {"data_base64": "/wA="}, "string": {"data": "I'm just a string"}, "number": {"data": 42.0},
	} {
		attrs, ok := byID[id]
		if !ok {
			t.Fatalf("no event of CloudEvent %s (recorded: %v)", id, byID)
		}
		for k, v := range want {
			if attrs[k] != v {
				t.Errorf("CloudEvent %s: attr %s = %#v, want %#v (attrs %v)", id, k, attrs[k], v, attrs)
			}
		}
	}
	s, _, b := it.send("POST", "/cloudevents", map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents-batch+json"}, `[]`)
	if m := decode(t, b); s != 200 || m["success"] != true || len(m["data"].(map[string]any)["events"].([]any)) != 0 {
		t.Fatalf("empty batch: %d %v", s, m)
	}
}

// TestCloudEventsWebhookHandshake: the abuse-protection handshake of the
// CloudEvents HTTP webhook spec (section 4.1), which senders such as Azure
// Event Grid make before delivering: an OPTIONS with WebHook-Request-Origin
// is answered 200 with that origin allowed and POST, appending nothing.
// Echo answered 204 without WebHook-Allowed-Origin, and such a sender
// never delivered.
func TestCloudEventsWebhookHandshake(t *testing.T) {
	it := startIntegrations(t, "ce")
	s, h, b := it.send("OPTIONS", "/cloudevents", map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "120"}, "")
	if s != 200 || h.Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" || !strings.Contains(h.Get("Allow"), "POST") || h.Get("WebHook-Allowed-Rate") == "" {
		t.Fatalf("handshake: %d, headers %v, body %s", s, h, b)
	}
	if s, _, _ := it.send("OPTIONS", "/cloudevents", nil, ""); s != 400 {
		t.Fatalf("OPTIONS without WebHook-Request-Origin: %d, want 400", s)
	}
	if n := len(it.history()); n != 0 {
		t.Fatalf("the handshake appended %d operations", n)
	}
}

func TestCloudEventsRejections(t *testing.T) {
	it := startIntegrations(t, "ce")
	ctx := context.Background()
	good := ceEvent(t, "1", "/s", "t", map[string]any{"a": 1}, nil)

	// Through the SDK's client: the status is what it sees.
	if s := ceStatus(t, it.ceClient("pgo1.AAAAAAAAAAAAAAAAAAAAAAAA."+strings.Repeat("0", 64)).Send(ctx, good)); s != 401 {
		t.Fatalf("wrong token: %d", s)
	}
	if s := ceStatus(t, it.ceClient(it.newToken("events.read")).Send(ctx, good)); s != 403 {
		t.Fatalf("scope missing: %d", s)
	}

	// Raw requests: the PushGo envelope and its error_code.
	auth := "Bearer " + it.token
	bin := func(extra map[string]string) map[string]string {
		h := map[string]string{"Authorization": auth, "Ce-Specversion": "1.0", "Ce-Id": "x", "Ce-Source": "/s", "Ce-Type": "t", "Content-Type": "application/json"}
		for k, v := range extra {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	structured := map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents+json"}
	batch := map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents-batch+json"}
	many, _ := json.Marshal(func() []map[string]any {
		var out []map[string]any
		for range integrations.MaxCloudEventsBatch + 1 {
			out = append(out, map[string]any{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"})
		}
		return out
	}())
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		code    string
	}{
		{"no token", map[string]string{"Content-Type": "application/cloudevents+json"}, `{}`, 401, "invalid_api_token"},
		{"not a cloudevent", map[string]string{"Authorization": auth, "Content-Type": "application/json"}, `{"a":1}`, 400, "invalid_json_data"},
		{"binary without id", bin(map[string]string{"Ce-Id": ""}), `{}`, 400, "invalid_json_data"},
		{"binary bad time", bin(map[string]string{"Ce-Time": "yesterday"}), `{}`, 400, "invalid_json_data"},
		{"binary old spec", bin(map[string]string{"Ce-Specversion": "0.3"}), `{}`, 400, "invalid_json_data"},
		{"structured malformed", structured, `{"specversion":"1.0",`, 400, "invalid_json_data"},
		{"structured no source", structured, `{"specversion":"1.0","id":"1","type":"t"}`, 400, "invalid_json_data"},
		// Repeated attributes: the SDK kept the last (or, for an extension
		// in two letter cases, whichever came last) and recorded it.
		{"structured id twice", structured, `{"specversion":"1.0","id":"d1","id":"d2","source":"/s","type":"t"}`, 400, "invalid_json_data"},
		{"structured extension in two cases", structured, `{"specversion":"1.0","id":"1","source":"/s","type":"t","severity":"low","Severity":"critical"}`, 400, "invalid_json_data"},
		{"structured data twice", structured, `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1},"data":{"a":2}}`, 400, "invalid_json_data"},
		{"structured data and data_base64", structured, `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1},"data_base64":"e30="}`, 400, "invalid_json_data"},
		{"batch repeated attribute", batch, `[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","ID":"3","source":"/s","type":"t"}]`, 400, "invalid_json_data"},
		{"past Event Grid's largest batch", batch, string(many), 400, "invalid_json_data"},
		{"batch with a bad one", batch, `[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","type":"t"}]`, 400, "invalid_json_data"},
		{"too large", structured, `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"x":"` + strings.Repeat("x", 1<<20) + `"}}`, 413, "payload_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, b := it.send("POST", "/cloudevents", c.headers, c.body)
			m := decode(t, b)
			if s != c.status || m["success"] != false || m["error_code"] != c.code || m["error"] == "" {
				t.Fatalf("got %d %v, want %d %s", s, m, c.status, c.code)
			}
		})
	}
	if n := len(it.history()); n != 0 {
		t.Fatalf("rejections appended %d operations", n)
	}
	// A severity extension outside PushGo's words is another tool's: kept
	// as its attr, not refused (no sender retries a 400).
	otherSeverity := ceEvent(t, "2", "/s", "t", nil, map[string]any{"severity": "urgent"})
	if s := ceStatus(t, it.ceClient(it.token).Send(ctx, otherSeverity)); s != 200 {
		t.Fatalf("another tool's severity: %d", s)
	}
}

// TestCloudEventsForKnative: what a Knative Trigger's subscriber (or a
// Source's sink) can do, a URI alone: the token in its query, and a
// success answered 202 with no body, which Knative's broker takes for a
// delivery (a 2xx body that is not a CloudEvent it took for a failure, 502,
// and delivered again until it dead-lettered). The SDK's own client,
// aimed at such a URI, records the event; a wrong token in the query is
// 401; an Authorization header wins over the query; a client that asks
// for JSON gets the answer that lists the Events.
func TestCloudEventsForKnative(t *testing.T) {
	it := startIntegrations(t, "ce")
	ctx := context.Background()
	sink := func(query string) cloudevents.Client {
		c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(it.base + "/cloudevents?" + query))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if res := sink("token="+it.token).Send(ctx, ceEvent(t, "k1", "/knative/ping", "dev.knative.sources.ping", map[string]any{"message": "hi"}, nil)); !cloudevents.IsACK(res) {
		t.Fatalf("a Knative-style delivery: %v", res)
	}
	if n := len(it.history()); n != 2 { // its create and close
		t.Fatalf("%d operations appended, want 2", n)
	}
	if s := ceStatus(t, sink("token=pgo1.AAAAAAAAAAAAAAAAAAAAAAAA."+strings.Repeat("0", 64)).Send(ctx, ceEvent(t, "k2", "/s", "t", nil, nil))); s != 401 {
		t.Fatalf("a wrong token in the query: %d", s)
	}
	bin := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "k3", "Ce-Source": "/s", "Ce-Type": "t", "Content-Type": "application/json"}
	r := it.api.Send(t, "POST", "/cloudevents?token="+it.token, `{"a":1}`, http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"k3"},
		"Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Content-Type": {"application/json"}, "Authorization": {"Bearer wrong"}})
	if r.Status != 401 {
		t.Fatalf("a wrong header beside a good query token: %d", r.Status)
	}
	r = it.api.Send(t, "POST", "/cloudevents?token="+it.token, `{"a":1}`, http.Header{"Ce-Specversion": {bin["Ce-Specversion"]}, "Ce-Id": {"k3"},
		"Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Content-Type": {"application/json"}, "Authorization": {""}})
	if r.Status != 202 || len(r.Body) != 0 {
		t.Fatalf("a success without Accept: %d %q, want 202 and no body", r.Status, r.Body)
	}
	r = it.api.Send(t, "POST", "/cloudevents?token="+it.token, `{"a":1}`, http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"k4"},
		"Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Content-Type": {"application/json"}, "Authorization": {""}, "Accept": {"text/html, application/json;q=0.9"}})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"events":[{"id":"k4"`) {
		t.Fatalf("a success asked as JSON: %d %s", r.Status, r.Body)
	}
}

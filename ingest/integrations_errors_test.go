package ingest_test

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/ids"
)

// errorSeries is every pushgo_http_errors_total series of g, as
// "route code" -> count.
func errorSeries(t *testing.T, g *gw) map[string]float64 {
	t.Helper()
	fams := gatherMetrics(t, g)
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "pushgo_http_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var route, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			out[route+" "+code] += m.GetCounter().GetValue()
		}
	}
	return out
}

// TestIntegrationErrorsCountedByCode: the integration routes answer
// errors in each tool's own shape, not the PushGo envelope, and each such
// answer is counted by pushgo_http_errors_total{route,code} like the
// PushGo routes' (the dashboard's "Errors by code"): under the catalog
// code the refusal stands for (a bad or missing token, a missing scope,
// an unknown event, an invalid selector) or, for a tool's own rules, a
// stable code named after the tool. Before, none of them was counted.
func TestIntegrationErrorsCountedByCode(t *testing.T) {
	g := startIngest(t, startBroker(t), ingest.Config{})
	ch := g.createChannel("errors")
	token := func(scopes ...string) http.Header {
		tok := mustOK(t, g.post("/channel/token/create", body(ch, "name", "metrics", "scopes", scopes))).Str("token")
		return http.Header{"Authorization": {"Api-Token " + tok}, "Content-Type": {"application/json"}}
	}
	ingestTok, readTok := token("events.ingest"), token("events.read")
	wrongTok := http.Header{"Authorization": {"Api-Token pgo1." + strings.Repeat("a", 24) + "." + strings.Repeat("0", 64)}}
	send := func(method, path string, hdr http.Header, b any, status int) {
		t.Helper()
		// Do, not Send: the tools' error bodies are not the envelope.
		r, err := g.api.Do(context.Background(), method, path, b, hdr)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if r.Status != status {
			t.Fatalf("%s %s answered %d, want %d: %s", method, path, r.Status, status, r.Body)
		}
	}
	dtEvent := map[string]any{"eventType": "CUSTOM_ALERT", "title": "disk full"}
	pdEvent := map[string]any{"routing_key": "pgo1." + strings.Repeat("a", 24) + "." + strings.Repeat("0", 64), "event_action": "trigger",
		"payload": map[string]any{"summary": "disk full", "source": "nas", "severity": "error"}}

	send("POST", "/api/v2/events/ingest", nil, dtEvent, 401)
	send("POST", "/api/v2/events/ingest", readTok, dtEvent, 403)
	send("POST", "/api/v2/events/ingest", ingestTok, map[string]any{"eventType": "CUSTOM_ALERT"}, 400)
	send("POST", "/api/v2/events/ingest", ingestTok, `{"eventType":`, 400)
	send("POST", "/api/v2/events/ingest", ingestTok, map[string]any{"eventType": "CUSTOM_ALERT", "title": "x", "entitySelector": "type("}, 400)
	send("POST", "/e/"+ids.NewChannelID()+"/api/v2/events/ingest", ingestTok, dtEvent, 403)
	send("GET", "/api/v2/events/not!an-id", readTok, nil, 404)
	send("POST", "/v1/event-bus/recv", wrongTok, map[string]any{}, 401)
	send("POST", "/v1/event-bus/recv", ingestTok, map[string]any{}, 400)
	send("POST", "/cloudevents", wrongTok, map[string]any{}, 401)
	send("POST", "/cloudevents", ingestTok, `{`, 400)
	send("POST", "/integrations/alertmanager", readTok, map[string]any{}, 403)
	send("POST", "/v2/enqueue", nil, map[string]any{"event_action": "trigger"}, 400)
	send("POST", "/v2/enqueue", nil, pdEvent, 401)

	want := map[string]float64{
		"/api/v2/events/ingest invalid_api_token":                             1,
		"/api/v2/events/ingest scope_missing":                                 1,
		"/api/v2/events/ingest dynatrace_constraints_violated":                2, // no title; a selector that does not parse
		"/api/v2/events/ingest invalid_json_syntax":                           1,
		"/e/:environment/api/v2/events/ingest dynatrace_environment_mismatch": 1,
		"/api/v2/events/:correlationId event_not_found":                       1,
		"/v1/event-bus/recv invalid_api_token":                                1,
		"/v1/event-bus/recv eventbus_invalid_parameter":                       1,
		"/cloudevents invalid_api_token":                                      1,
		"/cloudevents invalid_json_data":                                      1,
		"/integrations/alertmanager scope_missing":                            1,
		"/v2/enqueue pagerduty_invalid_event":                                 1,
		"/v2/enqueue invalid_api_token":                                       1,
	}
	got := errorSeries(t, g)
	if !maps.Equal(got, want) {
		t.Errorf("pushgo_http_errors_total:\n got %v\nwant %v", got, want)
	}
}

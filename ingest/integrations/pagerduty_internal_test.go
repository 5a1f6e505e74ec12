package integrations

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
)

func pdReply(t *testing.T, rec *httptest.ResponseRecorder) pdAnswer {
	t.Helper()
	var a pdAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return a
}

const pdTrigger = `{"routing_key":"good","event_action":"trigger","payload":{"summary":"s","source":"src","severity":"critical"}}`

// TestPagerDutyOverload: with every in-flight slot taken the route answers
// PagerDuty's 429 throttle with Retry-After.
func TestPagerDutyOverload(t *testing.T) {
	e, r := newTestRoutes(t)
	release, ok := r.slots.Take("")
	if !ok {
		t.Fatal("no slot")
	}
	rec := serve(e, RoutePagerDutyEnqueue, nil, pdTrigger)
	release()
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	a := pdReply(t, rec)
	if a.Status != "throttle event" || a.Message != "Requests for this service are arriving too quickly. Please retry later." || len(a.Errors) != 1 {
		t.Fatalf("body %s", rec.Body)
	}
}

// TestPagerDutyRejections: the paths that end before an append, in
// PagerDuty's shapes.
func TestPagerDutyRejections(t *testing.T) {
	e, _ := newTestRoutes(t)
	cases := []struct {
		name    string
		body    string
		status  int
		status2 string
		err     string
	}{
		{"bad JSON", `{"routing_key":`, 400, "invalid event", "not valid JSON"},
		{"invalid event", `{"routing_key":"good","event_action":"trigger"}`, 400, "invalid event", "'payload' is required"},
		{"wrong routing_key", strings.Replace(pdTrigger, `"good"`, `"nope"`, 1), 401, "invalid event", "'routing_key' is not a valid integration token"},
		{"no scope", strings.Replace(pdTrigger, `"good"`, `"read"`, 1), 403, "invalid event", "lacks the events.ingest scope"},
		{"token store down", strings.Replace(pdTrigger, `"good"`, `"down"`, 1), 429, "throttle event", "broker down"},
		{"too large", `{"routing_key":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, "invalid event", "larger than 1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(e, RoutePagerDutyEnqueue, nil, c.body)
			a := pdReply(t, rec)
			if rec.Code != c.status || a.Status != c.status2 || len(a.Errors) == 0 || !strings.Contains(a.Errors[0], c.err) {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
			if c.status2 == "invalid event" && a.Message != "Event object is invalid" {
				t.Fatalf("message %q", a.Message)
			}
			if (c.status == 429) != (rec.Header().Get("Retry-After") != "") {
				t.Fatalf("Retry-After %q on %d", rec.Header().Get("Retry-After"), rec.Code)
			}
		})
	}
}

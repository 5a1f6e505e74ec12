package gateway

import (
	"context"
	"errors"
	"testing"

	pd "github.com/PagerDuty/go-pagerduty"
)

// pdClient is PagerDuty's own Go client (go-pagerduty), its Events API v2
// endpoint aimed at the gateway.
func (it *integ) pdClient() *pd.Client {
	return pd.NewClient("", pd.WithV2EventsAPIEndpoint(it.base))
}

// TestPagerDutyOwnClient: PagerDuty's Go client triggers, acknowledges
// and resolves an incident through the gateway and reads every answer as
// it reads PagerDuty's: status "success", the dedup_key, and the
// Event's state following each action. Its error type reads an invalid
// event and an unknown routing key as refusals not to be retried.
func TestPagerDutyOwnClient(t *testing.T) {
	it := startIntegrations(t, "pd-client")
	c := it.pdClient()
	ctx := context.Background()
	ev := &pd.V2Event{
		RoutingKey: it.token, Action: "trigger", DedupKey: "disk/prod-datapipe03",
		Client: "Sample Monitoring Service", ClientURL: "https://monitoring.example.com",
		Payload: &pd.V2Payload{Summary: "DISK at 99% on prod-datapipe03", Source: "prod-datapipe03.example.com", Severity: "critical",
			Component: "mysql", Group: "prod-datapipe", Class: "disk", Details: map[string]any{"free space": "1%"}},
	}
	res, err := c.ManageEventWithContext(ctx, ev)
	if err != nil || res.Status != "success" || res.DedupKey != ev.DedupKey || res.Message == "" {
		t.Fatalf("trigger: %+v %v", res, err)
	}
	e := it.pdEvent(ev.DedupKey)
	if e["state"] != "ONGOING" || e["title"] != "DISK at 99% on prod-datapipe03" || e["severity"] != "critical" {
		t.Fatalf("triggered event %v", e)
	}

	for _, step := range []struct{ action, state, status string }{
		{"acknowledge", "ONGOING", "acknowledged"},
		{"resolve", "CLOSED", "resolved"},
	} {
		res, err := c.ManageEventWithContext(ctx, &pd.V2Event{RoutingKey: it.token, Action: step.action, DedupKey: ev.DedupKey})
		if err != nil || res.Status != "success" || res.DedupKey != ev.DedupKey {
			t.Fatalf("%s: %+v %v", step.action, res, err)
		}
		if e := it.event(e["event_id"].(string)); e["state"] != step.state || e["status"] != step.status {
			t.Fatalf("after %s: %v", step.action, e)
		}
	}

	// A trigger without a dedup_key gets one made by the gateway.
	res, err = c.ManageEventWithContext(ctx, &pd.V2Event{RoutingKey: it.token, Action: "trigger",
		Payload: &pd.V2Payload{Summary: "backup failed", Source: "db-1", Severity: "error"}})
	if err != nil || res.Status != "success" || res.DedupKey == "" {
		t.Fatalf("trigger without dedup_key: %+v %v", res, err)
	}
	if e := it.pdEvent(res.DedupKey); e["state"] != "ONGOING" || e["severity"] != "high" {
		t.Fatalf("its event %v", e)
	}

	// Refusals, read by the client's error type: neither is to be retried.
	var apiErr pd.APIError
	_, err = c.ManageEventWithContext(ctx, &pd.V2Event{RoutingKey: it.token, Action: "trigger",
		Payload: &pd.V2Payload{Summary: "no source", Severity: "critical"}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Temporary() {
		t.Fatalf("an event without payload.source: %v", err)
	}
	_, err = c.ManageEventWithContext(ctx, &pd.V2Event{RoutingKey: "R0000000000000000000000000000000", Action: "trigger",
		Payload: &pd.V2Payload{Summary: "x", Source: "y", Severity: "info"}})
	if !errors.As(err, &apiErr) || apiErr.Temporary() {
		t.Fatalf("an unknown routing key: %v", err)
	}
}

package pagerduty

import (
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// FuzzParse: whatever Events v2 body the route is sent, Parse never
// panics; a refusal is PagerDuty's 400 with at least one error; and an
// event it accepts has a dedup_key in UTF-8 and a report that passes the
// ops validation of each operation the alert tracker makes of it (create
// and update for trigger, update for acknowledge, close for resolve),
// with payloads that encode to I-JSON and content that hashes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		sampleTrigger,
		`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info"}}`,
		`{"routing_key":"k","event_action":"trigger","dedup_key":" ","payload":{"summary":" s ","source":"h","severity":"error","timestamp":"2015-07-17T08:42:58.315+0000","custom_details":"plain"}}`,
		`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"warning","custom_details":{"a":{"b":[1,{"c":null}]},"n":-1.5e300}},"images":[{"src":"https://x/i.png"}],"links":[{"href":"https://x","text":"t"}]}`,
		`{"routing_key":"k","event_action":"acknowledge","dedup_key":"d","payload":{"severity":"critical"}}`,
		`{"routing_key":"k","event_action":"resolve","dedup_key":"d"}`,
		`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info","custom_details":{"v":1e400}}}`,
		`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info"},"unknown":[-1e309]}`,
		`{"routing_key":"","event_action":"snooze"}`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, r, inv := Parse(body, now, genKey)
		if inv != nil {
			if len(inv.Errors) == 0 {
				t.Fatalf("%q refused without an error", body)
			}
			for _, e := range inv.Errors {
				if e == "" {
					t.Fatalf("%q refused with an empty error: %q", body, inv.Errors)
				}
			}
			return
		}
		if ev == nil || r.Action != ev.EventAction || r.DedupKey == "" || !utf8.ValidString(r.DedupKey) {
			t.Fatalf("accepted %q as %+v, report %+v", body, ev, r)
		}
		switch r.Action {
		case ActionTrigger:
			trackerOp(t, body, ops.EventCreate, r.Event)
			trackerOp(t, body, ops.EventUpdate, r.Event)
		case ActionAcknowledge:
			trackerOp(t, body, ops.EventUpdate, r.Event)
		case ActionResolve:
			trackerOp(t, body, ops.EventClose, r.Event)
		default:
			t.Fatalf("accepted %q with action %q", body, r.Action)
		}
		if r.Content != nil {
			if _, err := json.Marshal(r.Content, json.Deterministic(true)); err != nil {
				t.Fatalf("accepted %q, whose content does not hash (every resend would notify): %v", body, err)
			}
		}
	})
}

// trackerOp validates req as the alert tracker shapes it for op (its ids
// set, the times it drops dropped), and checks the payload is I-JSON.
func trackerOp(t *testing.T, in any, op ops.Name, req ops.EventRequest) {
	t.Helper()
	ch, opID, id := "0123456789ABCDEFGHJKMNPQRS", "pagerduty:h:1", "0123456789abcdef0123456789abcdef"
	req.ChannelID, req.Password = &ch, nil
	switch op {
	case ops.EventCreate:
		req.OpID, req.EventID, req.EndedAt = &opID, nil, nil
	case ops.EventUpdate:
		req.OpID, req.EventID, req.StartedAt, req.EndedAt = nil, &id, nil, nil
	case ops.EventClose:
		req.OpID, req.EventID, req.StartedAt = nil, &id, nil
	}
	v, aerr := ops.ValidateIntegrationEvent(op, &req)
	if aerr != nil {
		t.Fatalf("accepted %q, whose %s does not validate: %v", in, op, aerr)
	}
	b, err := json.Marshal(v.Payload)
	if err != nil || !utf8.Valid(b) {
		t.Fatalf("accepted %q, whose %s payload does not encode in UTF-8: %v %q", in, op, err, b)
	}
	if ptr, found := wire.NumberOutOfRange(b); found {
		t.Fatalf("accepted %q, whose %s payload holds a number out of range at %s", in, op, ptr)
	}
}

package alertmanager

import (
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// FuzzParse: whatever webhook body the route is sent, Parse never panics;
// a refusal is a 4xx of the error catalog (never a 500); and every report
// of a payload it accepts is valid UTF-8 with numbers a float64 holds,
// and passes the ops validation of each operation the alert tracker makes
// of it (create and update when firing, close when resolved), with
// payloads that encode to I-JSON and content that hashes.
func FuzzParse(f *testing.F) {
	one := `{"status":"firing","labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f"`
	for _, s := range []string{
		sampleAM, sampleGrafana,
		`{"alerts":[` + one + `}]}`,
		`{"alerts":[{"status":"resolved","labels":{"alertname":"A","severity":"page"},"startsAt":"2025-01-01T00:00:00Z","endsAt":"2025-01-01T00:05:00.5+02:00"}]}`,
		`{"alerts":[` + one + `,"annotations":{"summary":" ","description":"d"},"imageURL":"https://x/y.png","values":{"B":1.5e300,"C":null}}],"title":"T","commonLabels":{"k":""}}`,
		`{"alerts":[` + one + `,"values":{"B":1e400}}]}`,
		`{"alerts":[{"status":"firing","labels":{},"startsAt":"1969-12-31T23:59:59Z"}]}`,
		`{"alerts":[` + one + `}],"someNewField":{"x":[1,"\u00e9"]},"truncatedAlerts":3}`,
		`{"alerts":[]}`, `{"alerts":[` + one + `,"Status":"x"}]}`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, reps, err := Parse(body, now)
		if err != nil {
			checkCatalog4xx(t, body, err)
			return
		}
		if p == nil || len(reps) != len(p.Alerts) || len(reps) == 0 {
			t.Fatalf("accepted %q with %d reports", body, len(reps))
		}
		for _, r := range reps {
			if r.Fingerprint == "" || !utf8.ValidString(r.Fingerprint) {
				t.Fatalf("accepted %q with fingerprint %q", body, r.Fingerprint)
			}
			if r.Resolved {
				trackerOp(t, body, ops.EventClose, r.Event)
				continue
			}
			trackerOp(t, body, ops.EventCreate, r.Event)
			trackerOp(t, body, ops.EventUpdate, r.Event)
			if _, err := json.Marshal(r.Content, json.Deterministic(true)); err != nil {
				t.Fatalf("accepted %q, whose content does not hash (every resend would notify): %v", body, err)
			}
		}
	})
}

// checkCatalog4xx asserts a refusal answered as the client's fault.
func checkCatalog4xx(t *testing.T, in any, err *apierr.Error) {
	t.Helper()
	if s := err.Status(); s < 400 || s > 499 || apierr.Lookup(err.Code).Code != err.Code {
		t.Fatalf("%q refused with %v: status %d, or not in the catalog", in, err, s)
	}
}

// trackerOp validates req as the alert tracker shapes it for op (its ids
// set, the times it drops dropped), and checks the payload is I-JSON.
func trackerOp(t *testing.T, in any, op ops.Name, req ops.EventRequest) {
	t.Helper()
	ch, opID, id := "0123456789ABCDEFGHJKMNPQRS", "alertmanager:h:1", "0123456789abcdef0123456789abcdef"
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

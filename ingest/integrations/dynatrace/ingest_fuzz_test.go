package dynatrace

import (
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// FuzzIngest: whatever EventIngest body the route is sent, Decode and
// Validate never panic; a refusal is a syntax error or constraint
// violations that each name a path and say why; and a report they accept
// (and the route records: valid metadata and timestamps) is valid UTF-8
// with numbers a float64 holds, and maps to operations that pass the ops
// validation the route applies: create and update of a problem's Event as
// the alert tracker shapes them, create and close of an info event, for
// the channel as a whole and for a selected Thing.
func FuzzIngest(f *testing.F) {
	for _, s := range []string{
		`{"eventType":"ERROR_EVENT","title":"x"}`,
		`{"eventType":"AVAILABILITY_EVENT","title":" Host down ","timeout":1000,"entitySelector":"type(HOST),entityName.equals(web-1)"}`,
		`{"eventType":"WARNING","title":"x","startTime":1800000000000,"endTime":1800000005000}`,
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"n":1.50,"b":true,"s":"v","z":null,"dt.event.description":"d"}}`,
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"dt.event.description":" "}}`,
		`{"eventType":"ERROR_EVENT","title":"x","properties":{"dt.event.description":"\t\n"}}`,
		`{"eventType":"CUSTOM_DEPLOYMENT","title":"deploy","properties":{"dt.event.deployment.name":"v1","dt.event.is_rootcause_relevant":"TRUE"}}`,
		`{"eventType":"CUSTOM_ALERT","title":"x","properties":{"dt.event.unknown":"v"}}`,
		`{"eventType":"CUSTOM_INFO","title":"x","properties":{"v":1e400}}`,
		`{"eventType":"CUSTOM_INFO","title":"x","startTime":-1,"timeout":0}`,
		`{"eventType":"custom_info","title":"","Title":"y","properties":[]}`,
		`{}`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, vs, err := Decode(body)
		if err != nil {
			if in != nil || vs != nil {
				t.Fatalf("%q: a syntax error with a result", body)
			}
			return
		}
		if vs == nil {
			var rep *Report
			if rep, vs = Validate(in, now); vs == nil {
				checkReport(t, body, rep)
				return
			}
		}
		for _, v := range vs {
			if v.Path == "" || v.Message == "" {
				t.Fatalf("%q refused with violations %+v", body, vs)
			}
		}
	})
}

// checkReport asserts that an accepted report maps to operations the
// route can append. It builds them as the route's dtReport does.
func checkReport(t *testing.T, in []byte, rep *Report) {
	t.Helper()
	if rep.Title == "" || !utf8.ValidString(rep.Title) {
		t.Fatalf("accepted %q with title %q", in, rep.Title)
	}
	for _, p := range rep.Properties {
		if !utf8.ValidString(p.Key) || !utf8.ValidString(p.Value) {
			t.Fatalf("accepted %q with property %q", in, p)
		}
	}
	if _, err := json.Marshal([]any{rep.EventType, rep.Title, rep.Properties}, json.Deterministic(true)); err != nil {
		t.Fatalf("accepted %q, whose content does not hash: %v", in, err)
	}
	if rep.MetadataError != "" || !rep.TimestampsValid(now) {
		return // answered per Thing as INVALID_METADATA or INVALID_TIMESTAMPS; nothing is appended
	}
	for _, thing := range []string{"", "0123456789abcdef0123456789abcdef"} {
		start := wire.Millis(rep.Start)
		msg := rep.Description()
		if msg == "" {
			msg = rep.Title
		}
		title, message, sev := ops.Truncate(rep.Title, 256), ops.Truncate(msg, 512), rep.Severity()
		ev := ops.EventRequest{Title: &title, Message: &message, Severity: &sev, EventTime: &start, StartedAt: &start,
			Tags: []string{"dynatrace", rep.EventType}, Attrs: rep.Attrs()}
		if d := rep.Description(); d != "" {
			ev.Description = &d
		}
		if thing != "" {
			ev.ThingID = &thing
		}
		ch, id := "0123456789ABCDEFGHJKMNPQRS", "0123456789abcdef0123456789abcdef"
		ev.ChannelID = &ch
		if rep.Problem {
			status, opID := "open", "dynatrace:h:1"
			ev.Status = &status
			create := ev
			create.OpID = &opID
			appendable(t, in, ops.EventCreate, &create)
			update := ev
			update.EventID, update.StartedAt = &id, nil
			appendable(t, in, ops.EventUpdate, &update)
			continue
		}
		status := "info"
		ev.Status = &status
		appendable(t, in, ops.EventCreate, &ev)
		end := start
		closeReq := ops.EventRequest{ChannelID: &ch, EventID: &id, Status: &status, Message: ev.Message,
			Severity: ev.Severity, EventTime: &end, EndedAt: &end}
		appendable(t, in, ops.EventClose, &closeReq)
	}
}

// appendable validates req as op and checks its payload is I-JSON.
func appendable(t *testing.T, in []byte, op ops.Name, req *ops.EventRequest) {
	t.Helper()
	v, aerr := ops.ValidateIntegrationEvent(op, req)
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

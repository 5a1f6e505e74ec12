package ops

import (
	"strconv"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// Test fixtures: a valid channel, its password and a fixed clock.
const (
	cid     = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	pw      = "correct-horse"
	testNow = int64(1713750000000)
	day     = int64(24 * 60 * 60 * 1000)
)

// Minimal valid bodies per route; cases derive from them with set and del.
var (
	eventCreateBody  = `{"channel_id":"` + cid + `","password":"` + pw + `","title":"Deploy","status":"running","message":"started","severity":"normal","event_time":1713750000000}`
	eventUpdateBody  = `{"channel_id":"` + cid + `","password":"` + pw + `","event_id":"evt-1","status":"publishing","message":"pushed","severity":"normal","event_time":1713750300000}`
	eventCloseBody   = `{"channel_id":"` + cid + `","password":"` + pw + `","event_id":"evt-1","status":"success","message":"done","severity":"normal","event_time":1713750600000}`
	thingCreateBody  = `{"channel_id":"` + cid + `","password":"` + pw + `","observed_at":1713750000000}`
	thingUpdateBody  = `{"channel_id":"` + cid + `","password":"` + pw + `","thing_id":"nas-1","observed_at":1713750600000}`
	thingArchiveBody = `{"channel_id":"` + cid + `","password":"` + pw + `","thing_id":"nas-1","observed_at":1713751200000}`
	thingDeleteBody  = `{"channel_id":"` + cid + `","password":"` + pw + `","thing_id":"nas-1","observed_at":1713751800000}`
	messageBody      = `{"channel_id":"` + cid + `","password":"` + pw + `","title":"Disk failed"}`
)

// baseBody returns the minimal valid body of op.
func baseBody(op Name) string {
	return map[Name]string{
		EventCreate: eventCreateBody, EventUpdate: eventUpdateBody, EventClose: eventCloseBody,
		ThingCreate: thingCreateBody, ThingUpdate: thingUpdateBody, ThingArchive: thingArchiveBody, ThingDelete: thingDeleteBody,
		MessageCreate: messageBody,
	}[op]
}

// set returns base with members replaced or added: kv is name, raw JSON
// value pairs.
func set(base string, kv ...string) string {
	m := members(base)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = jsontext.Value(kv[i+1])
	}
	return encode(m)
}

// del returns base without the named members.
func del(base string, names ...string) string {
	m := members(base)
	for _, n := range names {
		delete(m, n)
	}
	return encode(m)
}

func members(body string) map[string]jsontext.Value {
	var m map[string]jsontext.Value
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		panic("bad test body " + body + ": " + err.Error())
	}
	return m
}

func encode(m map[string]jsontext.Value) string {
	b, err := json.Marshal(m, json.Deterministic(true))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// q returns s as a JSON string.
func q(s string) string {
	b, err := jsontext.AppendQuote(nil, s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// list returns a JSON array of n distinct strings "p0", "p1", ...
func list(prefix string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = q(prefix + strconv.Itoa(i))
	}
	return "[" + strings.Join(items, ",") + "]"
}

// validateBody decodes body strictly, as ingest does, and validates it.
func validateBody(op Name, body []byte, now int64) (*Validated, *apierr.Error) {
	switch op.Kind() {
	case KindEvent:
		var r EventRequest
		if err := wire.Decode(body, &r); err != nil {
			return nil, err
		}
		return ValidateEvent(op, &r, now)
	case KindThing:
		var r ThingRequest
		if err := wire.Decode(body, &r); err != nil {
			return nil, err
		}
		return ValidateThing(op, &r, now)
	default:
		var r MessageRequest
		if err := wire.Decode(body, &r); err != nil {
			return nil, err
		}
		return ValidateMessage(&r, now)
	}
}

// A rule case: one request and its expected outcome. status is what the
// route answers: 200 for an accepted request, else the code's status.
type ruleCase struct {
	name   string
	op     Name
	body   string
	status int
	code   apierr.Code // empty when accepted
	field  string      // must appear in the error detail
	checks []check
}

type check func(t *testing.T, v *Validated)

func ok(name string, op Name, body string, checks ...check) ruleCase {
	return ruleCase{name: name, op: op, body: body, status: 200, checks: checks}
}

func bad(name string, op Name, body string, code apierr.Code, field string) ruleCase {
	return ruleCase{name: name, op: op, body: body, status: 400, code: code, field: field}
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			v, err := validateBody(c.op, []byte(c.body), testNow)
			status, code := 200, apierr.Code("")
			if err != nil {
				status, code = err.Status(), err.Code
			}
			if status != c.status || code != c.code {
				t.Fatalf("got %d %q (%v), want %d %q\nbody: %s", status, code, err, c.status, c.code, c.body)
			}
			if err != nil {
				if !strings.Contains(err.Detail, c.field) {
					t.Errorf("detail %q does not name field %q", err.Detail, c.field)
				}
				return
			}
			for _, ch := range c.checks {
				ch(t, v)
			}
		})
	}
}

// payloadJSON marshals v's payload as it goes into the log.
func payloadJSON(t *testing.T, v *Validated) map[string]jsontext.Value {
	t.Helper()
	b, err := json.Marshal(v.Payload, json.Deterministic(true))
	if err != nil {
		t.Fatalf("marshal payload: %v", err)
	}
	return members(string(b))
}

// member checks one member of the marshalled payload against raw JSON.
func member(name, want string) check {
	return func(t *testing.T, v *Validated) {
		t.Helper()
		got, ok := payloadJSON(t, v)[name]
		if !ok {
			t.Errorf("payload has no %s, want %s", name, want)
			return
		}
		if string(got) != want {
			t.Errorf("payload %s = %s, want %s", name, got, want)
		}
	}
}

// absent checks that the payload omits the named member.
func absent(name string) check {
	return func(t *testing.T, v *Validated) {
		t.Helper()
		if got, ok := payloadJSON(t, v)[name]; ok {
			t.Errorf("payload %s = %s, want it omitted", name, got)
		}
	}
}

// validated checks a field of the Validated result.
func validated(what string, get func(*Validated) string, want string) check {
	return func(t *testing.T, v *Validated) {
		t.Helper()
		if got := get(v); got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
}

func channelIs(want string) check {
	return validated("ChannelID", func(v *Validated) string { return v.ChannelID }, want)
}
func passwordIs(want string) check {
	return validated("Password", func(v *Validated) string { return v.Password }, want)
}
func opIDIs(want string) check {
	return validated("OpID", func(v *Validated) string { return v.OpID }, want)
}
func entityIs(want string) check {
	return validated("EntityID", func(v *Validated) string { return v.EntityID }, want)
}

// refusedIfNew checks Validated.RefuseIfNew's code ("" for none).
func refusedIfNew(want apierr.Code) check {
	return validated("RefuseIfNew", func(v *Validated) string {
		if v.RefuseIfNew == nil {
			return ""
		}
		return string(v.RefuseIfNew.Code)
	}, string(want))
}
func thingIs(want string) check {
	return validated("ThingID", func(v *Validated) string { return v.ThingID }, want)
}

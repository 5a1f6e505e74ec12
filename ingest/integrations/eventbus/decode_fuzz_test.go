package eventbus

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// fuzzChannel is the channel the fuzzed batches are recorded in; "bus" is
// its name.
const fuzzChannel = "0123456789ABCDEFGHJKMNPQRS"

// FuzzDecode: whatever body the event bus route is sent, Decode never
// panics; a refusal is one of the provider's 400/403 codes with a message;
// and a batch it accepts is valid UTF-8 with numbers a float64 holds all
// the way through: every CloudEvent translates into a create and a close
// that pass the ops validation the route applies (with and without the
// Thing link), whose payloads encode to I-JSON, and whose answer encodes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		seedBody, seedLower,
		`{"eventList":[{"source":"s","type":"t","id":"1","subject":"host-1"}],"eventBusId":"bus"}`,
		`{"eventList":[{"source":"s","type":"t","data":{"message":"m","a":{"b":[1,2],"c":null},"n":1.5e300}}],"eventBusId":"bus"}`,
		`{"eventList":[{"source":"s","type":"t","time":"2023-01-01T00:00:00+0800","level":"major","eventAliasEn":" T "}],"eventBusId":"` + fuzzChannel + `"}`,
		`{"eventList":[{"source":"s","type":"t","time":"1615430559","specversion":"1.0","datacontenttype":"application/json; charset=utf-8"}],"eventBusId":"bus"}`,
		`{"eventList":[{"source":"s","type":"t","subject":"0123456789abcdef0123456789abcdef","eventBusName":"bus"}]}`,
		`{"eventList":[{"source":"s","type":"t","data":{"k":1e400}}]}`,
		`{"eventList":[{"source":"s","type":"t","data":"{\"k\":\"\\ud800\"}"}]}`,
		`{"eventList":[{"source":"s","type":"t","Source":"x"}]}`,
		`{"eventList":[]}`, `{"eventList":[1]}`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	received := time.UnixMilli(1_760_000_000_000)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Decode(body)
		if err != nil {
			checkBusError(t, body, err)
			return
		}
		if b == nil || len(b.Events) == 0 || len(b.Events) > MaxEvents {
			t.Fatalf("accepted %q as %+v", body, b)
		}
		if err := b.ResolveBus(fuzzChannel, "bus"); err != nil {
			checkBusError(t, body, err)
		}
		for i := range b.Events {
			e := &b.Events[i]
			if e.ID == "" {
				e.ID = "generated"
			}
			checkOccurrence(t, body, e, received)
			if _, err := json.Marshal(e.Response(fuzzChannel, "bus", received)); err != nil {
				t.Fatalf("accepted %q, whose answer does not encode: %v", body, err)
			}
		}
	})
}

// checkBusError asserts a refusal the route can answer as it is.
func checkBusError(t *testing.T, body []byte, err *Error) {
	t.Helper()
	switch err.Code {
	case InvalidParameter, InvalidParameterValue, AuthorizationError:
	default:
		t.Fatalf("%q refused with %v, not a 400 or 403 code", body, err)
	}
	if err.Reason == "" {
		t.Fatalf("%q refused without a reason: %+v", body, err)
	}
}

// checkOccurrence asserts that e, accepted, is recorded by operations the
// route can append.
func checkOccurrence(t *testing.T, in any, e *Event, received time.Time) {
	t.Helper()
	o := e.Occurrence(fuzzChannel, received)
	create, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, &o.Create)
	if aerr != nil {
		t.Fatalf("accepted %q, whose create does not validate: %v\n%+v", in, aerr, e)
	}
	checkPayload(t, in, create)
	if o.Create.ThingID != nil {
		unlinked := o.Create
		unlinked.ThingID = nil
		v, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, &unlinked)
		if aerr != nil {
			t.Fatalf("accepted %q, whose unlinked create does not validate: %v", in, aerr)
		}
		checkPayload(t, in, v)
	}
	closeOp, aerr := ops.ValidateIntegrationEvent(ops.EventClose, &o.Close)
	if aerr != nil {
		t.Fatalf("accepted %q, whose close does not validate: %v", in, aerr)
	}
	checkPayload(t, in, closeOp)
}

// checkPayload asserts that an operation's payload is what the log may
// hold: it encodes, in UTF-8, with every number within a float64.
func checkPayload(t *testing.T, in any, v *ops.Validated) {
	t.Helper()
	b, err := json.Marshal(v.Payload)
	if err != nil {
		t.Fatalf("accepted %q, whose payload does not encode: %v", in, err)
	}
	if !utf8.Valid(b) {
		t.Fatalf("accepted %q, whose payload is not UTF-8: %q", in, b)
	}
	if p, found := wire.NumberOutOfRange(b); found {
		t.Fatalf("accepted %q, whose payload holds a number out of range at %s: %s", in, p, b)
	}
}

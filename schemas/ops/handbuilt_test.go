package ops

import (
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// Issue 12: requests that integrations and compat routes build by hand
// (from headers, query strings, forms, a tool's payload) never passed
// through wire.Decode, so the validators themselves refuse what it would:
// invalid UTF-8 in any text member, and numbers in attrs or metadata that
// a float64 cannot hold (stored, such a number became Infinity and every
// read of the entity failed).

// handBuilt returns valid requests of each kind, built without JSON.
func handBuilt() (*EventRequest, *ThingRequest, *MessageRequest) {
	ms := wire.Millis(testNow)
	ev := &EventRequest{ChannelID: ptr(cid), Title: ptr("Deploy"), Status: ptr("running"), Message: ptr("started"), Severity: ptr("normal"), EventTime: &ms}
	th := &ThingRequest{ChannelID: ptr(cid), Password: ptr(pw), ObservedAt: &ms}
	msg := &MessageRequest{ChannelID: ptr(cid), Password: ptr(pw), Title: ptr("Disk failed")}
	return ev, th, msg
}

func TestHandBuiltRequestsRefuseHugeNumbers(t *testing.T) {
	for _, raw := range []string{`{"v":1e400}`, `{"o":{"v":-1e309}}`, `{"v":1` + strings.Repeat("0", 400) + `}`} {
		ev, th, msg := handBuilt()
		ev.Attrs, th.Attrs, msg.Metadata = jsontext.Value(raw), jsontext.Value(raw), jsontext.Value(raw)
		ev2, th2, _ := handBuilt()
		ev2.Metadata, th2.Metadata = jsontext.Value(`{"m":2e308}`), jsontext.Value(`{"m":-1e999}`)
		for name, validate := range map[string]func() *apierr.Error{
			"event attrs":    func() *apierr.Error { _, err := ValidateIntegrationEvent(EventCreate, ev); return err },
			"thing attrs":    func() *apierr.Error { _, err := ValidateThing(ThingCreate, th, testNow); return err },
			"message meta":   func() *apierr.Error { _, err := ValidateMessage(msg, testNow); return err },
			"event metadata": func() *apierr.Error { _, err := ValidateIntegrationEvent(EventCreate, ev2); return err },
			"thing metadata": func() *apierr.Error {
				_, err := ValidateThing(ThingUpdate, &ThingRequest{ChannelID: th2.ChannelID, Password: th2.Password, ThingID: ptr("t"), ObservedAt: th2.ObservedAt, Metadata: th2.Metadata}, testNow)
				return err
			},
		} {
			err := validate()
			if name == "message meta" && strings.Contains(raw, `"o"`) {
				// a nested object is refused as such in metadata
				if err == nil || err.Status() != 400 {
					t.Errorf("%s %s: %v, want a 400", name, raw, err)
				}
				continue
			}
			if err == nil || err.Code != apierr.InvalidJSONData || !strings.Contains(err.Detail, "out of range") {
				t.Errorf("%s %.30s: %v, want invalid_json_data out of range", name, raw, err)
			}
		}
	}
	// What fits is kept as written.
	ev, _, msg := handBuilt()
	ev.Attrs, msg.Metadata = jsontext.Value(`{"v":1.7976931348623157e308,"t":1e-400}`), jsontext.Value(`{"v":-1e300}`)
	if _, err := ValidateIntegrationEvent(EventCreate, ev); err != nil {
		t.Fatalf("largest float64 refused: %v", err)
	}
	if _, err := ValidateMessage(msg, testNow); err != nil {
		t.Fatalf("-1e300 refused: %v", err)
	}
}

// TestHandBuiltRequestsRefuseInvalidUTF8 sets every text member of each
// request type in turn (found by reflection, so a member added later is
// covered) to invalid UTF-8, and expects a 400 naming it.
func TestHandBuiltRequestsRefuseInvalidUTF8(t *testing.T) {
	ev, th, msg := handBuilt()
	for _, c := range []struct {
		req      any
		validate func() (*Validated, *apierr.Error)
	}{
		{ev, func() (*Validated, *apierr.Error) { return ValidateIntegrationEvent(EventCreate, ev) }},
		{th, func() (*Validated, *apierr.Error) { return ValidateThing(ThingCreate, th, testNow) }},
		{msg, func() (*Validated, *apierr.Error) { return ValidateMessage(msg, testNow) }},
	} {
		if _, err := c.validate(); err != nil {
			t.Fatalf("%T: the valid request is refused: %v", c.req, err)
		}
		v := reflect.ValueOf(c.req).Elem()
		for i := range v.NumField() {
			f, sf := v.Field(i), v.Type().Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			old := reflect.New(f.Type()).Elem()
			old.Set(f)
			bad := "ok\xffok"
			switch {
			case sf.Type == reflect.TypeFor[*string]():
				f.Set(reflect.ValueOf(&bad))
			case sf.Type == reflect.TypeFor[[]string]():
				f.Set(reflect.ValueOf([]string{"fine", bad}))
			default:
				continue
			}
			if _, isEvent := c.req.(*EventRequest); isEvent && name == "password" {
				f.Set(old) // an integration event carries no password at all
				continue
			}
			_, err := c.validate()
			if err == nil || err.Status() != 400 || !strings.Contains(err.Detail, name) {
				t.Errorf("%T.%s with invalid UTF-8: %v, want a 400 naming %s", c.req, sf.Name, err, name)
			}
			f.Set(old)
		}
	}
}

func TestAttrsAndMetadataRefuseInvalidUTF8(t *testing.T) {
	for _, raw := range []string{"{\"k\":\"\xff\"}", "{\"\xff\":1}", `{"k":"\ud800"}`, "{\"o\":{\"k\":\"a\xe2\x82\"}}"} {
		ev, th, msg := handBuilt()
		ev.Attrs, th.Attrs, msg.Metadata = jsontext.Value(raw), jsontext.Value(raw), jsontext.Value(raw)
		if _, err := ValidateIntegrationEvent(EventCreate, ev); err == nil || err.Status() != 400 {
			t.Errorf("event attrs %q: %v", raw, err)
		}
		if _, err := ValidateThing(ThingCreate, th, testNow); err == nil || err.Status() != 400 {
			t.Errorf("thing attrs %q: %v", raw, err)
		}
		if _, err := ValidateMessage(msg, testNow); err == nil || err.Status() != 400 {
			t.Errorf("message metadata %q: %v", raw, err)
		}
	}
}

package eventbus

import (
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Issue 12: the event bus body and a CloudEvent's data are held to the
// gateway's wire rules (valid UTF-8, numbers a float64 can hold), and an
// Event built from headers (the CloudEvents route) is refused by Check when
// any of its text is not UTF-8.

func TestDecodeRefusesHugeNumbers(t *testing.T) {
	for _, c := range []struct{ body, field string }{
		{`{"eventList":[{"source":"s","type":"t","data":{"k":1e400}}]}`, "eventList[0].data.k"},
		{`{"eventList":[{"source":"s","type":"t"},{"source":"s","type":"t","data":{"a":{"b":[1,-1e309]}}}]}`, "eventList[1].data.a.b"},
		{`{"eventList":[{"source":"s","type":"t","time":1` + strings.Repeat("0", 400) + `}]}`, "eventList[0].time"},
		{`{"eventList":[{"source":"s","type":"t","data":"{\"k\":2e308}"}]}`, "eventList[0].data.k"},
	} {
		_, err := Decode([]byte(c.body))
		if err == nil || err.Code != InvalidParameterValue || !strings.Contains(err.Message(), c.field) || !strings.Contains(err.Message(), "out of range") {
			t.Errorf("%.60s: %v, want INVALID_PARAMETER_VALUE naming %s", c.body, err, c.field)
		}
	}
	if _, err := Decode([]byte(`{"eventList":[{"source":"s","type":"t","data":{"k":1.7976931348623157e308,"z":1e-999}}]}`)); err != nil {
		t.Fatalf("numbers within range refused: %v", err)
	}
}

func TestNormalizeDataRefusesInvalidText(t *testing.T) {
	for _, raw := range []string{"{\"k\":\"\xff\"}", "{\"\xc0\xaf\":1}", `{"k":"\ud800"}`, `{"k":{"j":"\udc00"}}`, `"{\"k\":\"\\ud800\"}"`} {
		if v, err := NormalizeData(jsontext.Value(raw), "data"); err == nil {
			t.Errorf("NormalizeData(%q) = %s, want an error", raw, v)
		}
	}
}

func TestCheckRefusesInvalidUTF8(t *testing.T) {
	good := func() Event {
		return Event{ID: "i", Source: "s", Type: "t", SpecVersion: "1.0", Subject: "sub", Region: "r", Time: time.Unix(1, 0),
			TimeText: "1970-01-01T00:00:01Z", Extensions: map[string]string{"x": "y"}}
	}
	e := good()
	if err := e.Check(""); err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string]func(e *Event){
		"id":        func(e *Event) { e.ID = "a\xff" },
		"source":    func(e *Event) { e.Source = "\xe2\x82" },
		"type":      func(e *Event) { e.Type = "\xed\xa0\x80" },
		"subject":   func(e *Event) { e.Subject = "\xff" },
		"region":    func(e *Event) { e.Region = "\xff" },
		"time":      func(e *Event) { e.TimeText = "\xff" },
		"x":         func(e *Event) { e.Extensions["x"] = "\xff" },
		"extension": func(e *Event) { e.Extensions["\xff"] = "y" },
	} {
		e := good()
		set(&e)
		err := e.Check("eventList[0]")
		if err == nil || err.Code != InvalidParameterValue || !strings.Contains(err.Message(), "UTF-8") {
			t.Errorf("%s: %v, want INVALID_PARAMETER_VALUE about UTF-8", name, err)
		}
	}
}

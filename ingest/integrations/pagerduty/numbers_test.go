package pagerduty

import (
	"strings"
	"testing"
)

// Issue 12: a number a float64 cannot hold is refused wherever it is,
// unknown members included.
func TestDecodeRefusesHugeNumbers(t *testing.T) {
	for _, c := range []struct{ body, path string }{
		{`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info","custom_details":{"v":1e400}}}`, "payload.custom_details.v"},
		{`{"routing_key":"k","event_action":"trigger","unknown":[-1e309]}`, "unknown.0"},
	} {
		_, inv := Decode([]byte(c.body))
		if inv == nil || len(inv.Errors) != 1 || !strings.Contains(inv.Errors[0], "'"+c.path+"'") || !strings.Contains(inv.Errors[0], "out of range") {
			t.Errorf("%.60s: %v, want one error naming %s", c.body, inv, c.path)
		}
	}
	if _, inv := Decode([]byte(`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info","custom_details":{"v":-1.5e300}}}`)); inv != nil {
		t.Fatalf("a number within range refused: %v", inv)
	}
}

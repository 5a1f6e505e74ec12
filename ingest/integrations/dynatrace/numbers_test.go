package dynatrace

import (
	"strings"
	"testing"
)

// Issue 12: a number a float64 cannot hold is a violation naming it,
// wherever it is in the body (properties keep numbers as text, but every
// JSON route holds its body to the same rule).
func TestDecodeRefusesHugeNumbers(t *testing.T) {
	for _, c := range []struct{ body, path string }{
		{`{"eventType":"CUSTOM_INFO","title":"x","properties":{"v":1e400}}`, "properties.v"},
		{`{"eventType":"CUSTOM_INFO","title":"x","timeout":-1e309}`, "timeout"},
		{`{"eventType":"CUSTOM_INFO","title":"x","startTime":1` + strings.Repeat("0", 400) + `}`, "startTime"},
	} {
		_, vs, err := Decode([]byte(c.body))
		if err != nil || len(vs) != 1 || vs[0].Path != c.path || !strings.Contains(vs[0].Message, "out of range") {
			t.Errorf("%.60s: %v %v, want one violation at %s", c.body, vs, err, c.path)
		}
	}
	if _, vs := validate(t, `{"eventType":"CUSTOM_INFO","title":"x","properties":{"v":1.5e300}}`); vs != nil {
		t.Fatalf("a number within range refused: %v", vs)
	}
}

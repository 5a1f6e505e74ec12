package fold

import (
	"testing"

	"github.com/go-json-experiment/json"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func mustCanon(t *testing.T, s string) string {
	t.Helper()
	var a Attrs
	if err := jsonUnmarshal(s, &a); err != nil {
		t.Fatal(err)
	}
	b, err := JSON(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

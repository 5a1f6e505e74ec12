package wire

import (
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// A refusal names the member it is about, even one whose name is empty
// (FuzzIngest found `{"":1E700}` refused with an empty path).
func TestDotted(t *testing.T) {
	for _, c := range []struct {
		p    jsontext.Pointer
		want string
	}{
		{"", "body"},
		{"/attrs/cpu", "attrs.cpu"},
		{"/eventList/0/data", "eventList.0.data"},
		{"/", `""`},
		{"/attrs/", `attrs.""`},
	} {
		if got := Dotted(c.p); got != c.want {
			t.Errorf("Dotted(%q) = %q, want %q", c.p, got, c.want)
		}
	}
}

package ops

import (
	"slices"
	"strings"
	"testing"
)

// TestFitTags: a tool's tags are fitted to the rules instead of refusing
// the message: cut to 64 characters (not bytes), trimmed, blanks and
// repeats left out, the first 32 kept; what comes out validates.
func TestFitTags(t *testing.T) {
	long := strings.Repeat("界", 70)
	var many []string
	for i := range 40 {
		many = append(many, strings.Repeat("t", i+1))
	}
	for _, c := range []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{" disk ", "", "disk", long}, []string{"disk", strings.Repeat("界", 64)}},
		{[]string{strings.Repeat("a", 63) + "  b"}, []string{strings.Repeat("a", 63)}},
		{many, many[:32]},
	} {
		got := FitTags(c.in)
		if !slices.Equal(got, c.want) {
			t.Errorf("FitTags(%d tags) = %q, want %q", len(c.in), got, c.want)
		}
		if _, aerr := tags(got); aerr != nil {
			t.Errorf("FitTags(%d tags) does not validate: %v", len(c.in), aerr)
		}
	}
}

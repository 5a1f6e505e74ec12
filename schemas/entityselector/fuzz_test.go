package entityselector

import (
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, an error points into (or just past) the
// input, and an accepted selector's canonical form parses to the same tree.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP),entityName(cloud-burst-hosts))`,
		`type(SERVICE),entityName.equals(BookingService)`,
		`entityId("a","b"),not(tag("k:v")),caseSensitive(entityName.startsWith("W"))`,
		`type(HOST_GROUP),toRelationships.isInstanceOf(type(HOST),entityName.in("a, b","~"q~" ~~"))`,
		`type(HOST),mzName("x")`,
		`type("unterminated`,
		`not(not(not(type(A))))`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			if sel != nil || err.Message == "" || err.Offset < 0 || err.Offset > max(len(s), MaxLen) {
				t.Fatalf("Parse(%q): selector %v, error %+v", s, sel, err)
			}
			return
		}
		if len(sel.Criteria) == 0 {
			t.Fatalf("Parse(%q) accepted an empty selector", s)
		}
		canon := sel.String()
		if len(canon) > MaxLen {
			return // quoting grew it past the limit
		}
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q: %v", canon, s, err)
		}
		if !reflect.DeepEqual(again, sel) || again.String() != canon {
			t.Fatalf("canonical %q of %q parses to %s", canon, s, again)
		}
	})
}

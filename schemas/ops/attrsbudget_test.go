package ops

import (
	"strings"
	"testing"
)

// TestAttrsBudget: members are counted as encoded (quotes, escapes, colon
// and comma); one that does not fit is refused and marks the budget cut,
// and a smaller one after it may still fit.
func TestAttrsBudget(t *testing.T) {
	b := NewAttrsBudget(20)
	if q := b.TakeString("a", `x"y`); string(q) != `"x\"y"` { // 3 + 6 + 2 = 11
		t.Fatalf("first member: %q", q)
	}
	if b.Take("long", []byte(strings.Repeat("1", 4))) || !b.Cut() { // 6 + 4 + 2 = 12 > 9
		t.Fatal("a member over what is left was taken, or not counted as cut")
	}
	if !b.Take("b", []byte("true")) { // 3 + 4 + 2 = 9
		t.Fatal("a member that fits exactly was refused")
	}
	if b.TakeString("", "") != nil { // 2 + 2 + 2 > 0
		t.Fatal("a member past the end was taken")
	}
	if b.TakeString("k", "\xff") != nil {
		t.Fatal("invalid UTF-8 was taken")
	}
}

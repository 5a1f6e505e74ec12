package ids

import (
	"strings"
	"testing"
)

func TestChannelIDRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewChannelID()
		if len(id) != ChannelIDLen {
			t.Fatalf("len(%q) = %d", id, len(id))
		}
		got, ok := NormalizeChannelID(strings.ToLower(id))
		if !ok || got != id {
			t.Fatalf("NormalizeChannelID(lower(%q)) = %q, %v", id, got, ok)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestNormalizeChannelID(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"o1arz3ndektsv4rrffq69g5fav", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"0IARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"0LARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"01ARZ3NDEKTSV4RRFFQ69G5FA", "", false},   // 25 symbols
		{"01ARZ3NDEKTSV4RRFFQ69G5FAVV", "", false}, // 27 symbols
		{"01ARZ3NDEKTSV4RRFFQ69G5FAU", "", false},  // U is not Crockford
		{"81ARZ3NDEKTSV4RRFFQ69G5FAV", "", false},  // more than 128 bits
		{"01ARZ3NDEKTSV4RRFFQ69G5F-V", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := NormalizeChannelID(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeChannelID(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestEntityAndOpIDs(t *testing.T) {
	if !ValidEntityID("8a1fc4b3d9f04fd2857f92f66f7cc5d1") || !ValidEntityID("db:replica-1_lag") {
		t.Error("valid entity ids rejected")
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>", strings.Repeat("a", 65), "é"} {
		if ValidEntityID(bad) {
			t.Errorf("ValidEntityID(%q) = true", bad)
		}
	}
	if !ValidOpID(strings.Repeat("a", 128)) || ValidOpID(strings.Repeat("a", 129)) {
		t.Error("op_id length bound wrong")
	}
	a := DeriveEntityID("C", "event.create", "op-1")
	if a != DeriveEntityID("C", "event.create", "op-1") || len(a) != 32 {
		t.Errorf("DeriveEntityID not deterministic or wrong length: %q", a)
	}
	if a == DeriveEntityID("C", "thing.create", "op-1") || a == DeriveEntityID("D", "event.create", "op-1") {
		t.Error("DeriveEntityID ignores route or channel")
	}
}

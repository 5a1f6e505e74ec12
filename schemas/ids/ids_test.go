package ids

import (
	"strconv"
	"strings"
	"testing"
	"time"
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
		// PushGo's layout: the spare bits last (its ids' last symbol is
		// one of 0 4 8 C G M R W).
		{"ZZZZZZZZZZZZZZZZZZZZZZZZZ0", "ZZZZZZZZZZZZZZZZZZZZZZZZZ0", true},
		{"8ZZZZZZZZZZZZZZZZZZZZZZZZW", "8ZZZZZZZZZZZZZZZZZZZZZZZZW", true},
		{"ZZZZZZZZZZZZZZZZZZZZZZZZZ1", "", false},
		// Grouped as the apps show ids, or pasted with white space.
		{"01AR-Z3ND-EKTS-V4RR-FFQ6-9G5F-AV", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{" 01arz3ndektsv4rrffq69g5fav\n", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"01AR Z3ND\tEKTS V4RR FFQ6 9G5F AV", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"01AR-Z3ND-EKTS-V4RR-FFQ6-9G5F-AVX", "", false},
		{"01AR-Z3ND-EKTS-V4RR-FFQ6-9G5F-A", "", false},
		{"01AR.Z3ND-EKTS-V4RR-FFQ6-9G5F-AV", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := NormalizeChannelID(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeChannelID(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
		if canon := CanonicalChannelID(c.in); canon != (ok && got == c.in) {
			t.Errorf("CanonicalChannelID(%q) = %v; NormalizeChannelID gives %q, %v", c.in, canon, got, ok)
		}
	}
}

// TestCanonicalChannelIDIsNormalizeUnchanged holds CanonicalChannelID to
// its contract on every string of the id's length that differs from a
// canonical id in one byte, whatever the byte.
func TestCanonicalChannelIDIsNormalizeUnchanged(t *testing.T) {
	base := []byte(NewChannelID())
	for i := range base {
		orig := base[i]
		for c := range 256 {
			base[i] = byte(c)
			s := string(base)
			id, ok := NormalizeChannelID(s)
			if want := ok && id == s; CanonicalChannelID(s) != want {
				t.Fatalf("CanonicalChannelID(%q) = %v, want %v", s, !want, want)
			}
		}
		base[i] = orig
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

// A generated op_id is a valid op_id of 32 lowercase hex characters whose
// first 12 are its milliseconds: ids drawn later sort after (the
// projection's op_id index grows at its end), and ids drawn in the same
// millisecond still differ.
func TestNewOpIDIsTimeOrdered(t *testing.T) {
	before := time.Now().UnixMilli()
	first := NewOpID()
	seen := map[string]bool{}
	for range 10_000 {
		id := NewOpID()
		if len(id) != 32 || strings.ToLower(id) != id || !ValidOpID(id) || seen[id] {
			t.Fatalf("op id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
	ms, err := strconv.ParseInt(first[:12], 16, 64)
	if err != nil || ms < before || ms > time.Now().UnixMilli() {
		t.Fatalf("op id %s: time %d (%v), want within [%d, now]", first, ms, err, before)
	}
	time.Sleep(2 * time.Millisecond)
	if later := NewOpID(); later <= first {
		t.Fatalf("op id drawn later %s sorts before %s", later, first)
	}
	if !IsGenerated(first) {
		t.Fatalf("op id %s: not recognised as generated", first)
	}
	for _, key := range []string{NewDeviceKey(), NewRandomID()} {
		if len(key) != 32 || key[:8] == first[:8] {
			t.Fatalf("random id %s: want 128 random bits, not a time prefix like %s", key, first)
		}
	}
}

// IsGenerated recognises what NewOpID returns and refuses a sender's op_ids
// of the same length and alphabet (but for the one in 65,536 that checks by
// chance), any single changed character, uppercase and other lengths.
func TestIsGenerated(t *testing.T) {
	hits := 0
	for range 10_000 {
		if id := NewOpID(); !IsGenerated(id) {
			t.Fatalf("%s not recognised", id)
		}
		if IsGenerated(NewRandomID()) {
			hits++
		}
	}
	senderHits := 0
	for range 10_000 {
		if id := NewSenderOpID(); len(id) != 32 || !ValidOpID(id) {
			t.Fatalf("sender op id %q", id)
		} else if IsGenerated(id) {
			senderHits++
		}
	}
	if senderHits > 5 {
		t.Fatalf("%d of 10,000 sender op ids recognised as generated", senderHits)
	}
	if hits > 5 { // expected 10,000/65,536
		t.Fatalf("%d of 10,000 random ids recognised as generated", hits)
	}
	const hexDigits = "0123456789abcdef"
	for n := range 20 { // fixed ids, so that no run differs from another
		id := formatOpID(1_800_000_000_000+int64(n)*7919, [8]byte{byte(n), 1, 2, 3, 4, 5, 6, byte(255 - n)})
		if !IsGenerated(id) {
			t.Fatalf("%s not recognised", id)
		}
		for i := range id {
			changed := []byte(id)
			changed[i] = hexDigits[(strings.IndexByte(hexDigits, id[i])+1+n%15)%16]
			if IsGenerated(string(changed)) {
				t.Errorf("%s (from %s, character %d changed) recognised as generated", changed, id, i)
			}
		}
		for _, other := range []string{strings.ToUpper(id), id[:31], id + "0", "op-" + id[3:]} {
			if IsGenerated(other) {
				t.Errorf("%q (from %s) recognised as generated", other, id)
			}
		}
	}
}

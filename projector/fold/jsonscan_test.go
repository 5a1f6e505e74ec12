package fold

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestNeedsLookIsExact holds the word-at-a-time test of scanString to the
// byte table it stands for: a word needs a look exactly when one of its
// bytes is not plain, for every byte at every place in a plain word, and
// for random words.
func TestNeedsLookIsExact(t *testing.T) {
	anyNotPlain := func(w [8]byte) bool {
		for _, c := range w {
			if !plainByte[c] {
				return true
			}
		}
		return false
	}
	check := func(w [8]byte) {
		t.Helper()
		if got, want := needsLook(binary.LittleEndian.Uint64(w[:])), anyNotPlain(w); got != want {
			t.Fatalf("needsLook(%q) = %v, want %v", w[:], got, want)
		}
	}
	for place := range 8 {
		for c := range 256 {
			w := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			w[place] = byte(c)
			check(w)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		// Mostly plain words with a few odd bytes, where a carry or a
		// borrow between bytes could hide one.
		for i := range w {
			if rng.IntN(4) != 0 {
				w[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		check(w)
	}
}

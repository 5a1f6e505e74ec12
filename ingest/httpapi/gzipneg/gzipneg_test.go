package gzipneg

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

// TestAccepts: an explicit gzip entry decides over "*" in either order,
// q=0 refuses, names and q are case-insensitive and blanks ignored, and
// identity alone or nothing is no gzip.
func TestAccepts(t *testing.T) {
	for in, want := range map[string]bool{
		"":                        false,
		"identity":                false,
		"br, deflate":             false,
		"gzip":                    true,
		"GZip":                    true,
		"x-gzip":                  true,
		"gzip, deflate, br, zstd": true,
		"  gzip ; q = 0.5 ":       true,
		"gzip;Q=1":                true,
		"*":                       true,
		"*;q=0.1":                 true,
		"gzip;q=0":                false,
		"gzip;q=0.000":            false,
		"gzip; Q=0":               false,
		"gzip;q=0, *":             false, // the named entry wins over *
		"*, gzip;q=0":             false,
		"*;q=0, gzip":             true, // the named entry wins over *;q=0
		"gzip, *;q=0":             true,
		"*;q=0":                   false,
		"*;q=0, identity":         false,
		"identity, *;q=0":         false,
		"gzip;q=bogus":            false, // a malformed q: the entry is ignored
		"gzip;q=bogus, *":         true,
		"gzip;q=2":                false,
		"gzip;level=1":            true,
		"gzip;q=0, gzip":          false, // the more restrictive of two
		"deflate;q=0, gzip":       true,
	} {
		if got := Accepts(in); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestCompress: the gzip of b decompresses to b.
func TestCompress(t *testing.T) {
	b := bytes.Repeat([]byte("openapi "), 1000)
	z := Compress(b)
	r, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, b) || len(z) >= len(b)/10 {
		t.Fatalf("%d bytes back (%v), %d compressed, from %d", len(got), err, len(z), len(b))
	}
}

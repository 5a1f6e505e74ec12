package limits

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadBody: the body comes back whole whether its length is
// announced, unknown (chunked) or announced short; over the limit it is
// refused with http.MaxBytesError, announced or not, and when announced
// under the limit but longer. A body announced over preallocMax grows as
// it arrives.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 3000)
	cases := []struct {
		name      string
		announced int64
		max       int64
		want      string
		tooLarge  bool
	}{
		{"announced", 3000, 4096, body, false},
		{"unknown length", -1, 4096, body, false},
		{"announced short", 100, 4096, body, false},
		{"empty", 0, 4096, "", false},
		{"over the limit, unknown length", -1, 1000, "", true},
		{"over the limit, announced", 3000, 1000, "", true},
		{"exactly the limit", 3000, 3000, body, false},
		{"over the limit, announced short", 500, 1000, "", true},
	}
	big := strings.Repeat("y", 3*preallocMax)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(big))
	if got, err := ReadBody(httptest.NewRecorder(), r, 4*preallocMax); err != nil || string(got) != big {
		t.Fatalf("a body announced over preallocMax: %d bytes, %v; want %d", len(got), err, len(big))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := body
			if c.want == "" && !c.tooLarge {
				src = ""
			}
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(strings.NewReader(src)))
			r.ContentLength = c.announced
			got, err := ReadBody(httptest.NewRecorder(), r, c.max)
			var tooLarge *http.MaxBytesError
			if c.tooLarge {
				if !errors.As(err, &tooLarge) {
					t.Fatalf("err %v, want *http.MaxBytesError", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(c.want)) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(c.want))
			}
		})
	}
}

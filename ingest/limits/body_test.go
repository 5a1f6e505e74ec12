package limits

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

// gzipped is b as one gzip member.
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// timingOut is a body whose bytes stop after head with the read
// deadline's error, as a net/http server's body does when its
// connection's read deadline passes.
type timingOut struct{ head io.Reader }

func (t timingOut) Read(p []byte) (int, error) {
	if n, err := t.head.Read(p); err != io.EOF {
		return n, err
	}
	return 0, fmt.Errorf("read tcp 127.0.0.1:1->127.0.0.1:2: %w", os.ErrDeadlineExceeded)
}

// TestReadBodyDecodesContentEncoding: a body is read as its
// Content-Encoding says. gzip (x-gzip, any case, beside identity) is
// decoded, the limit applying to the decoded bytes (a gzip bomb is an
// *http.MaxBytesError) and to the bytes as sent (empty members that
// decode to nothing); a body that is not the gzip it says is an
// *EncodingError, and an empty one is empty. identity (or an empty value)
// is none. Any other coding, or gzip twice, is an
// *UnsupportedEncodingError read from no byte, and the answer's
// Accept-Encoding names gzip. A read deadline under gzip is the
// transport's error still (ReadTimedOut), not a decoding error. Until 6
// December the header was ignored: a body marked gzip that was not was
// accepted, and one that was gzip was refused as invalid JSON.
func TestReadBodyDecodesContentEncoding(t *testing.T) {
	const max = 4096
	plain := []byte(`{"title":"disk full"}`)
	gz := gzipped(plain)
	bomb := gzipped(bytes.Repeat([]byte(" "), 1<<20)) // about 1 KiB decoding to 1 MiB
	if len(bomb) >= max {
		t.Fatalf("the bomb is %d bytes, want fewer than %d", len(bomb), max)
	}
	empties := bytes.Repeat(gzipped(nil), max/len(gzipped(nil))+1) // members decoding to nothing, over max as sent
	garbage := append(append([]byte{}, gz...), "trailing"...)

	type want int
	const (
		ok want = iota
		tooLarge
		unsupported
		invalid
		timedOut
	)
	cases := []struct {
		name     string
		encoding []string // Content-Encoding lines; nil: none
		body     io.Reader
		want     want
		content  []byte
	}{
		{"none", nil, bytes.NewReader(plain), ok, plain},
		{"identity", []string{"identity"}, bytes.NewReader(plain), ok, plain},
		{"empty value", []string{""}, bytes.NewReader(plain), ok, plain},
		{"gzip", []string{"gzip"}, bytes.NewReader(gz), ok, plain},
		{"x-gzip", []string{"x-gzip"}, bytes.NewReader(gz), ok, plain},
		{"GZIP, identity", []string{"GZIP, identity"}, bytes.NewReader(gz), ok, plain},
		{"gzip on two lines with identity", []string{"identity", " gzip "}, bytes.NewReader(gz), ok, plain},
		{"gzip, empty", []string{"gzip"}, bytes.NewReader(nil), ok, []byte{}},
		{"gzip bomb", []string{"gzip"}, bytes.NewReader(bomb), tooLarge, nil},
		{"gzip of empty members over the limit as sent", []string{"gzip"}, bytes.NewReader(empties), tooLarge, nil},
		{"gzip, not gzip", []string{"gzip"}, bytes.NewReader(plain), invalid, nil},
		{"gzip, truncated", []string{"gzip"}, bytes.NewReader(gz[:len(gz)-6]), invalid, nil},
		{"gzip, header only", []string{"gzip"}, bytes.NewReader(gz[:5]), invalid, nil},
		{"gzip, bytes after it", []string{"gzip"}, bytes.NewReader(garbage), invalid, nil},
		{"gzip, deadline", []string{"gzip"}, timingOut{bytes.NewReader(gz[:12])}, timedOut, nil},
		{"identity, deadline", nil, timingOut{bytes.NewReader(plain[:5])}, timedOut, nil},
		{"br", []string{"br"}, bytes.NewReader(plain), unsupported, nil},
		{"deflate", []string{"deflate"}, bytes.NewReader(plain), unsupported, nil},
		{"zstd", []string{"zstd"}, bytes.NewReader(plain), unsupported, nil},
		{"gzip twice", []string{"gzip, gzip"}, bytes.NewReader(gzipped(gz)), unsupported, nil},
		{"gzip then br", []string{"gzip", "br"}, bytes.NewReader(gz), unsupported, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := &countingReader{r: c.body}
			r := httptest.NewRequest(http.MethodPost, "/", body)
			r.ContentLength = -1
			for _, v := range c.encoding {
				r.Header.Add("Content-Encoding", v)
			}
			w := httptest.NewRecorder()
			got, err := ReadBody(w, r, max)
			var tooLargeErr *http.MaxBytesError
			var unsupportedErr *UnsupportedEncodingError
			var invalidErr *EncodingError
			switch c.want {
			case ok:
				if err != nil || !bytes.Equal(got, c.content) {
					t.Fatalf("got %q, %v; want %q", got, err, c.content)
				}
			case tooLarge:
				if !errors.As(err, &tooLargeErr) {
					t.Fatalf("err %v, want *http.MaxBytesError", err)
				}
			case unsupported:
				if !errors.As(err, &unsupportedErr) || body.n != 0 || w.Header().Get("Accept-Encoding") != "gzip" {
					t.Fatalf("err %v after %d bytes read, Accept-Encoding %q; want *UnsupportedEncodingError before any byte, gzip",
						err, body.n, w.Header().Get("Accept-Encoding"))
				}
			case invalid:
				if !errors.As(err, &invalidErr) || ReadTimedOut(err) || errors.As(err, &tooLargeErr) {
					t.Fatalf("err %v (%T), want *EncodingError", err, err)
				}
			case timedOut:
				if !ReadTimedOut(err) || errors.As(err, &invalidErr) {
					t.Fatalf("err %v (%T), want the deadline's", err, err)
				}
			}
		})
	}
}

// countingReader counts the bytes read of r.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

package wire

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
)

type sample struct {
	Title  string            `json:"title"`
	When   *Millis           `json:"when"`
	Inner  map[string]string `json:"inner"`
	Number *int              `json:"number"`
	Float  *float64          `json:"float"`
	Attrs  jsontext.Value    `json:"attrs"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, body string
		code       apierr.Code // empty: accepted
		field      string      // must appear in the detail
	}{
		{"ok", `{"title":"a","when":1713750000}`, "", ""},
		{"empty", ``, apierr.InvalidRequestBody, ""},
		{"blank", "  \n", apierr.InvalidRequestBody, ""},
		{"blank, Unicode spaces", "\t\u00a0\u0085\v\f\r", apierr.InvalidRequestBody, ""},
		{"a NUL is no space", "\x00", apierr.InvalidJSONSyntax, ""},
		{"spaces, then not JSON", " \u00a0x", apierr.InvalidJSONSyntax, ""},
		{"not json", `{"title":`, apierr.InvalidJSONSyntax, ""},
		{"garbage", `hello`, apierr.InvalidJSONSyntax, ""},
		{"array", `[1,2]`, apierr.InvalidJSONData, ""},
		{"unknown member", `{"title":"a","bogus":1}`, apierr.InvalidJSONData, "bogus"},
		{"case variant", `{"Title":"a"}`, apierr.InvalidJSONData, "Title"},
		{"duplicate", `{"title":"a","title":"b"}`, apierr.InvalidJSONData, "title"},
		{"wrong type", `{"title":5}`, apierr.InvalidJSONData, "title"},
		{"trailing", `{"title":"a"} {}`, apierr.InvalidJSONSyntax, ""},
		{"nested wrong type", `{"inner":{"k":1}}`, apierr.InvalidJSONData, "inner.k"},
		{"bad timestamp", `{"when":1.5}`, apierr.InvalidTimestamp, "when"},
		{"invalid utf8", "{\"title\":\"\xff\"}", apierr.InvalidJSONSyntax, ""},
		// Issue 12: nothing gets into a raw value (attrs) that a typed
		// member would refuse.
		{"invalid utf8 in a raw value", "{\"attrs\":{\"a\":{\"b\":\"x\xe2\x82\"}}}", apierr.InvalidJSONSyntax, ""},
		{"invalid utf8 in a raw value's key", "{\"attrs\":{\"\xc0\xaf\":1}}", apierr.InvalidJSONSyntax, ""},
		{"lone surrogate escape", `{"attrs":{"a":"\ud800"}}`, apierr.InvalidJSONSyntax, ""},
		{"lone low surrogate escape", `{"title":"\udc00x"}`, apierr.InvalidJSONSyntax, ""},
		{"surrogate pair escape", `{"title":"\ud83d\ude00","attrs":{"\ud83d\ude00":"\ud83d\ude00"}}`, "", ""},
		{"huge number in a raw value", `{"attrs":{"v":1e400}}`, apierr.InvalidJSONData, "attrs.v"},
		{"huge negative number, nested", `{"attrs":{"o":{"v":-1E+309}}}`, apierr.InvalidJSONData, "attrs.o.v"},
		{"400-digit integer", `{"attrs":{"v":1` + strings.Repeat("0", 400) + `}}`, apierr.InvalidJSONData, "attrs.v"},
		{"huge number in an unknown member", `{"title":"a","bogus":[1,2e999]}`, apierr.InvalidJSONData, "bogus.1"},
		{"huge number in a typed member", `{"float":1e400}`, apierr.InvalidJSONData, "float"},
		{"largest float64", `{"float":1.7976931348623157e308,"attrs":{"v":-1.7976931348623157e308}}`, "", ""},
		{"tiny number rounds to zero", `{"attrs":{"v":1e-400}}`, "", ""},
		{"long precise number", `{"attrs":{"v":12345678901234567890123456789}}`, "", ""},
		{"exponent-like text in a string", `{"title":"1e400","attrs":{"1e999":"-1e999"}}`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s sample
			err := Decode([]byte(c.body), &s)
			if c.code == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %s", c.code)
			}
			if err.Code != c.code {
				t.Fatalf("code %s (%s), want %s", err.Code, err.Detail, c.code)
			}
			if c.field != "" && !strings.Contains(err.Detail, c.field) {
				t.Fatalf("detail %q does not name %q", err.Detail, c.field)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`1713750000`, 1713750000000, true},
		{`1713750000000`, 1713750000000, true},
		{`"1713750000"`, 1713750000000, true},
		{`"1713750000123"`, 1713750000123, true},
		{`0`, 0, true},
		{`253402300799`, 253402300799000, true},
		{`253402300800`, 0, false}, // after year 9999
		{`1000000000000`, 1000000000000, true},
		{`-1`, 0, false},
		{`1.5`, 0, false},
		{`1e12`, 0, false},
		{`"abc"`, 0, false},
		{`""`, 0, false},
		{`"-5"`, 0, false},
		{`99999999999999999`, 0, false},
		{`true`, 0, false},
	}
	for _, c := range cases {
		var m Millis
		err := m.UnmarshalJSON([]byte(c.in))
		if (err == nil) != c.ok || (c.ok && int64(m) != c.want) {
			t.Errorf("Millis(%s) = %d, %v; want %d, ok=%v", c.in, m, err, c.want, c.ok)
		}
	}
}

// TestMillisErrorIsUTF8: the refusal quotes what was sent, cut to 32
// bytes; the cut never splits a character (a detail that is not UTF-8
// cannot be answered: it was a 500 for "é" × 20).
func TestMillisErrorIsUTF8(t *testing.T) {
	for _, in := range []string{`"` + strings.Repeat("é", 20) + `"`, `"a` + strings.Repeat("日", 20) + `"`, `"` + strings.Repeat("x", 40) + `"`} {
		var m Millis
		err := m.UnmarshalJSON([]byte(in))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Code != apierr.InvalidTimestamp {
			t.Fatalf("Millis(%s): %v", in, err)
		}
		if !utf8.ValidString(fe.Reason) || !strings.HasSuffix(fe.Reason, "...") {
			t.Fatalf("Millis(%s): reason %q", in, fe.Reason)
		}
	}
}

func TestNumberOutOfRange(t *testing.T) {
	cases := []struct {
		in    string
		ptr   string
		found bool
	}{
		{`{"a":1,"b":[1.5,-2e10,"1e400"]}`, "", false},
		{`{"a":1,"b":[1.5,-2e10,1e400]}`, "/b/2", true},
		{`1e309`, "", true},
		{`{"a\"1e400":"\\","b":1e-999}`, "", false},
		{`{"k":{"x":true,"y":null,"z":[{"w":-9e999}]}}`, "/k/z/0/w", true},
		{`{"a":` + strings.Repeat("9", 309) + `}`, "/a", true},
		{`{"a":` + strings.Repeat("9", 308) + `}`, "", false},
		{`{"a":1e400`, "/a", true}, // the number comes before the error
		{`{"a" 1e400}`, "", false}, // the error comes first
	}
	for _, c := range cases {
		p, found := NumberOutOfRange([]byte(c.in))
		if found != c.found || string(p) != c.ptr {
			t.Errorf("NumberOutOfRange(%.40s) = %q, %v; want %q, %v", c.in, p, found, c.ptr, c.found)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"title":"a"}`, `{"when":"17"}`, `{"inner":{"a":"b"}}`, `[]`, `{`, `{"title":"a","title":"a"}`,
		`{"attrs":{"v":1e400}}`, `{"attrs":{"v":"\ud800"}}`, `{"float":-1e-400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sample
		if err := Decode(b, &s); err != nil {
			if err.Status() != 400 {
				t.Fatalf("status %d for %q", err.Status(), b)
			}
			return
		}
		// What Decode accepts, raw values included, any JSON reader can
		// read back and write again: valid UTF-8, numbers within a float64.
		var back any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("accepted %q, which does not read back: %v", b, err)
		}
		if _, err := json.Marshal(back); err != nil {
			t.Fatalf("accepted %q, which does not write back: %v", b, err)
		}
	})
}

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
		{"duplicate", `{"title":"a","title":"b"}`, apierr.InvalidJSONData, "title: duplicate member"},
		{"duplicate in a raw value", `{"attrs":{"a":1,"a":2}}`, apierr.InvalidJSONData, "attrs.a: duplicate member"},
		{"wrong type", `{"title":5}`, apierr.InvalidJSONData, "title"},
		{"trailing", `{"title":"a"} {}`, apierr.InvalidJSONSyntax, ""},
		{"nested wrong type", `{"inner":{"k":1}}`, apierr.InvalidJSONData, "inner.k"},
		{"bad timestamp", `{"when":1.5}`, apierr.InvalidTimestamp, "when"},
		// Text that is not Unicode in well-formed JSON is I-JSON's refusal,
		// invalid_json_data naming the member (README, "Limits and abuse";
		// the HTTP contract keeps invalid_json_syntax for malformed JSON).
		// Until 6 December it was invalid_json_syntax "malformed JSON at
		// byte N", naming nothing.
		{"invalid utf8", "{\"title\":\"\xff\"}", apierr.InvalidJSONData, "title: not valid UTF-8 (byte 0xff)"},
		// Issue 12: nothing gets into a raw value (attrs) that a typed
		// member would refuse.
		{"invalid utf8 in a raw value", "{\"attrs\":{\"a\":{\"b\":\"x\xe2\x82\"}}}", apierr.InvalidJSONData, "attrs.a.b: not valid UTF-8 (byte 0xe2)"},
		{"invalid utf8 in a raw value's key", "{\"attrs\":{\"\xc0\xaf\":1}}", apierr.InvalidJSONData, "attrs: a member name is not valid UTF-8 (byte 0xc0)"},
		{"invalid utf8 in a top-level key", "{\"title\":\"a\", \"\xff\xfe\" :1}", apierr.InvalidJSONData, "body: a member name is not valid UTF-8 (byte 0xff)"},
		{"invalid utf8 in a map's value", "{\"inner\":{\"k\":\"ok\xff\"}}", apierr.InvalidJSONData, "inner.k: not valid UTF-8"},
		{"lone surrogate escape", `{"attrs":{"a":"\ud800"}}`, apierr.InvalidJSONData, `attrs.a: not valid UTF-8 (lone surrogate escape \ud800)`},
		{"lone low surrogate escape", `{"title":"\udc00x"}`, apierr.InvalidJSONData, `title: not valid UTF-8 (lone surrogate escape \udc00)`},
		{"high surrogate, then no low one", `{"title":"a\uD800\u0041"}`, apierr.InvalidJSONData, `title: not valid UTF-8 (lone surrogate escape \ud800)`},
		{"lone surrogate escape in a key", `{"attrs":{"k\udc00":1}}`, apierr.InvalidJSONData, `attrs: a member name is not valid UTF-8 (lone surrogate escape \udc00)`},
		{"escaped quote before a bad byte in a key", "{\"attrs\":{\"\\\"\xff\\\"\":1}}", apierr.InvalidJSONData, "attrs: a member name"},
		{"colon in a bad value is no name", "{\"title\":\"\xff:\" , \"attrs\":{}}", apierr.InvalidJSONData, "title: not valid UTF-8"},
		{"not an object, with invalid utf8", "[\"\xff\"]", apierr.InvalidJSONData, "must be a JSON object"},
		// Malformed JSON stays invalid_json_syntax, whatever its text.
		{"invalid utf8 in an unterminated string", "{\"title\":\"\xff", apierr.InvalidJSONSyntax, "malformed JSON"},
		{"invalid utf8, then malformed", "{\"title\":\"\xff\",}", apierr.InvalidJSONSyntax, "malformed JSON"},
		{"invalid utf8, then trailing data", "{\"title\":\"\xff\"} {}", apierr.InvalidJSONSyntax, "malformed JSON"},
		{"lone surrogate, then a bad token", `{"title":"\ud800","attrs":tru}`, apierr.InvalidJSONSyntax, "malformed JSON"},
		{"surrogate-like escape outside a string", `{"title":\ud800}`, apierr.InvalidJSONSyntax, "malformed JSON"},
		{"bad byte outside a string", "{\"title\":\xff}", apierr.InvalidJSONSyntax, "malformed JSON"},
		{"bad escape", `{"title":"\x"}`, apierr.InvalidJSONSyntax, "malformed JSON"},
		{"truncated escape", `{"title":"\ud8"}`, apierr.InvalidJSONSyntax, "malformed JSON"},
		{"control character in a string", "{\"title\":\"a\x01\"}", apierr.InvalidJSONSyntax, "malformed JSON"},
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

// TestFindFault: the integrations' check (their decoders are not strict
// about text and duplicates) finds what Decode refuses, naming the member,
// and nothing in malformed JSON, which is a syntax error whatever its text.
func TestFindFault(t *testing.T) {
	for _, c := range []struct{ body, field, reason string }{
		{`{"a":{"b":[1,"x\ud800"]}}`, "a.b.1", `not valid UTF-8 (lone surrogate escape \ud800)`},
		{"{\"a\":{\"\xff\xfe\":1}}", "a", "a member name is not valid UTF-8 (byte 0xff)"},
		{"[{\"k\":\"\xc0\xaf\"}]", "0.k", "not valid UTF-8 (byte 0xc0)"},
		{`{"a":1,"b":{"c":1,"c":2}}`, "b.c", "duplicate member"},
		{`{"a":"ok","b":[1e400]}`, "", ""},
		{"{\"a\":\"\xff\"", "", ""},
		{`{"a":"\ud800",}`, "", ""},
		{`{"a":"\ud800"} {}`, "", ""},
		{``, "", ""},
	} {
		f, ok := FindFault([]byte(c.body))
		field := ""
		if ok {
			field = f.Field()
		}
		if field != c.field || ok && f.Reason() != c.reason {
			t.Errorf("FindFault(%q) = %q %q, %v; want %q %q", c.body, field, f.Reason(), ok, c.field, c.reason)
		}
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
		`{"attrs":{"v":1e400}}`, `{"attrs":{"v":"\ud800"}}`, `{"float":-1e-400}`, "{\"\xff\xfe\":1}", "{\"title\":\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sample
		if err := Decode(b, &s); err != nil {
			if err.Status() != 400 {
				t.Fatalf("status %d for %q", err.Status(), b)
			}
			if !utf8.ValidString(err.Detail) {
				t.Fatalf("detail %q for %q is not UTF-8", err.Detail, b)
			}
			// invalid_json_syntax is for malformed JSON only: text that is
			// not Unicode in well-formed JSON is invalid_json_data.
			lenient := jsontext.Value(b).IsValid(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
			if err.Code == apierr.InvalidJSONSyntax && lenient {
				t.Fatalf("%q is well-formed JSON, refused as %s (%s)", b, err.Code, err.Detail)
			}
			// A refusal for text that is not UTF-8 (its detail is the fault's
			// own, not a member's value that happens to say "UTF-8") is
			// invalid_json_data of well-formed JSON.
			if f, ok := FindFault(b); ok && !f.Duplicate && err.Detail == f.Field()+": "+f.Reason() && (err.Code != apierr.InvalidJSONData || !lenient) {
				t.Fatalf("%q refused as %s (%s)", b, err.Code, err.Detail)
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

package wire

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

type sample struct {
	Title  string            `json:"title"`
	When   *Millis           `json:"when"`
	Inner  map[string]string `json:"inner"`
	Number *int              `json:"number"`
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

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"title":"a"}`, `{"when":"17"}`, `{"inner":{"a":"b"}}`, `[]`, `{`, `{"title":"a","title":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sample
		if err := Decode(b, &s); err != nil {
			if err.Status() != 400 {
				t.Fatalf("status %d for %q", err.Status(), b)
			}
		}
	})
}

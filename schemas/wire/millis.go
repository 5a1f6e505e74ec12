package wire

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Millis is a Unix time in milliseconds. On the wire it is a JSON integer
// or a string of digits; a value below 1,000,000,000,000 is seconds and is
// multiplied by 1000 (seed 001, as PushGo). Floats, negative numbers, other
// strings and times after the year 9999 are rejected with invalid_timestamp.
type Millis int64

// msThreshold separates seconds from milliseconds.
const msThreshold = 1_000_000_000_000

// maxMillis is 9999-12-31T23:59:59.999Z.
const maxMillis = 253_402_300_799_999

// UnmarshalJSON implements the wire rule above.
func (m *Millis) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, ok := ParseMillis(s)
	if !ok {
		return &FieldError{Code: apierr.InvalidTimestamp, Reason: "must be a non-negative integer of seconds or milliseconds, got " + truncate(string(b), 32)}
	}
	*m = Millis(v)
	return nil
}

// ParseMillis parses a string of digits as seconds or milliseconds and
// returns milliseconds. It is the query-string form of Millis.
func ParseMillis(s string) (int64, bool) {
	if s == "" || len(s) > 16 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	if v < msThreshold {
		v *= 1000
	}
	if v > maxMillis {
		return 0, false
	}
	return v, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary: the text goes into an error detail, which
	// must be UTF-8 to be answered (a cut rune made the answer a 500).
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.ToValidUTF8(s[:n], "\uFFFD") + "..."
}

package wire

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// Numbers. JSON itself puts no bound on a number, but every reader of what
// the gateway stores does: the projector, the apps and the monitoring tools
// read numbers as IEEE 754 doubles, and a number beyond a double's range
// (1e400, a 400-digit integer) becomes Infinity there, which no JSON
// encoder will write back: every read of such an entity fails for good.
// So the wire contract is I-JSON's (RFC 7493): valid UTF-8 (the decoders
// reject anything else), unique member names, and numbers a float64 can
// hold. A number that only loses precision (a 20-digit id) or rounds to
// zero (1e-400) is accepted: it has a float64 value.

// FitsFloat64 reports whether num, the text of one JSON number, is within
// the range of a float64.
func FitsFloat64(num []byte) bool {
	_, err := strconv.ParseFloat(string(num), 64)
	return err == nil
}

// NumberOutOfRange finds the first number of the JSON text v that a
// float64 cannot hold and returns its JSON pointer; found is false when
// every number fits. Text that is not valid JSON is searched up to its
// first error (reporting the error is the decoder's job). Most bodies are
// searched with one pass over the bytes and no allocation; only one
// holding a number with an exponent or of over 300 characters is read
// again to find where the number is.
func NumberOutOfRange(v []byte) (ptr jsontext.Pointer, found bool) {
	if !mayHoldHugeNumber(v) {
		return "", false
	}
	d := jsontext.NewDecoder(bytes.NewReader(v), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		if d.PeekKind() == '0' {
			num, err := d.ReadValue()
			if err != nil {
				return "", false
			}
			if !FitsFloat64(num) {
				return d.StackPointer(), true
			}
			continue
		}
		if _, err := d.ReadToken(); err != nil {
			return "", false
		}
	}
}

// mayHoldHugeNumber reports whether a number outside strings in v does not
// fit a float64. Only a number with an exponent or of over 300 characters
// can be out of range (the largest float64 is about 1.8e308), so the others
// are not parsed.
func mayHoldHugeNumber(v []byte) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' {
					i++
				}
			}
		case c == '-' || (c >= '0' && c <= '9'):
			j, exp := i, false
			for ; j < len(v); j++ {
				b := v[j]
				if b == 'e' || b == 'E' {
					exp = true
				} else if (b < '0' || b > '9') && b != '.' && b != '-' && b != '+' {
					break
				}
			}
			if (exp || j-i > 300) && !FitsFloat64(v[i:j]) {
				return true
			}
			i = j - 1
		}
	}
	return false
}

// Dotted is a JSON pointer as a dotted member path ("attrs.cpu",
// "eventList.0.data"), or "body" for the whole document. A member whose
// name is empty is written `""` ("attrs.\"\"", or `""` at the top level),
// so a refusal still names where the fault is.
func Dotted(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		if tok == "" {
			tok = `""`
		}
		parts = append(parts, tok)
	}
	if len(parts) == 0 {
		return "body"
	}
	return strings.Join(parts, ".")
}

// OutOfRangeReason is the detail of a rejected number, after its field.
const OutOfRangeReason = "number out of range: numbers must fit a 64-bit float (magnitude below about 1.8e308)"

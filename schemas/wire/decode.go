// Package wire decodes request bodies the way the contract demands:
// strictly. encoding/json v1 matches keys case-insensitively and keeps the
// last of duplicate keys; both would let a typo or a smuggled field through.
// Decode uses go-json-experiment/json with unknown members rejected,
// case-sensitive names, duplicate names rejected and trailing data rejected,
// and maps every failure to a catalog code naming the offending field.
//
// Two codes, as the HTTP contract has them: invalid_json_syntax for a body
// that is not JSON at all (an unterminated string, a bad token, trailing
// data), invalid_json_data for JSON the contract refuses, naming the
// member: unknown, duplicate, of the wrong type, a number a float64 cannot
// hold, or text that is not Unicode (invalid UTF-8, a lone surrogate
// escape), which I-JSON (RFC 7493) refuses in a body that is otherwise
// well-formed.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
)

// MaxBodyBytes is the largest request body the contract accepts.
const MaxBodyBytes = 32 << 10

var strict = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// Decode strictly decodes body, which must be one JSON object, into v:
// valid UTF-8 (raw and escaped: a lone surrogate is refused), unique
// member names and numbers a float64 can hold (see NumberOutOfRange),
// whatever the Go type of the member, so a raw jsontext.Value field (attrs,
// metadata) gets nothing past that a typed one would refuse. It never
// panics on any input (see FuzzDecode).
func Decode(body []byte, v any) *apierr.Error {
	if blank(body) {
		return apierr.New(apierr.InvalidRequestBody)
	}
	// A body that is not an object is a shape error, reported before the
	// unmarshaler gives a less helpful message about the Go type.
	if k := firstNonSpace(body); k != '{' {
		if !wellFormed(body) {
			return apierr.New(apierr.InvalidJSONSyntax)
		}
		return &apierr.Error{Code: apierr.InvalidJSONData, Detail: "request body must be a JSON object"}
	}
	if p, found := NumberOutOfRange(body); found {
		return apierr.Fieldf(apierr.InvalidJSONData, Dotted(p), "%s", OutOfRangeReason)
	}
	if err := json.Unmarshal(body, v, strict); err != nil {
		return Classify(body, err)
	}
	return nil
}

// blank reports whether b is empty or white space only (Unicode's, as
// bytes.TrimSpace has it), without copying b.
func blank(b []byte) bool {
	for i, c := range b {
		switch {
		case c == ' ', c == '\t', c == '\r', c == '\n', c == '\v', c == '\f':
			continue
		case c < 0x80:
			return false
		default:
			return len(bytes.TrimSpace(b[i:])) == 0
		}
	}
	return true
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// Classify maps err, the error of a strict decoder (go-json-experiment's
// json or jsontext, AllowDuplicateNames and AllowInvalidUTF8 false)
// reading body from its start, to a catalog error naming the field: the one
// mapping of every JSON route whose answer is the catalog's (the PushGo
// routes through Decode, the compat routes, Alertmanager). A duplicate
// member and text that is not Unicode are invalid_json_data naming the
// member, as a wrong type is; invalid_json_syntax is kept for a body that
// is not well-formed JSON even with its text let through.
func Classify(body []byte, err error) *apierr.Error {
	var fe *FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if field == "" {
			field = PointerOf(err)
		}
		return apierr.Fieldf(fe.Code, field, "%s", fe.Reason)
	}
	if f, ok := faultOf(body, err); ok {
		return apierr.Fieldf(apierr.InvalidJSONData, f.Field(), "%s", f.Reason())
	}
	var se *json.SemanticError
	if errors.As(err, &se) {
		field := PointerOf(err)
		if se.Err == json.ErrUnknownName {
			return apierr.Fieldf(apierr.InvalidJSONData, field, "unknown member")
		}
		kind := "value"
		if se.JSONKind != 0 {
			kind = se.JSONKind.String()
		}
		return apierr.Fieldf(apierr.InvalidJSONData, field, "wrong type (%s)", kind)
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		return &apierr.Error{Code: apierr.InvalidJSONSyntax, Detail: "malformed JSON at byte " + itoa(syn.ByteOffset)}
	}
	return &apierr.Error{Code: apierr.InvalidJSONSyntax, Detail: "malformed JSON"}
}

// A Fault is what I-JSON refuses in a JSON body that is not a matter of its
// syntax: a member name repeated in an object, or a string (a value or a
// member name) that is not Unicode text, raw bytes that are not UTF-8 or a
// lone surrogate escape ("\ud800").
type Fault struct {
	// Pointer is the member the fault is in: the repeated member, the
	// member whose value is not text, or for a member name that is not
	// text the object holding it (a name that is not text cannot be
	// named).
	Pointer jsontext.Pointer
	// Duplicate is true for a repeated member name; InName for a member
	// name that is not text.
	Duplicate, InName bool
	// What is the text that is not Unicode: "byte 0xff", "lone surrogate
	// escape \ud800".
	What string
}

// Field is the fault's member as a dotted path ("attrs.cpu", "body").
func (f Fault) Field() string { return Dotted(f.Pointer) }

// Reason is the fault, after its field: "duplicate member", "not valid
// UTF-8 (byte 0xff)", "a member name is not valid UTF-8 (lone surrogate
// escape \udc00)".
func (f Fault) Reason() string {
	switch {
	case f.Duplicate:
		return "duplicate member"
	case f.InName:
		return "a member name is not valid UTF-8 (" + f.What + ")"
	}
	return "not valid UTF-8 (" + f.What + ")"
}

// FindFault reads body and reports its first Fault, for a route whose
// decoder is not strict about them (an integration's, which answers in the
// tool's own shape). ok is false when body has none, and when it is not
// well-formed JSON: that is a syntax error, whatever its text.
func FindFault(body []byte) (f Fault, ok bool) {
	d := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	for {
		_, err := d.ReadToken()
		if err == io.EOF {
			return Fault{}, false
		}
		if err != nil {
			if !wellFormed(body) {
				return Fault{}, false
			}
			return faultOf(body, err)
		}
	}
}

// faultOf returns the Fault err is, the error of a strict decoder reading
// body from its start. A duplicate name is one however the body goes on
// (the decoder stops there: as it was answered before text faults were);
// text is a fault only in a body that is well-formed JSON with its text
// let through (`{"a":"\xff"` is unterminated: malformed whatever its
// text).
func faultOf(body []byte, err error) (Fault, bool) {
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return Fault{Pointer: pointerOf(err), Duplicate: true}, true
	}
	var syn *jsontext.SyntacticError
	if !errors.As(err, &syn) {
		return Fault{}, false
	}
	off := syn.ByteOffset
	if off < 0 || off >= int64(len(body)) || !wellFormed(body) {
		return Fault{}, false
	}
	// jsontext reports a text error at the offending bytes in the string.
	at := body[off:]
	var what string
	if r, ok := surrogateEscape(at); ok {
		what = fmt.Sprintf(`lone surrogate escape \u%04x`, r)
	} else if r, n := utf8.DecodeRune(at); r == utf8.RuneError && n <= 1 {
		what = fmt.Sprintf("byte 0x%02x", at[0])
	} else {
		return Fault{}, false
	}
	return Fault{Pointer: syn.JSONPointer, InName: isMemberName(body, int(off)), What: what}, true
}

// wellFormed reports whether body is one JSON value once its text is let
// through: invalid UTF-8 and lone surrogate escapes allowed, and member
// names repeated.
func wellFormed(body []byte) bool {
	return jsontext.Value(body).IsValid(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
}

// surrogateEscape reports whether b starts with a \u escape of a UTF-16
// surrogate (U+D800 to U+DFFF), and which.
func surrogateEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
	if err != nil || v < 0xd800 || v > 0xdfff {
		return 0, false
	}
	return rune(v), true
}

// isMemberName reports whether offset off of body, well-formed JSON, is
// inside a member name: the string it is in is followed by a colon.
func isMemberName(body []byte, off int) bool {
	i := off
	for i < len(body) && body[i] != '"' {
		if body[i] == '\\' {
			i++
		}
		i++
	}
	for i++; i < len(body); i++ {
		switch body[i] {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return body[i] == ':'
	}
	return false
}

// PointerOf returns the member path of a decoding error as a dotted name
// ("attrs.cpu"), or "body" when the error is about the whole document.
func PointerOf(err error) string {
	return Dotted(pointerOf(err))
}

func pointerOf(err error) jsontext.Pointer {
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		return se.JSONPointer
	case errors.As(err, &syn):
		return syn.JSONPointer
	}
	return ""
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// FieldError is returned by the wire types' unmarshalers so that the
// decoder reports a specific catalog code (such as invalid_timestamp)
// rather than the generic invalid_json_data.
type FieldError struct {
	Code   apierr.Code
	Field  string // filled from the JSON pointer when empty
	Reason string
}

func (e *FieldError) Error() string { return string(e.Code) + ": " + e.Reason }

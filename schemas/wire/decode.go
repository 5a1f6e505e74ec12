// Package wire decodes request bodies the way the contract demands:
// strictly. encoding/json v1 matches keys case-insensitively and keeps the
// last of duplicate keys; both would let a typo or a smuggled field through.
// Decode uses go-json-experiment/json with unknown members rejected,
// case-sensitive names, duplicate names rejected and trailing data rejected,
// and maps every failure to a catalog code naming the offending field.
package wire

import (
	"bytes"
	"errors"

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
		if !jsontext.Value(body).IsValid() {
			return apierr.New(apierr.InvalidJSONSyntax)
		}
		return &apierr.Error{Code: apierr.InvalidJSONData, Detail: "request body must be a JSON object"}
	}
	if p, found := NumberOutOfRange(body); found {
		return apierr.Fieldf(apierr.InvalidJSONData, Dotted(p), "%s", OutOfRangeReason)
	}
	if err := json.Unmarshal(body, v, strict); err != nil {
		return classify(err)
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

// classify maps a decoding error to a catalog error naming the field.
func classify(err error) *apierr.Error {
	var fe *FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if field == "" {
			field = PointerOf(err)
		}
		return apierr.Fieldf(fe.Code, field, "%s", fe.Reason)
	}
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return apierr.Fieldf(apierr.InvalidJSONData, PointerOf(err), "duplicate member")
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

// PointerOf returns the member path of a decoding error as a dotted name
// ("attrs.cpu"), or "body" when the error is about the whole document.
func PointerOf(err error) string {
	var p jsontext.Pointer
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		p = se.JSONPointer
	case errors.As(err, &syn):
		p = syn.JSONPointer
	}
	return Dotted(p)
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

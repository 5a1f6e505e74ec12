// Package eventbus is the contract of the cloud event bus's push API
// (seed 004, spec integrations.md section 2): the request body of
// POST /v1/event-bus/event/recv, its strict decoding and checks, the
// provider's response and error shapes, and the translation of one
// CloudEvent into the PushGo Event operations that record it.
//
// The CloudEvents HTTP route (spec section 3) shares the translation: it
// builds an Event from what the CloudEvents SDK parsed and calls Check.
//
// Everything here is pure: no clock, no randomness, no state. The caller
// generates missing ids and passes the receive time.
package eventbus

import (
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/wire"
)

// Code is an error code of the provider's error body.
type Code string

// The provider's error codes and the HTTP statuses they are answered with.
const (
	// InvalidParameter (400): the body cannot be read as the API's
	// object: not JSON, not an object, an unknown or duplicate member, a
	// required member missing.
	InvalidParameter Code = "INVALID_PARAMETER"
	// InvalidParameterValue (400): a member is present with a value the
	// API does not accept (wrong JSON type, bad format, out of range).
	InvalidParameterValue Code = "INVALID_PARAMETER_VALUE"
	// AuthorizationError: 401 for a missing or wrong token, 403 for a
	// token without the scope or for a bus that is not the token's channel.
	AuthorizationError Code = "AUTHORIZATION_ERROR"
	// InternalError: 500, or 503 with Retry-After when the log could not
	// take the events (retrying the same batch is safe).
	InternalError Code = "INTERNAL_ERROR"
)

// Error is a rejection of a batch. Field names the offending member as a
// path ("eventList[2].level"), or is "" when the rejection is about the
// whole body; Reason follows it in Message.
type Error struct {
	Code   Code
	Field  string
	Reason string
}

// Message is the text of the error body: the field and the reason, which
// is phrased to follow the field ("eventList[0].source is required").
func (e *Error) Message() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + " " + e.Reason
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message() }

// ErrorBody is the provider's error response.
type ErrorBody struct {
	RequestID string `json:"requestId"`
	Code      Code   `json:"code"`
	Message   string `json:"message"`
}

// MaxEvents is the most events one batch may hold.
const MaxEvents = 100

// maxText bounds every context string (id, source, type, subject, ...), in
// characters. The API sets no limit; this one keeps a single member from
// filling an Event's attrs, and is far above any real identifier.
const maxText = 1024

// Levels of the provider's EventLevel.
const (
	LevelNotice   = "NOTICE"
	LevelWarning  = "WARNING"
	LevelMajor    = "MAJOR"
	LevelCritical = "CRITICAL"
)

// Batch is a decoded and checked request body.
type Batch struct {
	// EventBusID is the top-level eventBusId, trimmed ("" when absent).
	EventBusID string
	Events     []Event
}

// Event is one CloudEvent, decoded and checked. String fields are trimmed;
// "" means absent (the API treats an empty value as not sent).
type Event struct {
	// ID is "" when not sent: the caller generates one before translating.
	ID              string
	Source          string
	Type            string
	SpecVersion     string
	DataContentType string
	Subject         string
	// Time is the occurrence time; zero when not sent (the receive time
	// is used). TimeText is the time as sent when it was sent as a date
	// string, echoed in the response as given.
	Time     time.Time
	TimeText string
	// Data is the data object, compact; nil when absent or empty.
	Data jsontext.Value
	// Level is one of the Level constants (upper case) or "".
	Level string
	// Severity, when set, is a PushGo severity that overrides Level (the
	// CloudEvents route's "severity" extension).
	Severity         string
	ResourceType     string
	AccountID        string
	EventBusID       string
	EventBusName     string
	EventSourceAlias string
	EventAlias       string
	EventAliasEn     string
	Region           string
	RecvTimestamp    string
	// Extensions are other CloudEvents extension attributes (the
	// CloudEvents route), by lower-case name; they become attrs.
	Extensions map[string]string
}

// wireBatch and wireEvent are the body as sent. Pointers tell "absent" from
// "empty"; time and data are raw because each accepts several JSON types.
type wireBatch struct {
	EventList  []jsontext.Value `json:"eventList"`
	EventBusID *string          `json:"eventBusId"`
}

type wireEvent struct {
	Data             jsontext.Value `json:"data"`
	ID               *string        `json:"id"`
	Source           *string        `json:"source"`
	SpecVersion      *string        `json:"specversion"`
	Type             *string        `json:"type"`
	DataContentType  *string        `json:"datacontenttype"`
	Subject          *string        `json:"subject"`
	Time             jsontext.Value `json:"time"`
	ResourceType     *string        `json:"resourceType"`
	Level            *string        `json:"level"`
	AccountID        *string        `json:"accountId"`
	EventBusID       *string        `json:"eventBusId"`
	EventBusName     *string        `json:"eventBusName"`
	EventSourceAlias *string        `json:"eventSourceAlias"`
	EventAlias       *string        `json:"eventAlias"`
	EventAliasEn     *string        `json:"eventAliasEn"`
	Region           *string        `json:"region"`
	RecvTimestamp    *string        `json:"recvTimestamp"`
}

// strict is schemas/wire's strict decoding with one difference: member
// names match case-insensitively, because the provider's own documents
// spell them both camelCase and lower-case. A name given twice in two
// spellings is still a duplicate.
var strict = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(true),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// Decode decodes and checks a request body. Every event is checked before
// Decode returns, so a batch is accepted or rejected whole.
func Decode(body []byte) (*Batch, *Error) {
	if strings.TrimSpace(string(body)) == "" {
		return nil, &Error{Code: InvalidParameter, Reason: "request body is empty"}
	}
	// Duplicates are left to the unmarshaler, which names the member.
	if !jsontext.Value(body).IsValid(jsontext.AllowDuplicateNames(true)) {
		// Text that is not Unicode in well-formed JSON, named as
		// wire.Classify names it; a duplicate before it is named by the
		// decoder below, which stops there.
		f, ok := wire.FindFault(body)
		field := pointerPath(f.Pointer, "")
		if field == "" {
			field = "request body"
		}
		switch {
		case !ok:
			return nil, &Error{Code: InvalidParameter, Reason: "request body is not valid JSON"}
		case f.InName:
			return nil, &Error{Code: InvalidParameter, Field: field, Reason: "holds a member name that is not valid UTF-8 (" + f.What + ")"}
		case !f.Duplicate:
			return nil, &Error{Code: InvalidParameter, Field: field, Reason: "is not valid UTF-8 (" + f.What + ")"}
		}
	}
	if jsontext.Value(body).Kind() != '{' {
		return nil, &Error{Code: InvalidParameter, Reason: "request body must be a JSON object"}
	}
	if p, found := wire.NumberOutOfRange(body); found {
		return nil, &Error{Code: InvalidParameterValue, Field: pointerPath(p, ""), Reason: "is a " + wire.OutOfRangeReason}
	}
	var w wireBatch
	if err := json.Unmarshal(body, &w, strict); err != nil {
		return nil, classify(err, "")
	}
	if w.EventList == nil {
		return nil, &Error{Code: InvalidParameter, Field: "eventList", Reason: "is required"}
	}
	if n := len(w.EventList); n == 0 || n > MaxEvents {
		return nil, &Error{Code: InvalidParameterValue, Field: "eventList",
			Reason: fmt.Sprintf("must hold 1 to %d events, got %d", MaxEvents, n)}
	}
	b := &Batch{Events: make([]Event, len(w.EventList))}
	b.EventBusID = text(w.EventBusID)
	for i, raw := range w.EventList {
		prefix := "eventList[" + strconv.Itoa(i) + "]"
		if raw.Kind() != '{' {
			return nil, &Error{Code: InvalidParameterValue, Field: prefix, Reason: "must be a JSON object (a CloudEvent)"}
		}
		var we wireEvent
		if err := json.Unmarshal(raw, &we, strict); err != nil {
			return nil, classify(err, prefix)
		}
		if err := b.Events[i].fromWire(&we, prefix); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// fromWire fills e from an event as sent and checks it.
func (e *Event) fromWire(w *wireEvent, prefix string) *Error {
	e.ID, e.Source, e.SpecVersion, e.Type = text(w.ID), text(w.Source), text(w.SpecVersion), text(w.Type)
	e.DataContentType, e.Subject, e.ResourceType = text(w.DataContentType), text(w.Subject), text(w.ResourceType)
	e.Level, e.AccountID, e.EventBusID, e.EventBusName = text(w.Level), text(w.AccountID), text(w.EventBusID), text(w.EventBusName)
	e.EventSourceAlias, e.EventAlias, e.EventAliasEn = text(w.EventSourceAlias), text(w.EventAlias), text(w.EventAliasEn)
	e.Region, e.RecvTimestamp = text(w.Region), text(w.RecvTimestamp)
	var err *Error
	if e.Time, e.TimeText, err = ParseTime(w.Time, join(prefix, "time")); err != nil {
		return err
	}
	if e.Data, err = NormalizeData(w.Data, join(prefix, "data")); err != nil {
		return err
	}
	return e.Check(prefix)
}

// Check checks what decoding alone does not (required members, time
// range, specversion, datacontenttype, severity, level, lengths) and
// canonicalises Severity (lower case) and Level (upper case). Decode runs
// it on every event; the CloudEvents route runs it on the Event it built
// from the SDK's. prefix names e in errors ("eventList[0]", or "").
func (e *Event) Check(prefix string) *Error {
	// A decoded body is valid UTF-8, but the CloudEvents route's come from
	// headers and the SDK's own JSON reader: an invalid byte there would
	// be recorded and then fail every answer that shows it.
	for _, a := range append(e.context(), attr{"eventBusId", e.EventBusID}, attr{"eventBusName", e.EventBusName}, attr{"time", e.TimeText}) {
		if !utf8.ValidString(a.value) {
			return &Error{Code: InvalidParameterValue, Field: join(prefix, a.member), Reason: "must be valid UTF-8"}
		}
	}
	for name := range e.Extensions {
		if !utf8.ValidString(name) {
			return &Error{Code: InvalidParameterValue, Field: join(prefix, "extensions"), Reason: "names must be valid UTF-8"}
		}
	}
	if e.Source == "" {
		return &Error{Code: InvalidParameter, Field: join(prefix, "source"), Reason: "is required"}
	}
	if e.Type == "" {
		return &Error{Code: InvalidParameter, Field: join(prefix, "type"), Reason: "is required"}
	}
	if !e.Time.IsZero() && (e.Time.Before(time.Unix(0, 0)) || e.Time.UnixMilli() > maxMillis) {
		return &Error{Code: InvalidParameterValue, Field: join(prefix, "time"), Reason: "must be between 1970 and 9999"}
	}
	if e.SpecVersion != "" && e.SpecVersion != "1.0" {
		return &Error{Code: InvalidParameterValue, Field: join(prefix, "specversion"), Reason: `must be "1.0"`}
	}
	if e.DataContentType != "" && !IsJSONContentType(e.DataContentType) {
		return &Error{Code: InvalidParameterValue, Field: join(prefix, "datacontenttype"), Reason: "must be application/json (the only supported data content type)"}
	}
	if e.Severity != "" {
		s, ok := ParseSeverity(e.Severity)
		if !ok {
			return &Error{Code: InvalidParameterValue, Field: join(prefix, "severity"),
				Reason: "must be one of critical, high, normal, low"}
		}
		e.Severity = s
	}
	if e.Level != "" {
		l, ok := ParseLevel(e.Level)
		if !ok {
			return &Error{Code: InvalidParameterValue, Field: join(prefix, "level"),
				Reason: "must be one of NOTICE, WARNING, MAJOR, CRITICAL"}
		}
		e.Level = l
	}
	for _, a := range append(e.context(), attr{"eventBusId", e.EventBusID}, attr{"eventBusName", e.EventBusName}) {
		if utf8.RuneCountInString(a.value) > maxText {
			return &Error{Code: InvalidParameterValue, Field: join(prefix, a.member),
				Reason: fmt.Sprintf("must be at most %d characters", maxText)}
		}
	}
	return nil
}

// ParseLevel returns the canonical (upper-case) EventLevel of s, matched
// case-insensitively.
func ParseLevel(s string) (string, bool) {
	l := strings.ToUpper(strings.TrimSpace(s))
	switch l {
	case LevelNotice, LevelWarning, LevelMajor, LevelCritical:
		return l, true
	}
	return "", false
}

// IsJSONContentType reports whether the media type of ct is
// application/json (parameters such as charset allowed).
func IsJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// maxMillis is 9999-12-31T23:59:59.999Z, wire.Millis's limit.
const maxMillis = 253_402_300_799_999

// providerTime is the provider's own offset form, without the colon
// ("2023-01-01T00:00:00+0800"); fractional seconds are accepted on parse.
const providerTime = "2006-01-02T15:04:05Z0700"

// ParseTime reads a time member: an RFC 3339 date (or the provider's
// "+0800" form), or Unix seconds or milliseconds as a JSON integer or a
// string of digits (a value below 10^12 is seconds, as wire.Millis).
// Absent, null and "" give the zero time. text is the date string as sent
// (for echoing), "" for the numeric forms.
func ParseTime(raw jsontext.Value, field string) (t time.Time, text string, err *Error) {
	bad := &Error{Code: InvalidParameterValue, Field: field,
		Reason: "must be an RFC 3339 time (2020-11-19T21:04:41Z) or Unix seconds or milliseconds"}
	var s string
	switch raw.Kind() {
	case 0, 'n':
		return time.Time{}, "", nil
	case '0':
		s = string(raw)
	case '"':
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, "", bad
		}
		if s = strings.TrimSpace(s); s == "" {
			return time.Time{}, "", nil
		}
		if !isDigits(s) {
			text = s
		}
	default:
		return time.Time{}, "", bad
	}
	if text == "" {
		ms, ok := wire.ParseMillis(s)
		if !ok {
			return time.Time{}, "", bad
		}
		return time.UnixMilli(ms).UTC(), "", nil
	}
	t, perr := time.Parse(time.RFC3339Nano, text)
	if perr != nil {
		if t, perr = time.Parse(providerTime, text); perr != nil {
			return time.Time{}, "", bad
		}
	}
	if t.Before(time.Unix(0, 0)) {
		return time.Time{}, "", &Error{Code: InvalidParameterValue, Field: field, Reason: "must not be before 1970"}
	}
	return t, text, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// NormalizeData reads a data member: a JSON object, or a string holding
// one (the seed's own example sends it so). Absent, null, "", {} and a
// blank string give nil (no data). The result is compact.
func NormalizeData(raw jsontext.Value, field string) (jsontext.Value, *Error) {
	bad := &Error{Code: InvalidParameterValue, Field: field, Reason: "must be a JSON object or a string holding one"}
	switch raw.Kind() {
	case 0, 'n':
		return nil, nil
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, bad
		}
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		raw = jsontext.Value(s)
		if !raw.IsValid() {
			return nil, &Error{Code: InvalidParameterValue, Field: field, Reason: "holds a string that is not valid JSON"}
		}
	}
	if raw.Kind() != '{' {
		return nil, bad
	}
	// Compact does not check strings: the object must be valid UTF-8 (no
	// lone surrogate escape either) and hold no number a float64 cannot.
	if !raw.IsValid() {
		return nil, &Error{Code: InvalidParameterValue, Field: field, Reason: "must be valid JSON in UTF-8"}
	}
	if p, found := wire.NumberOutOfRange(raw); found {
		return nil, &Error{Code: InvalidParameterValue, Field: pointerPath(p, field), Reason: "is a " + wire.OutOfRangeReason}
	}
	if nestingDepth(raw) > MaxDataDepth {
		return nil, &Error{Code: InvalidParameterValue, Field: field,
			Reason: fmt.Sprintf("nests objects and arrays deeper than %d levels", MaxDataDepth)}
	}
	out := raw.Clone()
	if out.Compact() != nil {
		return nil, bad
	}
	if string(out) == "{}" {
		return nil, nil
	}
	return out, nil
}

// MaxDataDepth bounds how deep a CloudEvent's data nests objects and
// arrays. The event bus answer echoes the data three levels down
// ({"events":[{"data":…}]}), and a string-held data is checked on its own:
// without a bound, data nested near the JSON decoder's limit (10,000) was
// recorded and then could not be answered (a 500 after the appends, each
// retry appending again). Real data nests a few levels; deeper values are
// flattened into attrs as text anyway.
const MaxDataDepth = 1000

// nestingDepth is how deep v, valid JSON, nests objects and arrays.
func nestingDepth(v jsontext.Value) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range v {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// text returns a trimmed optional string member ("" when absent).
func text(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// classify maps a decoding error to an Error naming the member, in
// schemas/wire's words ("unknown member", "duplicate member", "wrong
// type"). prefix is the path of the decoded value within the body.
func classify(err error, prefix string) *Error {
	field := pathOf(err, prefix)
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return &Error{Code: InvalidParameter, Field: field, Reason: "is a duplicate member (names match case-insensitively)"}
	}
	var se *json.SemanticError
	if errors.As(err, &se) {
		if se.Err == json.ErrUnknownName {
			return &Error{Code: InvalidParameter, Field: field, Reason: "is an unknown member"}
		}
		kind := "value"
		if se.JSONKind != 0 {
			kind = se.JSONKind.String()
		}
		want := "a string"
		if field == "eventList" {
			want = "an array of CloudEvents"
		}
		return &Error{Code: InvalidParameterValue, Field: field, Reason: fmt.Sprintf("has the wrong type (%s), must be %s", kind, want)}
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) && field == "" {
		return &Error{Code: InvalidParameter, Reason: "request body is not valid JSON"}
	}
	if errors.As(err, &syn) {
		return &Error{Code: InvalidParameter, Field: field, Reason: "is malformed JSON at byte " + strconv.FormatInt(syn.ByteOffset, 10)}
	}
	return &Error{Code: InvalidParameter, Field: field, Reason: "is malformed JSON"}
}

// pathOf returns the member path of err under prefix: "eventList[0].id".
func pathOf(err error, prefix string) string {
	var p jsontext.Pointer
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		p = se.JSONPointer
	case errors.As(err, &syn):
		p = syn.JSONPointer
	}
	return pointerPath(p, prefix)
}

// pointerPath returns the member path of p under prefix: "eventList[0].id".
func pointerPath(p jsontext.Pointer, prefix string) string {
	out := prefix
	for tok := range p.Tokens() {
		if _, nerr := strconv.Atoi(tok); nerr == nil && out != "" {
			out += "[" + tok + "]"
			continue
		}
		out = join(out, tok)
	}
	return out
}

// Package dynatrace is the contract of the Dynatrace Events API v2 ingest
// (seed 003, spec integrations.md section 1): the EventIngest body, its
// validation into constraint violations, and the mapping rules of a report
// onto PushGo Events. It is pure: the caller passes the clock.
package dynatrace

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// Event types, and whether each opens a problem.
var eventTypes = map[string]bool{
	"AVAILABILITY_EVENT":        true,
	"CUSTOM_ALERT":              true,
	"CUSTOM_ANNOTATION":         false,
	"CUSTOM_CONFIGURATION":      false,
	"CUSTOM_DEPLOYMENT":         false,
	"CUSTOM_INFO":               false,
	"ERROR_EVENT":               true,
	"MARKED_FOR_TERMINATION":    false,
	"PERFORMANCE_EVENT":         true,
	"RESOURCE_CONTENTION_EVENT": true,
	"WARNING":                   true,
}

// EventTypes lists the accepted eventType values, sorted.
func EventTypes() []string {
	out := make([]string, 0, len(eventTypes))
	for t := range eventTypes {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Limits of the EventIngest body (Dynatrace's own).
const (
	DefaultTimeoutMinutes = 15
	MaxTimeoutMinutes     = 360
	MaxProperties         = 100
	MaxPropertyKey        = 100
	MaxPropertyValue      = 4096
	// Problem-opening events may start at most 6 h in the past and 5 min
	// in the future; info events 30 days and 7 days.
	problemPast   = 6 * 3600 * 1000
	problemFuture = 5 * 60 * 1000
	infoPast      = 30 * 24 * 3600 * 1000
	infoFuture    = 7 * 24 * 3600 * 1000
)

// EventIngest is the request body. Pointers distinguish absent or null
// (nil) from a value.
type EventIngest struct {
	EventType      *string        `json:"eventType"`
	Title          *string        `json:"title"`
	StartTime      *int64         `json:"startTime"`
	EndTime        *int64         `json:"endTime"`
	Timeout        *int64         `json:"timeout"`
	EntitySelector *string        `json:"entitySelector"`
	Properties     jsontext.Value `json:"properties"`
}

// Violation is one constraint violation of Dynatrace's error envelope.
type Violation struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Report is a validated EventIngest.
type Report struct {
	EventType string
	// Problem is true for problem-opening types: one open Event per
	// selected Thing, refreshed by the same report and closed by the
	// gateway when its deadline passes.
	Problem bool
	Title   string
	// Start is startTime (default now). Deadline is endTime, or Start +
	// timeout.
	Start, Deadline int64
	// EndSent reports that the report named its endTime (Deadline).
	EndSent bool
	// TimeoutMinutes is the timeout after capping.
	TimeoutMinutes int64
	// Selector is the parsed entitySelector; nil means the channel as a
	// whole. SelectorText is the text as sent.
	Selector     *entityselector.Selector
	SelectorText string
	// Properties are the user and reserved properties as strings, in the
	// order sent.
	Properties []Property
	// MetadataError, when not empty, says why the report carries an
	// invalid reserved (dt.*) property: every result is INVALID_METADATA.
	MetadataError string
}

// Property is one property, as a string.
type Property struct{ Key, Value string }

// Decode strictly decodes an EventIngest: unknown, duplicate and
// case-variant members, wrong types and text that is not Unicode (invalid
// UTF-8, a lone surrogate escape) are violations naming the member. A body
// that is not JSON is reported as syntax (the third return).
func Decode(body []byte) (*EventIngest, []Violation, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, []Violation{{Path: "body", Message: "must not be empty"}}, nil
	}
	if !jsontext.Value(body).IsValid(jsontext.AllowDuplicateNames(true)) {
		if f, ok := wire.FindFault(body); ok {
			return nil, []Violation{{Path: f.Field(), Message: f.Reason()}}, nil
		}
		return nil, nil, errors.New("request body is not valid JSON")
	}
	if p, found := wire.NumberOutOfRange(body); found {
		return nil, []Violation{{Path: wire.Dotted(p), Message: wire.OutOfRangeReason}}, nil
	}
	var r EventIngest
	err := json.Unmarshal(body, &r, json.RejectUnknownMembers(true))
	if err == nil {
		return &r, nil, nil
	}
	path, msg := "body", "does not match EventIngest"
	var se *json.SemanticError
	if errors.As(err, &se) {
		if p := strings.TrimPrefix(string(se.JSONPointer), "/"); p != "" {
			path = strings.ReplaceAll(p, "/", ".")
		}
		switch {
		case errors.Is(se.Err, json.ErrUnknownName):
			msg = "unknown member"
		case se.JSONKind != 0:
			msg = "wrong type: " + se.JSONKind.String()
		}
	}
	if errors.Is(err, jsontext.ErrDuplicateName) {
		msg = "duplicate member"
		var syn *jsontext.SyntacticError
		if errors.As(err, &syn) {
			if p := strings.TrimPrefix(string(syn.JSONPointer), "/"); p != "" {
				path = strings.ReplaceAll(p, "/", ".")
			}
		}
	}
	return nil, []Violation{{Path: path, Message: msg}}, nil
}

// Validate checks r at time now (ms) and returns the report, or the
// violations (all of them, in field order).
func Validate(r *EventIngest, now int64) (*Report, []Violation) {
	var vs []Violation
	bad := func(path, format string, args ...any) {
		vs = append(vs, Violation{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	rep := &Report{}
	switch {
	case r.EventType == nil:
		bad("eventType", "must not be null")
	default:
		problem, ok := eventTypes[*r.EventType]
		if !ok {
			bad("eventType", "must be one of %s", strings.Join(EventTypes(), ", "))
		}
		rep.EventType, rep.Problem = *r.EventType, problem
	}
	if r.Title == nil || strings.TrimSpace(*r.Title) == "" {
		bad("title", "must not be empty")
	} else {
		rep.Title = strings.TrimSpace(*r.Title)
	}
	rep.Start = now
	if r.StartTime != nil {
		if *r.StartTime < 0 {
			bad("startTime", "must be a UTC timestamp in milliseconds")
		}
		rep.Start = *r.StartTime
	}
	rep.TimeoutMinutes = DefaultTimeoutMinutes
	if r.Timeout != nil {
		if *r.Timeout < 1 {
			bad("timeout", "must be at least 1 (minutes)")
		}
		rep.TimeoutMinutes = min(*r.Timeout, MaxTimeoutMinutes)
	}
	// "Last report + timeout": a tool re-sending an open problem with its
	// original startTime still extends it.
	rep.Deadline = max(rep.Start, now) + rep.TimeoutMinutes*60_000
	if r.EndTime != nil {
		if *r.EndTime < rep.Start {
			bad("endTime", "must not be before startTime")
		}
		rep.Deadline, rep.EndSent = *r.EndTime, true
	}
	if r.EntitySelector != nil && strings.TrimSpace(*r.EntitySelector) != "" {
		rep.SelectorText = *r.EntitySelector
		sel, err := entityselector.Parse(*r.EntitySelector)
		if err != nil {
			bad("entitySelector", "%s", err.Message)
		}
		rep.Selector = sel
	}
	props, pvs := properties(r.Properties)
	vs = append(vs, pvs...)
	rep.Properties = props
	rep.MetadataError = reservedError(props)
	if len(vs) > 0 {
		return nil, vs
	}
	return rep, nil
}

// properties decodes the properties object: scalars become strings
// (numbers keep their JSON text), null members are dropped, objects and
// arrays are violations.
func properties(v jsontext.Value) ([]Property, []Violation) {
	if len(v) == 0 || string(v) == "null" {
		return nil, nil
	}
	d := jsontext.NewDecoder(bytes.NewReader(v))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, []Violation{{Path: "properties", Message: "must be an object"}}
	}
	var out []Property
	var vs []Violation
	for d.PeekKind() != '}' {
		kt, err := d.ReadToken()
		if err != nil {
			return nil, []Violation{{Path: "properties", Message: "must be an object"}}
		}
		key := kt.String()
		path := "properties." + key
		val, err := d.ReadValue()
		if err != nil {
			return nil, []Violation{{Path: "properties", Message: "must be an object"}}
		}
		switch {
		case strings.TrimSpace(key) == "":
			vs = append(vs, Violation{Path: "properties", Message: "keys must not be empty"})
			continue
		case utf8.RuneCountInString(key) > MaxPropertyKey:
			vs = append(vs, Violation{Path: path, Message: fmt.Sprintf("key must be at most %d characters", MaxPropertyKey)})
			continue
		}
		var s string
		switch val.Kind() {
		case 'n':
			continue
		case '"':
			_ = json.Unmarshal(val, &s)
		case '0':
			s = string(val)
		case 't', 'f':
			s = string(val)
		default:
			vs = append(vs, Violation{Path: path, Message: "must be a string, number or boolean"})
			continue
		}
		if utf8.RuneCountInString(s) > MaxPropertyValue {
			vs = append(vs, Violation{Path: path, Message: fmt.Sprintf("value must be at most %d characters", MaxPropertyValue)})
			continue
		}
		out = append(out, Property{Key: key, Value: s})
	}
	if len(out) > MaxProperties {
		vs = append(vs, Violation{Path: "properties", Message: fmt.Sprintf("must have at most %d entries", MaxProperties)})
	}
	return out, vs
}

// reserved are the dt.* properties a report may set, and whether each is
// a boolean.
var reserved = map[string]bool{
	"dt.event.allow_davis_merge":                  true,
	"dt.event.allow_frequent_issue_detection":     true,
	"dt.event.is_rootcause_relevant":              true,
	"dt.event.description":                        false,
	"dt.event.deployment.name":                    false,
	"dt.event.deployment.version":                 false,
	"dt.event.deployment.project":                 false,
	"dt.event.deployment.release_stage":           false,
	"dt.event.deployment.release_product":         false,
	"dt.event.deployment.release_build_version":   false,
	"dt.event.deployment.remediation_action_link": false,
	"dt.event.deployment.ci_back_link":            false,
}

// reservedError says why a reserved property is not allowed, or "".
func reservedError(props []Property) string {
	for _, p := range props {
		if !strings.HasPrefix(p.Key, "dt.") {
			continue
		}
		isBool, ok := reserved[p.Key]
		if !ok {
			return fmt.Sprintf("property %q is a reserved dt.* key that cannot be set", p.Key)
		}
		if isBool && !strings.EqualFold(p.Value, "true") && !strings.EqualFold(p.Value, "false") {
			return fmt.Sprintf("property %q must be true or false", p.Key)
		}
	}
	return ""
}

// TimestampsValid reports whether the report's start is within the window
// Dynatrace accepts for its kind, at time now.
func (r *Report) TimestampsValid(now int64) bool {
	past, future := int64(infoPast), int64(infoFuture)
	if r.Problem {
		past, future = problemPast, problemFuture
	}
	return r.Start >= now-past && r.Start <= now+future
}

// Severity maps the event type to a PushGo severity.
func (r *Report) Severity() string {
	switch r.EventType {
	case "AVAILABILITY_EVENT":
		return ops.SeverityCritical
	case "ERROR_EVENT", "CUSTOM_ALERT":
		return ops.SeverityHigh
	case "PERFORMANCE_EVENT", "RESOURCE_CONTENTION_EVENT", "WARNING":
		return ops.SeverityNormal
	}
	return ops.SeverityLow
}

// Description is dt.event.description, trimmed; "" when not sent or
// blank. A blank one is no description: the event's message falls back to
// the title rather than the report being refused for a message the sender
// did not write. Trimmed, so that the message cut from it (its first 512
// characters) is never all blanks when the description is not.
func (r *Report) Description() string {
	for _, p := range r.Properties {
		if p.Key == "dt.event.description" {
			return strings.TrimSpace(p.Value)
		}
	}
	return ""
}

// TruncatedAttr is set to true in a report's attrs when properties were
// left out to respect MaxAttrsBytes (the other integrations' marker too).
// A property of that name is left out: the name is the gateway's.
const TruncatedAttr = ops.TruncatedAttr

// MaxAttrsBytes bounds the attrs the properties make, as encoded: the
// properties past it (in the order sent) are left out and TruncatedAttr is
// set. Dynatrace allows 100 properties of 4096 characters (1.6 MB of
// four-byte characters); without a bound such a report made an operation
// over the size bound (ops.MaxContentBytes) and was refused.
const MaxAttrsBytes = 64 << 10

// Attrs is the properties as an attrs object (flat, string values), keys
// in the order sent, within MaxAttrsBytes; nil when there are none.
func (r *Report) Attrs() jsontext.Value {
	if len(r.Properties) == 0 {
		return nil
	}
	var b bytes.Buffer
	enc := jsontext.NewEncoder(&b)
	_ = enc.WriteToken(jsontext.BeginObject)
	seen := map[string]bool{TruncatedAttr: true}
	budget := ops.NewAttrsBudget(MaxAttrsBytes)
	for _, p := range r.Properties {
		if seen[p.Key] {
			continue
		}
		seen[p.Key] = true
		if v := budget.TakeString(p.Key, p.Value); v != nil {
			_ = enc.WriteToken(jsontext.String(p.Key))
			_ = enc.WriteValue(v)
		}
	}
	if budget.Cut() {
		_ = enc.WriteToken(jsontext.String(TruncatedAttr))
		_ = enc.WriteToken(jsontext.True)
	}
	_ = enc.WriteToken(jsontext.EndObject)
	if out := bytes.TrimSpace(b.Bytes()); string(out) != "{}" {
		return out
	}
	return nil
}

// Package pagerduty is the contract of the PagerDuty Events API v2 enqueue
// endpoint (spec integrations.md section 5): the event body, its
// validation into PagerDuty's error strings, and the mapping of trigger,
// acknowledge and resolve onto PushGo Event operations keyed by dedup_key.
// It is pure: the caller passes the clock and, for a trigger without a
// dedup_key, the function that makes one.
package pagerduty

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// Source is the alerts.Key source of this tool's alerts.
const Source = "pagerduty"

// Event actions.
const (
	ActionTrigger     = "trigger"
	ActionAcknowledge = "acknowledge"
	ActionResolve     = "resolve"
)

// Event statuses of the mapped operations, and the messages of
// acknowledge and resolve (which carry no summary of their own).
const (
	StatusTriggered    = "triggered"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
	MessageAcknowledge = "Acknowledged"
	MessageResolve     = "Resolved"
)

// Limits: PagerDuty's own for summary and dedup_key; the PushGo ones for
// what is mapped; attrs bounded like the other integrations' key/value
// pairs (Dynatrace properties).
const (
	MaxSummary     = 1024
	MaxDedupKey    = 255
	MaxTitle       = 256
	MaxMessage     = 512
	MaxAttrEntries = 100  // custom_details members, links
	MaxAttrKey     = 100  // characters; a longer name is skipped
	MaxAttrValue   = 4096 // characters; a longer value is cut
	maxImages      = 32   // ops' limits on images
	maxURL         = 2048
)

// Event is the request body. Pointers distinguish absent from empty where
// the rules do.
type Event struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"`
	DedupKey    *string  `json:"dedup_key"`
	Payload     *Payload `json:"payload"`
	Images      []Image  `json:"images"`
	Links       []Link   `json:"links"`
	Client      string   `json:"client"`
	ClientURL   string   `json:"client_url"`
}

// Payload is the event's payload (required for trigger).
type Payload struct {
	Summary   string `json:"summary"`
	Source    string `json:"source"`
	Severity  string `json:"severity"`
	Timestamp string `json:"timestamp"`
	Component string `json:"component"`
	Group     string `json:"group"`
	Class     string `json:"class"`
	// CustomDetails is any JSON value (usually an object).
	CustomDetails jsontext.Value `json:"custom_details"`
}

// Image is an image attached to the event.
type Image struct {
	Src  string `json:"src"`
	Href string `json:"href"`
	Alt  string `json:"alt"`
}

// Link is a link attached to the event.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// Invalid is a rejected event: PagerDuty's 400 "Event object is invalid",
// with one string per problem.
type Invalid struct {
	Errors []string
}

func (e *Invalid) Error() string { return "invalid event: " + strings.Join(e.Errors, "; ") }

func invalid(format string, args ...any) *Invalid {
	return &Invalid{Errors: []string{fmt.Sprintf(format, args...)}}
}

// decodeOptions accept unknown members, as PagerDuty does: senders
// (Alertmanager's PagerDuty notifier among them) add fields such as
// client, client_url or payload members over time, and refusing them
// would drop alerts after an upgrade. Duplicate members, wrong types and
// invalid UTF-8 are rejected.
var decodeOptions = json.JoinOptions(
	json.RejectUnknownMembers(false),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// Decode reads body as one Event (syntax and types only; see Validate).
func Decode(body []byte) (*Event, *Invalid) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("the request body is empty")
	}
	if p, found := wire.NumberOutOfRange(body); found {
		return nil, invalid("'%s' is a %s", wire.Dotted(p), wire.OutOfRangeReason)
	}
	var ev Event
	if err := json.Unmarshal(body, &ev, decodeOptions); err != nil {
		return nil, classify(body, err)
	}
	return &ev, nil
}

// Validate checks ev against the Events v2 rules and returns every
// problem found (nil when valid):
//   - routing_key is required;
//   - event_action is trigger, acknowledge or resolve;
//   - dedup_key is at most 255 characters, and required (not blank) for
//     acknowledge and resolve;
//   - payload is required for trigger, with summary (at most 1024
//     characters), source and severity;
//   - payload.severity, when sent (any action), is critical, error,
//     warning or info;
//   - payload.timestamp, when sent, is an ISO 8601 / RFC 3339 time.
func Validate(ev *Event) *Invalid {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(ev.RoutingKey) == "" {
		add("'routing_key' is missing or blank")
	}
	switch ev.EventAction {
	case ActionTrigger, ActionAcknowledge, ActionResolve:
	case "":
		add("'event_action' is missing or blank")
	default:
		add("'event_action' must be one of trigger, acknowledge, resolve; got %q", clip(ev.EventAction))
	}
	if ev.DedupKey != nil {
		if n := utf8.RuneCountInString(*ev.DedupKey); n > MaxDedupKey {
			add("'dedup_key' must be at most %d characters, got %d", MaxDedupKey, n)
		}
	}
	blankKey := ev.DedupKey == nil || strings.TrimSpace(*ev.DedupKey) == ""
	if (ev.EventAction == ActionAcknowledge || ev.EventAction == ActionResolve) && blankKey {
		add("'dedup_key' is required for event_action %s", ev.EventAction)
	}
	p := ev.Payload
	if ev.EventAction == ActionTrigger {
		switch {
		case p == nil:
			add("'payload' is required for event_action trigger")
		default:
			if strings.TrimSpace(p.Summary) == "" {
				add("'payload.summary' is missing or blank")
			} else if n := utf8.RuneCountInString(p.Summary); n > MaxSummary {
				add("'payload.summary' must be at most %d characters, got %d", MaxSummary, n)
			}
			if strings.TrimSpace(p.Source) == "" {
				add("'payload.source' is missing or blank")
			}
			if p.Severity == "" {
				add("'payload.severity' is missing or blank")
			}
		}
	}
	if p != nil {
		if p.Severity != "" && Severity(p.Severity) == "" {
			add("'payload.severity' must be one of critical, error, warning, info; got %q", clip(p.Severity))
		}
		if p.Timestamp != "" {
			if _, ok := parseTime(p.Timestamp); !ok {
				add("'payload.timestamp' must be an ISO 8601 time such as 2015-07-17T08:42:58.315+0000; got %q", clip(p.Timestamp))
			}
		}
	}
	if len(errs) > 0 {
		return &Invalid{Errors: errs}
	}
	return nil
}

// Severity maps a PagerDuty severity to a PushGo one (critical →
// critical, error → high, warning → normal, info → low), "" for any other
// value.
func Severity(s string) string {
	switch s {
	case "critical":
		return ops.SeverityCritical
	case "error":
		return ops.SeverityHigh
	case "warning":
		return ops.SeverityNormal
	case "info":
		return ops.SeverityLow
	}
	return ""
}

// Report is a validated event as an operation for the alert tracker.
type Report struct {
	Action string
	// DedupKey is the key (alerts.Key.Value) and the dedup_key answered:
	// as sent, or the generated one for a trigger that sent none.
	DedupKey string
	// Event holds the operation's fields; ChannelID, OpID, EventID and
	// Password are left for the tracker.
	Event ops.EventRequest
	// Content is what the operation says without its time, to be hashed
	// into its ContentHash (trigger and acknowledge: a resent, unchanged
	// one is not appended again). Nil for resolve.
	Content any
	// Held and HeldContent (trigger only) are what the trigger says to an
	// Event that was acknowledged: the trigger's title, severity, attrs and
	// images under the acknowledged status and message. PagerDuty takes a
	// trigger of an acknowledged incident into its log and notifies no
	// one; the tracker appends Held as a background update
	// (alerts.Report.WhenAcknowledged).
	Held        *ops.EventRequest
	HeldContent any
	// KeepsSeverity (acknowledge and resolve): the event named no
	// severity (PagerDuty's usually name none), so Event.Severity is the
	// default, normal, and the caller should put the Event's own in its
	// place (WithSeverity).
	KeepsSeverity bool
}

// WithSeverity is r with severity sev (an acknowledge or resolve that
// keeps the Event's severity: the caller read it).
func (r Report) WithSeverity(sev string) Report {
	r.Event.Severity = &sev
	if c, ok := r.Content.(content); ok {
		c.Severity = sev
		r.Content = c
	}
	return r
}

type content struct {
	Action   string         `json:"action"`
	Title    string         `json:"title,omitempty"`
	Status   string         `json:"status"`
	Message  string         `json:"message"`
	Severity string         `json:"severity"`
	Images   []string       `json:"images,omitempty"`
	Attrs    map[string]any `json:"attrs,omitempty"`
}

// Translate maps a valid event (see Validate) to a Report at now (ms, the
// event_time when payload.timestamp is absent). newKey makes the dedup_key
// of a trigger that sent none (blank counts as none).
//
// trigger: title = summary cut to 256 characters, message = summary cut to
// 512, status triggered, severity mapped, attrs = source, component,
// group, class, client, client_url, dedup_key, custom_details (one level:
// nested objects and arrays as JSON strings) and links (text → href),
// images = images[].src that are absolute http(s) URLs.
//
// acknowledge and resolve: status acknowledged / resolved, message
// Acknowledged / Resolved. The Event's operations require a severity, and
// PagerDuty's acknowledge and resolve usually carry none: the severity is
// the payload's when sent, else KeepsSeverity is set and the caller puts
// the Event's own in (WithSeverity), so that an acknowledge does not turn
// a critical incident "normal".
func Translate(ev *Event, now int64, newKey func() string) Report {
	r := Report{Action: ev.EventAction}
	if ev.DedupKey != nil && strings.TrimSpace(*ev.DedupKey) != "" {
		r.DedupKey = *ev.DedupKey
	} else {
		r.DedupKey = newKey()
	}
	t := now
	sev := ops.SeverityNormal
	r.KeepsSeverity = ev.EventAction != ActionTrigger
	if p := ev.Payload; p != nil {
		if ms, ok := parseTime(p.Timestamp); ok {
			t = ms
		}
		if s := Severity(p.Severity); s != "" {
			sev, r.KeepsSeverity = s, false
		}
	}
	e := ops.EventRequest{Severity: &sev, EventTime: ptr(wire.Millis(t))}
	switch ev.EventAction {
	case ActionTrigger:
		summary := strings.TrimSpace(ev.Payload.Summary)
		title := strings.TrimSpace(ops.Truncate(summary, MaxTitle))
		message := strings.TrimSpace(ops.Truncate(summary, MaxMessage))
		attrs := triggerAttrs(ev, r.DedupKey)
		e.Title, e.Message, e.Status = &title, &message, ptr(StatusTriggered)
		e.Images = images(ev.Images)
		e.Attrs = marshal(attrs)
		r.Content = content{Action: r.Action, Title: title, Status: StatusTriggered, Message: message, Severity: sev, Images: e.Images, Attrs: attrs}
		held := e
		held.Status, held.Message = ptr(StatusAcknowledged), ptr(MessageAcknowledge)
		r.Held = &held
		r.HeldContent = content{Action: r.Action, Title: title, Status: StatusAcknowledged, Message: MessageAcknowledge, Severity: sev, Images: e.Images, Attrs: attrs}
	case ActionAcknowledge:
		e.Status, e.Message = ptr(StatusAcknowledged), ptr(MessageAcknowledge)
		r.Content = content{Action: r.Action, Status: StatusAcknowledged, Message: MessageAcknowledge, Severity: sev}
	case ActionResolve:
		e.Status, e.Message = ptr(StatusResolved), ptr(MessageResolve)
	}
	r.Event = e
	return r
}

// Parse is Decode, Validate and Translate.
func Parse(body []byte, now int64, newKey func() string) (*Event, Report, *Invalid) {
	ev, inv := Decode(body)
	if inv != nil {
		return nil, Report{}, inv
	}
	if inv := Validate(ev); inv != nil {
		return ev, Report{}, inv
	}
	return ev, Translate(ev, now, newKey), nil
}

// triggerAttrs builds a trigger's attrs. Empty strings are left out:
// they carry nothing.
func triggerAttrs(ev *Event, dedupKey string) map[string]any {
	out := map[string]any{"dedup_key": ops.Truncate(dedupKey, MaxAttrValue)}
	p := ev.Payload
	for k, v := range map[string]string{
		"source": p.Source, "component": p.Component, "group": p.Group, "class": p.Class,
		"client": ev.Client, "client_url": ev.ClientURL,
	} {
		if v = strings.TrimSpace(v); v != "" {
			out[k] = ops.Truncate(v, MaxAttrValue)
		}
	}
	budget := ops.NewAttrsBudget(maxDetailsBytes)
	if d := customDetails(p.CustomDetails); d != nil {
		keepWithin(d, &budget)
		if len(d) > 0 {
			out["custom_details"] = d
		}
	}
	links := map[string]any{}
	for _, l := range ev.Links {
		href := strings.TrimSpace(l.Href)
		if href == "" || len(links) == MaxAttrEntries {
			continue
		}
		name := strings.TrimSpace(l.Text)
		if name == "" {
			name = href
		}
		name = ops.Truncate(name, MaxAttrKey)
		if _, dup := links[name]; !dup { // first of a repeated text wins
			links[name] = ops.Truncate(href, MaxAttrValue)
		}
	}
	keepWithin(links, &budget)
	if len(links) > 0 {
		out["links"] = links
	}
	if budget.Cut() {
		out[TruncatedAttr] = true
	}
	return out
}

// TruncatedAttr is set to true in a trigger's attrs when custom_details
// members or links were left out to respect maxDetailsBytes (the other
// integrations' marker too).
const TruncatedAttr = ops.TruncatedAttr

// maxDetailsBytes bounds custom_details and links together, as encoded.
// Members past it are left out (in name order, custom_details first) and
// TruncatedAttr is set: without a bound, a trigger within the 1 MiB body
// (a value's quotes escaped again when a nested value becomes JSON text)
// made an operation over the size bound (ops.MaxContentBytes) and was
// refused.
const maxDetailsBytes = 64 << 10

// keepWithin deletes from m, in name order, the members that no longer
// fit in budget.
func keepWithin(m map[string]any, budget *ops.AttrsBudget) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if v, err := json.Marshal(m[k]); err != nil || !budget.Take(k, v) {
			delete(m, k)
		}
	}
}

// customDetails flattens custom_details one level, into what attrs
// accept: an object's scalar members as they are (null members left out:
// in a merge patch null deletes), nested objects and arrays as JSON
// strings; names in sorted order, names longer than MaxAttrKey skipped,
// the first MaxAttrEntries kept, string values cut to MaxAttrValue. A
// non-object custom_details (PagerDuty also takes a string) is kept under
// the name "details". Nil when there is nothing to keep.
func customDetails(v jsontext.Value) map[string]any {
	if len(bytes.TrimSpace(v)) == 0 || string(bytes.TrimSpace(v)) == "null" {
		return nil
	}
	var obj map[string]jsontext.Value
	if v.Kind() != '{' || json.Unmarshal(v, &obj) != nil {
		return map[string]any{"details": scalar(v)}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if k != "" && utf8.RuneCountInString(k) <= MaxAttrKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := map[string]any{}
	for _, k := range keys {
		if len(out) == MaxAttrEntries {
			break
		}
		if val := obj[k]; val.Kind() != 'n' {
			out[k] = scalar(val)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// scalar returns v as an attrs scalar: strings (cut), numbers and booleans
// as they are, anything else as its compact JSON text (cut).
func scalar(v jsontext.Value) any {
	switch v.Kind() {
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return ops.Truncate(s, MaxAttrValue)
		}
	case '0', 't', 'f':
		return v.Clone() // raw JSON number or boolean, kept exactly
	}
	c := v.Clone()
	_ = c.Compact()
	return ops.Truncate(string(c), MaxAttrValue)
}

// images returns the src of every image that can be an Event image (an
// absolute http(s) URL of at most 2048 characters), first occurrence of a
// repeat kept, at most 32; others are dropped rather than failing the
// event. Nil when none.
func images(in []Image) []string {
	var out []string
	for _, im := range in {
		s := strings.TrimSpace(im.Src)
		if s == "" || utf8.RuneCountInString(s) > maxURL || slices.Contains(out, s) || len(out) == maxImages {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		out = append(out, s)
	}
	return out
}

func marshal(m map[string]any) jsontext.Value {
	b, err := json.Marshal(m, json.Deterministic(true))
	if err != nil {
		return nil // unreachable: strings, raw scalars and maps of them
	}
	return b
}

// maxMillis is wire.Millis' upper bound, 9999-12-31T23:59:59.999Z.
const maxMillis = 253_402_300_799_999

// timeLayouts are the ISO 8601 forms senders use: RFC 3339, the numeric
// zone without a colon of PagerDuty's own examples
// (2015-07-17T08:42:58.315+0000), and a local time with no zone at all,
// read as UTC: what Python's datetime.isoformat() writes for a naive time
// (senders through pdpyras do), which PagerDuty takes. Each also with a
// space for the T (RFC 3339's note allows it; Python's str() writes it).
var timeLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999",
}

// parseTime parses payload.timestamp to ms (at or after the Unix epoch).
func parseTime(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			ms := t.UnixMilli()
			return ms, ms >= 0 && ms <= maxMillis
		}
	}
	return 0, false
}

// clip shortens a rejected value for an error message.
func clip(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		return ops.Truncate(s, 64) + "..."
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// classify maps a decoding error of body to PagerDuty's error strings,
// naming the member as wire.Classify does.
func classify(body []byte, err error) *Invalid {
	var syn *jsontext.SyntacticError
	var se *json.SemanticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		return invalid("'%s' is given more than once", wire.PointerOf(err))
	case errors.As(err, &se):
		kind := "value"
		if se.JSONKind != 0 {
			kind = se.JSONKind.String()
		}
		return invalid("'%s' has the wrong type (%s)", wire.PointerOf(err), kind)
	case errors.As(err, &syn):
		// Text that is not Unicode in well-formed JSON (the decoder stops
		// at the first fault: FindFault finds the same one).
		if f, ok := wire.FindFault(body); ok && f.InName {
			return invalid("'%s' holds a member name that is not valid UTF-8 (%s)", f.Field(), f.What)
		} else if ok && !f.Duplicate {
			return invalid("'%s' is not valid UTF-8 (%s)", f.Field(), f.What)
		}
		return invalid("the request body is not valid JSON (at byte %d)", syn.ByteOffset)
	}
	return invalid("the request body is not valid JSON")
}

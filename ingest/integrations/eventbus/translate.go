package eventbus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// Status is the status of every recorded CloudEvent: an occurrence, not a
// problem that stays open.
const Status = "occurred"

// Limits of the translation. A CloudEvent is shortened to fit PushGo's
// limits, never refused for its length.
const (
	maxTitle   = 256 // ops' title limit, in characters
	maxMessage = 512 // ops' message limit, in characters
	// maxAttrValue bounds one data value in attrs, in characters: a
	// larger string (or nested value turned into JSON text) is cut.
	maxAttrValue = 1024
	// maxAttrsBytes bounds the data part of an Event's attrs, as encoded:
	// the body limit of the PushGo routes (32 KiB), so an integration
	// Event is never larger than one /event/create could make, and a
	// batch near the 1 MiB body limit cannot make an operation the broker
	// refuses. Data members past it are left out and TruncatedAttr is set.
	maxAttrsBytes = 32 << 10
)

// TruncatedAttr is set to true in an Event's attrs when members of the
// CloudEvent's data were left out to respect maxAttrsBytes.
const TruncatedAttr = ops.TruncatedAttr

// opIDPrefix marks the op_ids of CloudEvent creates (both routes share it:
// one CloudEvent sent through either is one Event).
const opIDPrefix = "eb:"

// OpID returns the op_id of the create that records the CloudEvent
// source+id in channelID: the CloudEvents idempotency key as a PushGo
// op_id, so a resent CloudEvent lands on the same Event. The parts are
// length-prefixed so that no two (source, id) pairs hash alike.
func OpID(channelID, source, id string) string {
	h := sha256.New()
	for _, p := range []string{channelID, source, id} {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return opIDPrefix + hex.EncodeToString(h.Sum(nil))[:40]
}

// CloseOpID is the op_id of the close that follows the create opID.
func CloseOpID(opID string) string { return opID + ":close" }

// ResolveBus checks that every event of b names the channel (channelID,
// channelName) as its event bus: the event's eventBusId, else the
// top-level eventBusId, else the event's eventBusName, given as the
// channel's id (case-insensitive, as ids.NormalizeChannelID) or its name.
// It answers InvalidParameter when an event names no bus and
// AuthorizationError when one names another.
func (b *Batch) ResolveBus(channelID, channelName string) *Error {
	for i := range b.Events {
		e := &b.Events[i]
		prefix := "eventList[" + strconv.Itoa(i) + "]"
		v, field := e.EventBusID, join(prefix, "eventBusId")
		if v == "" {
			v, field = b.EventBusID, "eventBusId"
		}
		if v == "" {
			v, field = e.EventBusName, join(prefix, "eventBusName")
		}
		if v == "" {
			return &Error{Code: InvalidParameter, Field: "eventBusId", Reason: "is required"}
		}
		if !NamesChannel(v, channelID, channelName) {
			return &Error{Code: AuthorizationError, Field: field, Reason: "names an event bus this token cannot write to"}
		}
	}
	return nil
}

// NamesChannel reports whether v is the channel's id (in any case) or its
// name (exactly, after trimming).
func NamesChannel(v, channelID, channelName string) bool {
	v = strings.TrimSpace(v)
	if id, ok := ids.NormalizeChannelID(v); ok && id == channelID {
		return true
	}
	return channelName != "" && v == channelName
}

// ParseSeverity returns the PushGo severity s names, case-insensitively.
func ParseSeverity(s string) (string, bool) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case ops.SeverityCritical, ops.SeverityHigh, ops.SeverityNormal, ops.SeverityLow:
		return v, true
	}
	return "", false
}

// SeverityOf maps e to a PushGo severity: its Severity when set, else its
// level (CRITICAL → critical, MAJOR → high, WARNING → normal, NOTICE or
// none → low).
func (e *Event) SeverityOf() string {
	if e.Severity != "" {
		return e.Severity
	}
	switch e.Level {
	case LevelCritical:
		return ops.SeverityCritical
	case LevelMajor:
		return ops.SeverityHigh
	case LevelWarning:
		return ops.SeverityNormal
	}
	return ops.SeverityLow
}

// Occurrence is the pair of operations that record one CloudEvent: an
// Event created and closed at once.
type Occurrence struct {
	// OpID is the create's op_id; the close's is CloseOpID(OpID).
	OpID string
	// EventID is the id of the created Event (derived from OpID).
	EventID string
	// Create links the Event to the Thing named by the CloudEvent's
	// subject when the subject is a valid thing id (ThingID set): the
	// caller appends it again without ThingID when that Thing does not
	// exist or is deleted.
	Create ops.EventRequest
	Close  ops.EventRequest
}

// Occurrence translates e, received at received, into the operations that
// record it in channelID (canonical). e.ID MUST be set (the caller
// generates one when the sender sent none).
//
// The Event happens at e.Time (or received): event_time, started_at and
// ended_at are all that time. Its title is eventAliasEn, else type; its
// message is data's "message" or "info" string, else type; its attrs are
// data flattened one level plus the CloudEvent's context as "ce.<name>".
func (e *Event) Occurrence(channelID string, received time.Time) Occurrence {
	opID := OpID(channelID, e.Source, e.ID)
	at := wire.Millis(e.At(received).UnixMilli())
	title := e.EventAliasEn
	if title == "" {
		title = e.Type
	}
	title = ops.Truncate(strings.TrimSpace(title), maxTitle)
	message := ops.Truncate(e.message(), maxMessage)
	severity := e.SeverityOf()
	status := Status
	o := Occurrence{OpID: opID, EventID: ids.DeriveEntityID(channelID, string(ops.EventCreate), opID)}
	o.Create = ops.EventRequest{
		ChannelID: &channelID, OpID: &opID, Title: &title, Status: &status, Message: &message,
		Severity: &severity, EventTime: &at, Attrs: e.Attrs(),
	}
	if ids.ValidEntityID(e.Subject) {
		subject := e.Subject
		o.Create.ThingID = &subject
	}
	closeOpID := CloseOpID(opID)
	o.Close = ops.EventRequest{
		ChannelID: &channelID, OpID: &closeOpID, EventID: &o.EventID, Status: &status, Message: &message,
		Severity: &severity, EventTime: &at,
	}
	return o
}

// At is the time e happened: its time, else received.
func (e *Event) At(received time.Time) time.Time {
	if e.Time.IsZero() {
		return received
	}
	return e.Time
}

// message is data's "message" or "info" string (the first not blank),
// else the type.
func (e *Event) message() string {
	for _, key := range []string{"message", "info"} {
		if s := dataString(e.Data, key); s != "" {
			return s
		}
	}
	return e.Type
}

// dataString returns the trimmed string member key of the object data, ""
// when absent or not a string.
func dataString(data jsontext.Value, key string) string {
	if len(data) == 0 {
		return ""
	}
	var m map[string]jsontext.Value
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	var s string
	if m[key].Kind() != '"' || json.Unmarshal(m[key], &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// attr is one context attribute: the member name as the API spells it and
// its value.
type attr struct {
	member, value string
}

// context lists e's context attributes that become attrs, in a fixed
// order (extensions sorted by name), so equal events give equal bodies.
// time is the event time, and the bus members name the channel, so
// neither is repeated in attrs.
func (e *Event) context() []attr {
	all := []attr{
		{"id", e.ID}, {"source", e.Source}, {"type", e.Type}, {"specversion", e.SpecVersion},
		{"datacontenttype", e.DataContentType}, {"subject", e.Subject}, {"resourceType", e.ResourceType},
		{"level", e.Level}, {"severity", e.Severity}, {"accountId", e.AccountID},
		{"eventSourceAlias", e.EventSourceAlias}, {"eventAlias", e.EventAlias}, {"eventAliasEn", e.EventAliasEn},
		{"region", e.Region}, {"recvTimestamp", e.RecvTimestamp},
	}
	names := make([]string, 0, len(e.Extensions))
	for n := range e.Extensions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		all = append(all, attr{n, e.Extensions[n]})
	}
	out := all[:0]
	for _, a := range all {
		if a.value != "" {
			out = append(out, a)
		}
	}
	return out
}

// Attrs returns e's attrs (an ops attrs patch): data flattened one level
// (a nested object's members become "parent.child"; deeper values and
// arrays become JSON text; nulls are left out), then the context as
// "ce.<lower-case name>". A context key wins over a data key of the same
// name; between data keys, the first wins; a data key named TruncatedAttr
// is left out. nil when there is nothing.
func (e *Event) Attrs() jsontext.Value {
	var ctx []member
	taken := map[string]bool{}
	for _, a := range e.context() {
		key := "ce." + strings.ToLower(a.member)
		if taken[key] {
			continue // an extension spelled like a context member
		}
		taken[key] = true
		ctx = append(ctx, member{key, quote(a.value)})
	}
	// The marker's name is the gateway's: a data member spelled so is left
	// out like one a context key takes, so the attrs never name it twice.
	taken[TruncatedAttr] = true
	data, dropped := flatten(e.Data, taken)
	if dropped {
		ctx = append(ctx, member{TruncatedAttr, jsontext.Value("true")})
	}
	all := append(data, ctx...)
	if len(all) == 0 {
		return nil
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range all {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(quote(m.key))
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return jsontext.Value(buf.Bytes())
}

type member struct {
	key   string
	value jsontext.Value
}

// flatten turns the data object into attrs members, skipping keys already
// taken (and marking the ones it adds), within maxAttrsBytes; dropped
// reports members left out for the budget.
func flatten(data jsontext.Value, taken map[string]bool) (out []member, dropped bool) {
	if len(data) == 0 {
		return nil, false
	}
	budget := ops.NewAttrsBudget(maxAttrsBytes)
	add := func(key string, v jsontext.Value) {
		v = attrValue(v)
		// A blank key is refused in attrs (PushGo's rule): left out, as a
		// report is never refused for what its data holds.
		if v == nil || taken[key] || strings.TrimSpace(key) == "" || !budget.Take(key, v) {
			return
		}
		taken[key] = true
		out = append(out, member{key, v})
	}
	d := jsontext.NewDecoder(bytes.NewReader(data))
	if _, err := d.ReadToken(); err != nil { // '{'; data was validated
		return nil, false
	}
	for d.PeekKind() == '"' {
		tok, err := d.ReadToken()
		if err != nil {
			return out, budget.Cut()
		}
		name := tok.String() // before the next read voids tok
		if d.PeekKind() != '{' {
			v, err := d.ReadValue()
			if err != nil {
				return out, budget.Cut()
			}
			add(name, v)
			continue
		}
		if _, err := d.ReadToken(); err != nil {
			return out, budget.Cut()
		}
		for d.PeekKind() == '"' {
			tok, err := d.ReadToken()
			if err != nil {
				return out, budget.Cut()
			}
			key := name + "." + tok.String()
			v, err := d.ReadValue()
			if err != nil {
				return out, budget.Cut()
			}
			add(key, v)
		}
		if _, err := d.ReadToken(); err != nil { // '}'
			return out, budget.Cut()
		}
	}
	return out, budget.Cut()
}

// attrValue is v as an attrs value: scalars as they are (strings cut to
// maxAttrValue), objects and arrays as their JSON text (cut likewise),
// nil for null.
func attrValue(v jsontext.Value) jsontext.Value {
	switch v.Kind() {
	case 'n':
		return nil
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		if len(s) <= maxAttrValue {
			return v.Clone()
		}
		return quote(ops.Truncate(s, maxAttrValue))
	case '{', '[':
		c := v.Clone()
		if c.Compact() != nil {
			return nil
		}
		return quote(ops.Truncate(string(c), maxAttrValue))
	}
	return v.Clone()
}

// quote is s as a JSON string.
func quote(s string) jsontext.Value {
	b, err := jsontext.AppendQuote(nil, s)
	if err != nil {
		// Only invalid UTF-8 fails, and decoding rejected it; a cut never
		// splits a rune.
		b, _ = jsontext.AppendQuote(nil, strings.ToValidUTF8(s, "\uFFFD"))
	}
	return b
}

// Response is the 200 answer of the event bus route.
type Response struct {
	Events []ResponseEvent `json:"events"`
}

// ResponseEvent is one accepted CloudEvent as the provider answers it:
// as sent, with id, time and recvTimestamp filled in, data as an object
// and the bus as resolved.
type ResponseEvent struct {
	Data             jsontext.Value `json:"data,omitzero"`
	ID               string         `json:"id"`
	Source           string         `json:"source"`
	SpecVersion      string         `json:"specversion,omitempty"`
	Type             string         `json:"type"`
	DataContentType  string         `json:"datacontenttype,omitempty"`
	Subject          string         `json:"subject,omitempty"`
	Time             string         `json:"time"`
	ResourceType     string         `json:"resourceType,omitempty"`
	Level            string         `json:"level,omitempty"`
	AccountID        string         `json:"accountId,omitempty"`
	EventBusID       string         `json:"eventBusId"`
	EventBusName     string         `json:"eventBusName"`
	EventSourceAlias string         `json:"eventSourceAlias,omitempty"`
	EventAlias       string         `json:"eventAlias,omitempty"`
	EventAliasEn     string         `json:"eventAliasEn,omitempty"`
	Region           string         `json:"region,omitempty"`
	RecvTimestamp    string         `json:"recvTimestamp"`
}

// Response is e as answered: the time as sent when it was sent as a date
// string, else RFC 3339 in UTC (milliseconds when not whole seconds);
// recvTimestamp is received in RFC 3339 with its offset; the bus is the
// channel (channelID, channelName).
func (e *Event) Response(channelID, channelName string, received time.Time) ResponseEvent {
	t := e.TimeText
	if t == "" {
		t = e.At(received).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	}
	return ResponseEvent{
		Data: e.Data, ID: e.ID, Source: e.Source, SpecVersion: e.SpecVersion, Type: e.Type,
		DataContentType: e.DataContentType, Subject: e.Subject, Time: t, ResourceType: e.ResourceType,
		Level: e.Level, AccountID: e.AccountID, EventBusID: channelID, EventBusName: channelName,
		EventSourceAlias: e.EventSourceAlias, EventAlias: e.EventAlias, EventAliasEn: e.EventAliasEn,
		Region: e.Region, RecvTimestamp: received.Format(time.RFC3339),
	}
}

package payload

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/ops"
)

// Errors of Build. ErrExpired is not a fault: the message's ttl has passed
// and spec section 6 says it is not delivered; the caller records that.
var (
	ErrExpired         = errors.New("payload: message expired (ttl passed)")
	ErrUnknownOp       = errors.New("payload: unknown operation")
	ErrUnknownProvider = errors.New("payload: unknown provider")
)

// MaxCollapseIDBytes is the APNs limit on apns-collapse-id.
const MaxCollapseIDBytes = 64

// Wake-up limits: the visible alert of a wake-up push is cut to these sizes
// (at a rune boundary) so the wake-up always fits.
const (
	wakeTitleBytes = 256
	wakeBodyBytes  = 512
	summaryBytes   = 160
)

// DeliveryID is the id of the delivery task of operation seq for a device:
// "<op seq>:<device_key>" (DESIGN: PUSHGO_DELIVERIES message id).
func DeliveryID(seq uint64, deviceKey string) string {
	return strconv.FormatUint(seq, 10) + ":" + deviceKey
}

// Build decides what device deviceKey receives through provider for the
// operation env, stored at stream sequence seq. now is the send time (the
// sent_at key and the expiry check).
//
// It returns ErrExpired for a message whose ttl is not after now, and an
// error for an envelope whose payload does not decode. An item too large for
// the provider comes back as a wake-up push with Oversized set.
func Build(env ops.Envelope, seq uint64, deviceKey string, provider Provider, token string, now time.Time, opts ...Option) (Notification, error) {
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	if !provider.Valid() {
		return Notification{}, fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	n := Notification{
		DeliveryID: DeliveryID(seq, deviceKey),
		Provider:   provider,
		Token:      token,
	}
	d := map[string]string{
		"channel_id":      env.ChannelID,
		"schema_version":  SchemaVersion,
		"payload_version": PayloadVersion,
		"op_id":           env.OpID,
		"delivery_id":     n.DeliveryID,
		"ingested_at":     ms(env.AcceptedAt),
		"sent_at":         ms(now.UnixMilli()),
		"entity_id":       env.EntityID,
	}
	kind := env.Op.Kind()
	if kind == "" {
		return Notification{}, fmt.Errorf("%w %q", ErrUnknownOp, env.Op)
	}
	d["entity_type"] = string(kind)

	switch kind {
	case ops.KindMessage:
		var p ops.MessagePayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return Notification{}, fmt.Errorf("payload: decode %s: %w", env.Op, err)
		}
		if p.TTL != nil {
			if *p.TTL <= now.UnixMilli() {
				return Notification{}, ErrExpired
			}
			d["ttl"] = ms(*p.TTL)
			n.Expiration = time.UnixMilli(*p.TTL).UTC()
		}
		n.Title, n.Body, n.Severity = p.Title, p.Body, p.Severity
		d["occurred_at"] = ms(p.OccurredAt)
		put(d, "thing_id", p.ThingID)
		put(d, "url", p.URL)
		putList(d, "images", p.Images)
		putList(d, "tags", p.Tags)
		putValue(d, "metadata", p.Metadata)
		put(d, "ciphertext", p.Ciphertext)
		n.ThreadID = env.ChannelID
		if p.ThingID != "" {
			n.ThreadID = env.ChannelID + ":thing:" + p.ThingID
		}

	case ops.KindEvent:
		var p ops.EventPayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return Notification{}, fmt.Errorf("payload: decode %s: %w", env.Op, err)
		}
		state := ops.EventOngoing
		if env.Op == ops.EventClose {
			state = ops.EventClosed
		}
		n.Title = p.Title
		if n.Title == "" {
			n.Title = "Event " + p.Status
		}
		n.Body = p.Message + " (" + p.Status + ")"
		n.Severity = p.Severity
		d["event_id"] = env.EntityID
		d["event_state"] = state
		d["event_time"] = ms(p.EventTime)
		d["occurred_at"] = ms(p.EventTime)
		d["status"] = p.Status
		d["message"] = p.Message
		put(d, "description", p.Description)
		if p.StartedAt != nil {
			d["started_at"] = ms(*p.StartedAt)
		}
		if p.EndedAt != nil {
			d["ended_at"] = ms(*p.EndedAt)
		}
		put(d, "thing_id", p.ThingID)
		putList(d, "tags", p.Tags)
		putList(d, "images", p.Images)
		putValue(d, "attrs", p.Attrs)
		putValue(d, "metadata", p.Metadata)
		put(d, "ciphertext", p.Ciphertext)
		if p.Deadline != nil {
			d["deadline"] = ms(*p.Deadline)
		}
		// An integration's refresh says nothing new: the device learns the
		// new deadline without an alert.
		n.Background = env.Op == ops.EventUpdate && p.Refresh
		n.CollapseID = collapseID(kind, env.EntityID, n.Background)
		n.ThreadID = env.ChannelID + ":event:" + env.EntityID

	case ops.KindThing:
		var p ops.ThingPayload
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return Notification{}, fmt.Errorf("payload: decode %s: %w", env.Op, err)
		}
		state := ops.ThingActive
		switch env.Op {
		case ops.ThingArchive:
			state = ops.ThingArchived
		case ops.ThingDelete:
			state = ops.ThingDeleted
		}
		n.Title = p.Title
		if n.Title == "" {
			n.Title = env.EntityID
		}
		n.Body = thingSummary(env.Op, &p)
		n.Severity = ops.SeverityNormal
		n.Background = env.Op == ops.ThingUpdate && !o.thingUpdateAlerts
		d["thing_id"] = env.EntityID
		d["state"] = state
		d["observed_at"] = ms(p.ObservedAt)
		d["occurred_at"] = ms(p.ObservedAt)
		put(d, "description", p.Description)
		put(d, "primary_image", p.PrimaryImage)
		putList(d, "tags", p.Tags)
		putList(d, "images", p.Images)
		putValue(d, "attrs", p.Attrs)
		putValue(d, "metadata", p.Metadata)
		put(d, "ciphertext", p.Ciphertext)
		n.CollapseID = collapseID(kind, env.EntityID, n.Background)
		n.ThreadID = env.ChannelID + ":thing:" + env.EntityID
	}

	m, ok := MapSeverity(n.Severity)
	if !ok {
		n.Severity = ops.SeverityNormal
		m = severityTable[ops.SeverityNormal]
	}
	n.InterruptionLevel = m.InterruptionLevel
	n.Priority = m.Priority
	if n.Background {
		n.Priority = PriorityNormal
	}
	d["title"] = n.Title
	d["body"] = n.Body
	d["severity"] = n.Severity
	n.Data, n.Full = d, d

	if n.Provider == APNs {
		body, err := APNsJSON(n)
		if err != nil {
			return Notification{}, err
		}
		if len(body) <= MaxPayloadBytes {
			n.APNsBody = body
			return n, nil
		}
		return wakeUp(n), nil
	}
	if Size(n) > MaxPayloadBytes {
		n = wakeUp(n)
	}
	return n, nil
}

// wakeUp replaces the content of an oversized n with a small push that
// tells the device to fetch delivery_id from its inbox. The alert stays
// visible (cut short) so the person still sees what happened if the fetch
// fails; mutable-content lets the app's extension fetch the full item.
func wakeUp(n Notification) Notification {
	full := n.Data
	n.Title = cut(n.Title, wakeTitleBytes)
	n.Body = cut(n.Body, wakeBodyBytes)
	d := map[string]string{
		"wakeup":          "1",
		"title":           n.Title,
		"body":            n.Body,
		"severity":        n.Severity,
		"schema_version":  SchemaVersion,
		"payload_version": PayloadVersion,
	}
	for _, k := range []string{"delivery_id", "channel_id", "entity_type", "entity_id", "op_id", "ingested_at", "sent_at", "ttl"} {
		put(d, k, full[k])
	}
	n.Data, n.Full, n.Oversized = d, full, true
	return n
}

// collapseID is "<kind>:<entity id>" (":bg" appended for background pushes,
// so a Thing's silent state updates never replace its visible alerts). An id
// longer than the APNs limit is replaced by a hash of it.
func collapseID(kind ops.Kind, entityID string, background bool) string {
	id := string(kind) + ":" + entityID
	if background {
		id += ":bg"
	}
	if len(id) <= MaxCollapseIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return string(kind) + ":h:" + hex.EncodeToString(sum[:16])
}

// thingSummary is the short visible text of a thing operation.
func thingSummary(op ops.Name, p *ops.ThingPayload) string {
	switch op {
	case ops.ThingCreate:
		if p.Description != "" {
			return cut(p.Description, summaryBytes)
		}
		return "Created"
	case ops.ThingArchive:
		return "Archived"
	case ops.ThingDelete:
		return "Deleted"
	}
	if s := attrsSummary(p.Attrs); s != "" {
		return cut(s, summaryBytes)
	}
	if p.Description != "" {
		return cut(p.Description, summaryBytes)
	}
	return "Updated"
}

// attrsSummary renders the scalar members of an attrs patch as
// "k=v, k=v" in key order; removed keys and nested objects are left out.
func attrsSummary(v jsontext.Value) string {
	if len(v) == 0 {
		return ""
	}
	var m map[string]jsontext.Value
	if err := json.Unmarshal(v, &m); err != nil {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		val := m[k]
		switch val.Kind() {
		case '{', 'n':
			continue
		case '"':
			var s string
			if json.Unmarshal(val, &s) != nil {
				continue
			}
			val = jsontext.Value(s)
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.Write(val)
		if b.Len() > summaryBytes {
			break
		}
	}
	return b.String()
}

func ms(v int64) string { return strconv.FormatInt(v, 10) }

func put(d map[string]string, k, v string) {
	if v != "" {
		d[k] = v
	}
}

// putList stores a list as a JSON array string; an explicitly empty list is
// kept ("[]" clears the list on the device), an absent one is omitted.
func putList(d map[string]string, k string, v []string) {
	if v == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	d[k] = string(b)
}

func putValue(d map[string]string, k string, v jsontext.Value) {
	if len(v) > 0 {
		d[k] = string(v)
	}
}

// cut shortens s to at most n bytes at a rune boundary, ending in "…" when
// it cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	n -= len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

// Option changes what Build makes.
type Option func(*buildOptions)

type buildOptions struct{ thingUpdateAlerts bool }

// ThingUpdatesAsAlerts makes thing.update a visible alert instead of a
// background push: for channels whose Things change rarely and whose
// people want to see every change (PUSHGO_THING_UPDATE_ALERTS).
func ThingUpdatesAsAlerts() Option { return func(o *buildOptions) { o.thingUpdateAlerts = true } }

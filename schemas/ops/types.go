// Package ops is the operation contract shared by ingest, projector and
// pusher: the request bodies of the write routes, their validation and
// normalisation, and the normalised payloads that go into the log.
//
// The flow is: ingest decodes a body into a *Request type (wire.Decode),
// calls the matching Validate function, which returns a *Validated holding
// the normalised payload and the body hash, then decides and appends an
// Envelope whose Payload is that normalised payload.
//
// Validation is pure: it reads no clock (the caller passes now), no state and
// no network, so the same request always validates the same way.
package ops

import (
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// Kind is the kind of entity an operation is about.
type Kind string

const (
	KindEvent   Kind = "event"
	KindThing   Kind = "thing"
	KindMessage Kind = "message"
)

// Name is an operation name. It is also the route it came from, with the
// slash replaced by a dot, and it is carried in the Pushgo-Op header.
type Name string

const (
	EventCreate   Name = "event.create"
	EventUpdate   Name = "event.update"
	EventClose    Name = "event.close"
	ThingCreate   Name = "thing.create"
	ThingUpdate   Name = "thing.update"
	ThingArchive  Name = "thing.archive"
	ThingDelete   Name = "thing.delete"
	MessageCreate Name = "message.create"
)

// Names lists every operation name.
var Names = []Name{EventCreate, EventUpdate, EventClose, ThingCreate, ThingUpdate, ThingArchive, ThingDelete, MessageCreate}

// Kind returns the entity kind of n.
func (n Name) Kind() Kind {
	switch n {
	case EventCreate, EventUpdate, EventClose:
		return KindEvent
	case ThingCreate, ThingUpdate, ThingArchive, ThingDelete:
		return KindThing
	case MessageCreate:
		return KindMessage
	}
	return ""
}

// IsCreate reports whether n creates its entity (messages are creates).
func (n Name) IsCreate() bool {
	return n == EventCreate || n == ThingCreate || n == MessageCreate
}

// Valid reports whether n is a known operation name.
func (n Name) Valid() bool { return n.Kind() != "" }

// Severity values.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityNormal   = "normal"
	SeverityLow      = "low"
)

// Event states (as PushGo: upper case).
const (
	EventOngoing = "ONGOING"
	EventClosed  = "CLOSED"
)

// Thing states.
const (
	ThingActive   = "active"
	ThingArchived = "archived"
	ThingDeleted  = "deleted"
)

// ---------------------------------------------------------------------------
// Requests: what senders post. Pointers distinguish "absent" from "empty" so
// that validation can tell a missing required field from an empty one.
// Credentials (password) are in the request and never in a payload.

// EventRequest is the body of /event/create, /event/update and /event/close.
type EventRequest struct {
	ChannelID   *string        `json:"channel_id"`
	Password    *string        `json:"password"`
	OpID        *string        `json:"op_id"`
	EventID     *string        `json:"event_id"`
	ThingID     *string        `json:"thing_id"`
	Title       *string        `json:"title"`
	Description *string        `json:"description"`
	Status      *string        `json:"status"`
	Message     *string        `json:"message"`
	Severity    *string        `json:"severity"`
	EventTime   *wire.Millis   `json:"event_time"`
	StartedAt   *wire.Millis   `json:"started_at"`
	EndedAt     *wire.Millis   `json:"ended_at"`
	Tags        []string       `json:"tags"`
	Images      []string       `json:"images"`
	Attrs       jsontext.Value `json:"attrs"`
	Metadata    jsontext.Value `json:"metadata"`
	Ciphertext  *string        `json:"ciphertext"`
}

// ThingRequest is the body of /thing/create, /thing/update, /thing/archive
// and /thing/delete.
type ThingRequest struct {
	ChannelID     *string        `json:"channel_id"`
	Password      *string        `json:"password"`
	OpID          *string        `json:"op_id"`
	ThingID       *string        `json:"thing_id"`
	Title         *string        `json:"title"`
	Description   *string        `json:"description"`
	Tags          []string       `json:"tags"`
	PrimaryImage  *string        `json:"primary_image"`
	Images        []string       `json:"images"`
	CreatedAt     *wire.Millis   `json:"created_at"`
	DeletedAt     *wire.Millis   `json:"deleted_at"`
	ObservedAt    *wire.Millis   `json:"observed_at"`
	ExternalIDs   jsontext.Value `json:"external_ids"`
	LocationType  *string        `json:"location_type"`
	LocationValue *string        `json:"location_value"`
	Attrs         jsontext.Value `json:"attrs"`
	Metadata      jsontext.Value `json:"metadata"`
	Ciphertext    *string        `json:"ciphertext"`
}

// MessageRequest is the body of POST /message (GET /message carries the same
// fields as query parameters; see MessageRequestFromQuery).
type MessageRequest struct {
	ChannelID  *string        `json:"channel_id"`
	Password   *string        `json:"password"`
	OpID       *string        `json:"op_id"`
	ThingID    *string        `json:"thing_id"`
	Title      *string        `json:"title"`
	Body       *string        `json:"body"`
	Severity   *string        `json:"severity"`
	OccurredAt *wire.Millis   `json:"occurred_at"`
	URL        *string        `json:"url"`
	Images     []string       `json:"images"`
	Tags       []string       `json:"tags"`
	Metadata   jsontext.Value `json:"metadata"`
	Ciphertext *string        `json:"ciphertext"`
	TTL        *wire.Millis   `json:"ttl"`
}

// ChannelCreateRequest is the body of /channel/create.
type ChannelCreateRequest struct {
	ChannelName *string `json:"channel_name"`
	Password    *string `json:"password"`
}

// ChannelRenameRequest is the body of /channel/rename.
type ChannelRenameRequest struct {
	ChannelID   *string `json:"channel_id"`
	Password    *string `json:"password"`
	ChannelName *string `json:"channel_name"`
}

// ---------------------------------------------------------------------------
// Payloads: the normalised operation bodies that go into the log. They hold
// no credentials. Every default that depends on the clock or on other fields
// is resolved here, so folding a payload is deterministic.
//
// Slices use omitzero: an absent list is nil and omitted, an explicitly empty
// list is kept (it clears the snapshot's list).

// EventPayload is the payload of event.create, event.update and event.close.
type EventPayload struct {
	EventID     string         `json:"event_id"`
	ThingID     string         `json:"thing_id,omitempty"`
	Title       string         `json:"title,omitempty"`
	Description string         `json:"description,omitempty"`
	Status      string         `json:"status"`
	Message     string         `json:"message"`
	Severity    string         `json:"severity"`
	EventTime   int64          `json:"event_time"`
	StartedAt   *int64         `json:"started_at,omitempty"` // create only; defaults to EventTime
	EndedAt     *int64         `json:"ended_at,omitempty"`   // close only; defaults to EventTime
	Tags        []string       `json:"tags,omitzero"`
	Images      []string       `json:"images,omitzero"`
	Attrs       jsontext.Value `json:"attrs,omitzero"`    // validated patch, compact
	Metadata    jsontext.Value `json:"metadata,omitzero"` // validated object, keys trimmed, compact
	Ciphertext  string         `json:"ciphertext,omitempty"`
	// Deadline (ms) is set by integrations (Dynatrace problem events): when
	// it passes with no later operation on the event, the gateway closes
	// the event itself with status timed_out. An operation without it
	// keeps the event's deadline; a close clears it.
	Deadline *int64 `json:"deadline,omitempty"`
	// Refresh marks an integration update that is pushed as a background
	// update: one that re-asserts an open event without changing what it
	// says (it only moves the deadline), so a tool that re-sends an open
	// problem every minute does not ring the phone every minute, or one
	// that an acknowledged event takes in without alerting anyone again (a
	// PagerDuty trigger of an acknowledged incident, its re-sent
	// acknowledge). It is folded as any update.
	Refresh bool `json:"refresh,omitzero"`
}

// ThingPayload is the payload of thing.create, thing.update, thing.archive
// and thing.delete.
type ThingPayload struct {
	ThingID       string             `json:"thing_id"`
	Title         string             `json:"title,omitempty"`
	Description   string             `json:"description,omitempty"`
	Tags          []string           `json:"tags,omitzero"`
	PrimaryImage  string             `json:"primary_image,omitempty"`
	Images        []string           `json:"images,omitzero"`
	ObservedAt    int64              `json:"observed_at"`
	CreatedAt     *int64             `json:"created_at,omitempty"`  // create only; defaults to ObservedAt
	DeletedAt     *int64             `json:"deleted_at,omitempty"`  // delete only; defaults to ObservedAt
	ExternalIDs   map[string]*string `json:"external_ids,omitzero"` // keys lower-cased; nil value removes
	LocationType  string             `json:"location_type,omitempty"`
	LocationValue string             `json:"location_value,omitempty"` // normalised per type
	Attrs         jsontext.Value     `json:"attrs,omitzero"`
	Metadata      jsontext.Value     `json:"metadata,omitzero"`
	Ciphertext    string             `json:"ciphertext,omitempty"`
}

// MessagePayload is the payload of message.create.
type MessagePayload struct {
	MessageID  string         `json:"message_id"`
	ThingID    string         `json:"thing_id,omitempty"`
	Title      string         `json:"title"`
	Body       string         `json:"body,omitempty"`
	Severity   string         `json:"severity"`    // defaults to normal
	OccurredAt int64          `json:"occurred_at"` // defaults to now
	URL        string         `json:"url,omitempty"`
	Images     []string       `json:"images,omitzero"`
	Tags       []string       `json:"tags,omitzero"`
	Metadata   jsontext.Value `json:"metadata,omitzero"`
	Ciphertext string         `json:"ciphertext,omitempty"`
	TTL        *int64         `json:"ttl,omitempty"` // capped at now + 30 days
}

// Validated is a request that passed validation: what ingest needs to
// decide (lifecycle, idempotency) and append.
type Validated struct {
	Op        Name
	ChannelID string // canonical (upper-case) channel id
	Password  string // trimmed; for the password check only, never appended
	OpID      string // trimmed; empty when the client sent none
	// EntityID is the target of update/close/archive/delete; empty on
	// creates, whose id ingest derives from (channel, op, op_id).
	EntityID string
	// ThingID is the Thing an event or message links to ("" for none); for
	// thing operations it equals EntityID.
	ThingID string
	// BodyHash is the hex SHA-256 of the request as the client meant it:
	// every field but password and op_id, after decoding (timestamps in ms,
	// JSON values canonicalised), before defaults. Two requests with the same
	// op_id are "the same body" exactly when their hashes are equal.
	BodyHash string
	// Payload is *EventPayload, *ThingPayload or *MessagePayload. On creates
	// its id field is empty; ingest calls SetEntityID after deriving it.
	Payload any

	// ContentHash, when set (integrations), identifies what the operation
	// says. An update whose open entity's latest operation carries the same
	// ContentHash is not appended: a monitoring tool re-sending an unchanged
	// alert must not notify again.
	ContentHash string
	// RefreshIfUnchanged turns that skip into a refresh: the update is
	// appended with EventPayload.Refresh set (it moves a deadline, and is
	// pushed as a background update).
	RefreshIfUnchanged bool
	// ExpectSeq, when set, makes the operation conditional: it is appended
	// only if the entity's latest operation is still at this stream
	// sequence (the gateway's own timeout close), else it fails with
	// sequence_mismatch.
	ExpectSeq uint64
	// PathThingID is the Thing a /thing/{thing_id}/event/update or /close
	// path names when the body names none: checked as a link is (404
	// thing_not_found, 409 thing_deleted), never stored, and the event's
	// link stays as it is. Unchecked, any id in the path was accepted,
	// including one that is not an id at all.
	PathThingID string
	// LinkVerified says the caller has just read the linked Thing as active
	// (an integration's entity selection): the append skips the linked
	// Thing's existence check, a broker round trip per report.
	LinkVerified bool
	// RefuseIfNew, when set, is why a new operation is refused although
	// the request is valid as the client sent it first: a message's ttl
	// that has passed since. The idempotency contract answers a retry of
	// a stored operation as the first time, so the writer refuses only
	// when the op_id is not a retry. Set only with a client op_id: without
	// one the validation refuses at once.
	RefuseIfNew *apierr.Error
}

// SetEntityID sets the entity id of v and of its payload.
func (v *Validated) SetEntityID(id string) {
	v.EntityID = id
	switch p := v.Payload.(type) {
	case *EventPayload:
		p.EventID = id
	case *ThingPayload:
		p.ThingID = id
		v.ThingID = id
	case *MessagePayload:
		p.MessageID = id
	}
}

// Envelope is one operation in PUSHGO_OPS, on subject
// pushgo.op.<channel_id>.<kind>.<entity_id>, or pushgo.op.<channel_id>.message
// for a message whose op_id the gateway generated (streams.MessagesSubject).
// V is the envelope version.
type Envelope struct {
	V          int            `json:"v"`
	Op         Name           `json:"op"`
	ChannelID  string         `json:"channel_id"`
	OpID       string         `json:"op_id"`
	EntityID   string         `json:"entity_id"`
	AcceptedAt int64          `json:"accepted_at"` // ms, the ingest clock
	BodyHash   string         `json:"body_hash"`
	Payload    jsontext.Value `json:"payload"`
}

// EnvelopeVersion is the current Envelope.V.
const EnvelopeVersion = 1

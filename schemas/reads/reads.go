// Package reads is the read API's contract: the HTTP request bodies of
// spec section 7 with their validation, and the request-reply messages by
// which ingest's HTTP front asks a projector replica (any one: they share a
// queue group) to answer them.
package reads

import (
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// Route names a read; the NATS subject is SubjectPrefix + Route.
type Route string

const (
	ThingGet       Route = "thing.get"
	EventGet       Route = "event.get"
	ChannelThings  Route = "channel.things"
	ChannelEvents  Route = "channel.events"
	ChannelHistory Route = "channel.history"
	// SendStatus is GET /send_status/{op_id}: Request.OpID, and
	// Request.ChannelID when the client named the channel ("" looks the
	// op_id up in every channel; two channels with it answer 409
	// op_id_ambiguous). The answer is delivery.SendStatus.
	SendStatus Route = "send.status"
	// ProjectorStatus asks a replica for its fold position (for /readyz).
	ProjectorStatus Route = "projector.status"
	// ThingsSelect evaluates a Dynatrace entitySelector (Request.Selector)
	// over the channel's Things; the answer is SelectData.
	ThingsSelect Route = "things.select"
	// DeadlinesDue lists open events whose deadline is before
	// Request.Before (ms), oldest first: the gateway closes them with
	// status timed_out. The answer is DueData.
	DeadlinesDue Route = "deadlines.due"
	// OpLookup finds the channel's operation with an op_id
	// (Request.ChannelID, Request.OpID) in the projection's op_id index,
	// once every message of the channel's messages subject is folded:
	// ingest asks it when a sender sends back, on /message, an op_id the
	// gateway generated, whose message is on that subject rather than one
	// of its own. The answer is OpData.
	OpLookup Route = "op.lookup"
)

// OpData is the answer of OpLookup: the operation's sequence, kind and
// entity, or Seq 0 when the channel has no operation with the op_id.
type OpData struct {
	Seq        uint64   `json:"seq"`
	EntityType ops.Kind `json:"entity_type,omitempty"`
	EntityID   string   `json:"entity_id,omitempty"`
}

const (
	// SubjectPrefix prefixes the read subjects projector replicas serve.
	SubjectPrefix = "pushgo.read."
	// QueueGroup is the projector replicas' queue group: one answers.
	QueueGroup = "pushgo-projector"
	// DefaultLimit and MaxLimit bound a page by count; PageBytes bounds
	// it by size too.
	DefaultLimit = 100
	MaxLimit     = 1000
	// MaxSeq is the largest log sequence a cursor (after, Last-Event-ID)
	// may name: JetStream's sequences stay below 2^63.
	MaxSeq = 1<<63 - 1
)

// Answers are bounded by the broker's max_payload, the largest NATS
// message (the embedded broker's 1 MiB; a deployment may set another, and
// each side reads it from its connection: nats.Conn.MaxPayload):
//
//   - A page (/channel/history, /channel/things, /channel/events) holds at
//     most PageBytes(max_payload) bytes of items, besides its count limit:
//     a page cut by size says has_more, and next_after or next_cursor says
//     where the next page starts, as one cut by count. A page cut by size
//     always holds at least one item, however large, so paging always
//     moves on. A history page also ends once it has passed over 16 times
//     its limit (at least 1,024) items it does not show (another kind, a
//     message past its ttl): has_more, next_after the last of them, and
//     maybe no item.
//   - An answer larger than one NATS message (a single item over the page
//     budget: a snapshot whose merged attrs grew past it) is sent in chunks
//     of at most ChunkBytes(max_payload) bytes to an asker that set
//     Request.Chunks, each with the ChunkHeader "i/n", in order on the
//     reply subject; the asker joins them. An asker that did not set Chunks
//     gets an internal_error that says the answer's size and the limit.
const (
	// ReplyHeadroom is what a page leaves free below max_payload for the
	// answer around its items (the Response, the page members, the commas)
	// and NATS headers.
	ReplyHeadroom = 8 << 10
	// MinPageBytes is the page budget below which PageBytes does not go
	// (for a broker configured with a max_payload under ReplyHeadroom).
	MinPageBytes = 4 << 10
	// ChunkHeader names the header of one chunk of an answer: "i/n", i from 1.
	ChunkHeader = "PushGo-Chunk"
	// ChunkHeadroom is what a chunk leaves free below max_payload for its
	// header.
	ChunkHeadroom = 256
)

// PageBytes is the most bytes of items one page holds when the broker's
// max_payload is maxPayload.
func PageBytes(maxPayload int64) int {
	return int(max(maxPayload-ReplyHeadroom, MinPageBytes))
}

// FormatChunk is the ChunkHeader value of chunk i (from 1) of n.
func FormatChunk(i, n int) string { return strconv.Itoa(i) + "/" + strconv.Itoa(n) }

// ParseChunk reads a ChunkHeader value: chunk i of n, 1 <= i <= n.
func ParseChunk(v string) (i, n int, ok bool) {
	a, b, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || i < 1 || i > n {
		return 0, 0, false
	}
	return i, n, true
}

// ChunkBytes is the size of one chunk of an answer larger than one NATS
// message when the broker's max_payload is maxPayload.
func ChunkBytes(maxPayload int64) int {
	return int(max(maxPayload-ChunkHeadroom, 1))
}

// Subject returns the NATS subject of r.
func Subject(r Route) string { return SubjectPrefix + string(r) }

// Body is the JSON body of every read route; each route accepts a subset
// (Validate rejects the members a route does not take).
type Body struct {
	ChannelID *string    `json:"channel_id"`
	Password  *string    `json:"password"`
	EventID   *string    `json:"event_id"`
	ThingID   *string    `json:"thing_id"`
	State     *string    `json:"state"`
	Limit     *int       `json:"limit"`
	Cursor    *string    `json:"cursor"`
	After     *uint64    `json:"after"`
	Kinds     []ops.Kind `json:"kinds"`
}

// Request is a validated read, as sent to the projector. It carries no
// password: ingest has authorized the channel before forwarding.
type Request struct {
	Route     Route  `json:"route"`
	ChannelID string `json:"channel_id"`
	// MinSeq is the read-your-writes barrier: the projector answers only
	// once it has applied every operation of the channel up to MinSeq.
	MinSeq  uint64     `json:"min_seq,omitempty"`
	EventID string     `json:"event_id,omitempty"`
	ThingID string     `json:"thing_id,omitempty"`
	OpID    string     `json:"op_id,omitempty"`
	State   string     `json:"state,omitempty"`
	Limit   int        `json:"limit,omitempty"`
	Cursor  string     `json:"cursor,omitempty"`
	After   uint64     `json:"after,omitempty"`
	Kinds   []ops.Kind `json:"kinds,omitempty"`
	// Selector is the entitySelector of ThingsSelect, as the client sent it
	// (ingest has parsed it once to reject bad ones with the tool's error).
	Selector string `json:"selector,omitempty"`
	// Before is the bound of DeadlinesDue (ms).
	Before int64 `json:"before,omitempty"`
	// DueAfter is where a page of DeadlinesDue starts: after this event,
	// in deadline order (nil: from the first).
	DueAfter *DueEvent `json:"due_after,omitempty"`
	// Chunks says the asker reads an answer sent in chunks (ChunkHeader),
	// for an answer larger than one NATS message.
	Chunks bool `json:"chunks,omitzero"`
	// MinReceiptsSeq is SendStatus's barrier in the delivery receipts
	// (PUSHGO_RECEIPTS), as MinSeq is in the operations: the projector
	// answers only once its receipts fold has folded up to it, so no
	// replica answers less progress than one answered before the read
	// started. 0: none (and a projector of a version before ignores it).
	MinReceiptsSeq uint64 `json:"min_receipts_seq,omitempty"`
}

// DueEvent is an open event past its deadline.
type DueEvent struct {
	ChannelID string `json:"channel_id"`
	EventID   string `json:"event_id"`
	Deadline  int64  `json:"deadline"`
	Severity  string `json:"severity"`
	// LastSeq is the stream sequence of the event's latest operation as
	// folded: the close is appended only if it is still the latest.
	LastSeq uint64 `json:"last_seq"`
}

// DueData is the answer of DeadlinesDue.
type DueData struct {
	Items []DueEvent `json:"items"`
}

// MaxSelected bounds the Things one entitySelector may select: a report
// about more is refused rather than turned into thousands of operations.
const MaxSelected = 1000

// SelectData is the answer of ThingsSelect.
type SelectData struct {
	// ThingIDs are the selected Things (active ones only: Dynatrace
	// selects recently active entities), in id order, at most MaxSelected.
	ThingIDs []string `json:"thing_ids"`
	// UnknownTypes lists the type(...) values of the selector's top level
	// that no Thing of the channel has (Dynatrace's INVALID_ENTITY_TYPE).
	UnknownTypes []string `json:"unknown_types,omitempty"`
	// TooMany is set when more than MaxSelected Things matched.
	TooMany bool `json:"too_many,omitzero"`
}

// Response is the projector's answer: Data on success, else an error code
// from the catalog.
type Response struct {
	Data      jsontext.Value `json:"data,omitzero"`
	ErrorCode apierr.Code    `json:"error_code,omitempty"`
	Error     string         `json:"error,omitempty"`
	// CatchingUp marks a projection_lagging answered at once by a replica
	// catching up with the log (a rebuild, a new replica, one started
	// after a long stop) that would not reach the read's barrier within
	// its wait: another replica may be caught up, so the asker asks again.
	CatchingUp bool `json:"catching_up,omitzero"`
}

// ListData is the data of /channel/things and /channel/events.
type ListData struct {
	Items      []jsontext.Value `json:"items"`
	NextCursor string           `json:"next_cursor"`
	HasMore    bool             `json:"has_more"`
}

// HistoryData is the data of /channel/history.
type HistoryData struct {
	Items     []jsontext.Value `json:"items"`
	NextAfter uint64           `json:"next_after"`
	HasMore   bool             `json:"has_more"`
	// FirstSeq is where the channel's retained history starts (0: empty).
	FirstSeq uint64 `json:"first_seq"`
}

// Validate checks b for route r and returns the request and the password.
func Validate(r Route, b *Body) (*Request, string, *apierr.Error) {
	ch, aerr := ops.ValidateChannelID(b.ChannelID)
	if aerr != nil {
		return nil, "", aerr
	}
	pw, aerr := ops.ValidatePassword(b.Password)
	if aerr != nil {
		return nil, "", aerr
	}
	req := &Request{Route: r, ChannelID: ch}
	allowed := map[string]bool{}
	switch r {
	case ThingGet:
		allowed["thing_id"] = true
		if req.ThingID, aerr = requiredID(b.ThingID, "thing_id", apierr.ThingIDRequired, apierr.InvalidThingID); aerr != nil {
			return nil, "", aerr
		}
	case EventGet:
		allowed["event_id"] = true
		if req.EventID, aerr = requiredID(b.EventID, "event_id", apierr.EventIDRequired, apierr.InvalidEventID); aerr != nil {
			return nil, "", aerr
		}
	case ChannelThings, ChannelEvents:
		allowed["state"], allowed["limit"], allowed["cursor"] = true, true, true
		states := []string{ops.ThingActive, ops.ThingArchived, ops.ThingDeleted}
		if r == ChannelEvents {
			allowed["thing_id"] = true
			states = []string{ops.EventOngoing, ops.EventClosed}
			if b.ThingID != nil {
				if req.ThingID, aerr = requiredID(b.ThingID, "thing_id", apierr.ThingIDRequired, apierr.InvalidThingID); aerr != nil {
					return nil, "", aerr
				}
			}
		}
		if b.State != nil {
			req.State = strings.TrimSpace(*b.State)
			if !contains(states, req.State) {
				return nil, "", apierr.Fieldf(apierr.InvalidState, "state", "must be one of %s", strings.Join(states, ", "))
			}
		}
		if b.Cursor != nil && *b.Cursor != "" {
			if !ids.ValidEntityID(*b.Cursor) {
				return nil, "", apierr.Field(apierr.InvalidCursor, "cursor")
			}
			req.Cursor = *b.Cursor
		}
		if req.Limit, aerr = limit(b.Limit); aerr != nil {
			return nil, "", aerr
		}
	case ChannelHistory:
		allowed["after"], allowed["limit"], allowed["kinds"] = true, true, true
		if b.After != nil {
			// A log sequence is below 2^63; the page's lower bound is
			// after+1, which the largest uint64 would wrap to 0 (the
			// channel's first page instead of an empty one). One past
			// the log's last operation is refused by the projector,
			// which knows the log (projector/readsvc.go, checkAfter).
			if *b.After > MaxSeq {
				return nil, "", apierr.Fieldf(apierr.InvalidCursor, "after", "must be a sequence number below 2^63")
			}
			req.After = *b.After
		}
		if req.Limit, aerr = limit(b.Limit); aerr != nil {
			return nil, "", aerr
		}
		seen := map[ops.Kind]bool{}
		for _, k := range b.Kinds {
			if k != ops.KindEvent && k != ops.KindThing && k != ops.KindMessage {
				return nil, "", apierr.Fieldf(apierr.InvalidKinds, "kinds", "unknown kind %q", k)
			}
			if !seen[k] {
				seen[k] = true
				req.Kinds = append(req.Kinds, k)
			}
		}
	default:
		return nil, "", apierr.New(apierr.RouteNotFound)
	}
	for name, given := range map[string]bool{
		"event_id": b.EventID != nil, "thing_id": b.ThingID != nil, "state": b.State != nil, "limit": b.Limit != nil,
		"cursor": b.Cursor != nil, "after": b.After != nil, "kinds": b.Kinds != nil,
	} {
		if given && !allowed[name] {
			return nil, "", apierr.Fieldf(apierr.InvalidJSONData, name, "unknown member for this route")
		}
	}
	return req, pw, nil
}

func requiredID(s *string, field string, missing, invalid apierr.Code) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(missing, field)
	}
	id := strings.TrimSpace(*s)
	if !ids.ValidEntityID(id) {
		return "", apierr.Field(invalid, field)
	}
	return id, nil
}

func limit(l *int) (int, *apierr.Error) {
	if l == nil {
		return DefaultLimit, nil
	}
	if *l < 1 || *l > MaxLimit {
		return 0, apierr.Fieldf(apierr.InvalidLimit, "limit", "must be 1..%d", MaxLimit)
	}
	return *l, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// HistoryItem is one operation as /channel/history and the SSE stream
// return it: the operation envelope as appended (it never holds
// credentials) with its stream sequence and entity type in front.
type HistoryItem struct {
	Seq        uint64         `json:"seq"`
	EntityType ops.Kind       `json:"entity_type"`
	V          int            `json:"v"`
	Op         ops.Name       `json:"op"`
	ChannelID  string         `json:"channel_id"`
	OpID       string         `json:"op_id"`
	EntityID   string         `json:"entity_id"`
	AcceptedAt int64          `json:"accepted_at"`
	BodyHash   string         `json:"body_hash"`
	Payload    jsontext.Value `json:"payload"`
}

// AppendItem appends the JSON of the history item of the envelope whose
// encoded form is envelope (as stored in the log) to dst. It splices
// instead of re-encoding: the fold writes one item per operation, and the
// envelope is already the right JSON.
func AppendItem(dst []byte, seq uint64, kind ops.Kind, envelope []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"entity_type":"`...)
	dst = append(dst, kind...)
	dst = append(dst, '"')
	if len(envelope) > 2 { // "{}" has no members to splice
		dst = append(dst, ',')
		dst = append(dst, envelope[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return dst
}

// Status is a projector replica's fold position.
type Status struct {
	Applied uint64 `json:"applied"`
	Lag     uint64 `json:"lag"`
	// ReceiptsApplied is the last PUSHGO_RECEIPTS sequence the replica's
	// send-status fold has folded. Nil from a replica that predates it:
	// a reader reports it only when it came.
	ReceiptsApplied *uint64 `json:"receipts_applied,omitempty"`
	Error           string  `json:"error,omitempty"`
}

// Package delivery is the contract between the pusher's fan-out, its
// sender workers and the projector: the delivery task of one (operation,
// device), the receipts that record what happened to it, and the
// /send_status and inbox shapes built from them.
package delivery

import (
	"strconv"
	"strings"

	"github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ops"
)

// Task is one delivery: one operation to one device. It carries no
// provider and no token (the device's route is read at send time, so a
// retired token or a changed route takes effect at once) and no payload (read from the log by sequence, so fanning out to
// 10,000 devices publishes 10,000 small messages).
type Task struct {
	ID         string   `json:"id"` // ID(seq, device_key); also the task's Nats-Msg-Id
	Seq        uint64   `json:"seq"`
	ChannelID  string   `json:"channel_id"`
	OpID       string   `json:"op_id"`
	Op         ops.Name `json:"op"`
	EntityID   string   `json:"entity_id"`
	DeviceKey  string   `json:"device_key"`
	AcceptedAt int64    `json:"accepted_at"`
	// PriorAttempts is how many sends of this delivery were made before it
	// was queued (1 for a retry handed over by an operation's partition
	// after a 429 or 5xx); its retry budget counts them.
	PriorAttempts int `json:"prior_attempts,omitempty"`
	// NotBefore (Unix ms) is when the next attempt may be made: the
	// back-off the retry policy chose, or the provider's Retry-After.
	NotBefore int64 `json:"not_before,omitempty"`
}

// ID is the delivery id of (op seq, device): "<seq>:<device_key>".
func ID(seq uint64, deviceKey string) string {
	return strconv.FormatUint(seq, 10) + ":" + deviceKey
}

// LogID is the delivery id of (seq, device) as a log line or an error
// names it: the sequence and devices.KeyRef, never the key (the device's
// credential on the inbox routes).
func LogID(seq uint64, deviceKey string) string {
	return strconv.FormatUint(seq, 10) + ":" + devices.KeyRef(deviceKey)
}

// RedactID is LogID of a delivery id ("malformed" when it does not parse).
func RedactID(id string) string {
	seq, dev, ok := ParseID(id)
	if !ok {
		return "malformed"
	}
	return LogID(seq, dev)
}

// ParseID splits a delivery id.
func ParseID(id string) (seq uint64, deviceKey string, ok bool) {
	s, d, found := strings.Cut(id, ":")
	if !found || d == "" {
		return 0, "", false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, d, err == nil
}

// Outcome of a delivery.
type Outcome string

const (
	Sent Outcome = "sent"
	// Failed: the provider refused it for good, or the retry budget ran out.
	Failed Outcome = "failed"
	// Retired: the provider said the token is dead; the token was retired.
	Retired Outcome = "retired"
	// Expired: not sent any more: the message's ttl passed, the operation
	// left the log, or (a retry) a later operation of the event superseded
	// it or the device left the channel. The receipt's reason says which.
	Expired Outcome = "expired"
	// NoRoute: the device has no push route (never bound, removed, retired).
	NoRoute Outcome = "no_route"
	// NotConfigured: the provider is not configured on this gateway.
	NotConfigured Outcome = "not_configured"
)

// Succeeded reports whether o counts as delivered in /send_status.
func (o Outcome) Succeeded() bool { return o == Sent }

// Receipt kinds.
const (
	// KindExpanded: the fan-out made Tasks tasks for the operation.
	KindExpanded = "expanded"
	// KindOutcome: one task ended with Outcome.
	KindOutcome = "outcome"
	// KindSummary: Summaries says what partitions of the delivery did
	// with operations, many operations per receipt.
	KindSummary = "summary"
)

// Summary is what one delivery partition did with one operation: the
// partition's share of its audience, sent, failed or handed to the retry
// queue. A partition writes it once its share is settled; written twice
// (the partition re-run after a crash), the later one replaces the
// earlier. A delivery handed to the retry queue reports its end in a
// KindOutcome receipt of its own.
type Summary struct {
	ChannelID  string   `json:"channel_id"`
	OpID       string   `json:"op_id"`
	Seq        uint64   `json:"seq"`
	EntityType ops.Kind `json:"entity_type"`
	EntityID   string   `json:"entity_id"`
	AcceptedAt int64    `json:"accepted_at"`
	At         int64    `json:"at"` // ms
	Partition  int      `json:"partition"`
	// Audience is the operation's audience in all partitions together:
	// the deliveries /send_status counts.
	Audience int `json:"audience"`
	// The partition's share, Sent + Failed + Retrying devices.
	Sent     int `json:"sent"`
	Failed   int `json:"failed"`
	Retrying int `json:"retrying"`
	// Failures lists the share's failed deliveries (retired tokens, no
	// route, expired, refused): the per-device record kept only for them.
	Failures []Failure `json:"failures,omitempty"`
	// Retried lists the share's devices handed to the retry queue (at most
	// as many as Failures lists); their ends come as KindOutcome receipts.
	Retried []string `json:"retried,omitempty"`
}

// Failure is one failed delivery of a Summary.
type Failure struct {
	DeviceKey string  `json:"device_key"`
	Provider  string  `json:"provider,omitempty"`
	Outcome   Outcome `json:"outcome"`
	Reason    string  `json:"reason,omitempty"`
}

// Receipt is one record of PUSHGO_RECEIPTS.
type Receipt struct {
	Kind       string   `json:"kind"`
	ChannelID  string   `json:"channel_id"`
	OpID       string   `json:"op_id"`
	Seq        uint64   `json:"seq"`
	EntityType ops.Kind `json:"entity_type"`
	EntityID   string   `json:"entity_id"`
	AcceptedAt int64    `json:"accepted_at"`
	At         int64    `json:"at"` // ms
	// KindExpanded.
	Tasks int `json:"tasks,omitempty"`
	// KindOutcome.
	DeliveryID string  `json:"delivery_id,omitempty"`
	DeviceKey  string  `json:"device_key,omitempty"`
	Provider   string  `json:"provider,omitempty"`
	Outcome    Outcome `json:"outcome,omitempty"`
	Reason     string  `json:"reason,omitempty"`
	Attempts   int     `json:"attempts,omitempty"`
	// KindSummary: the summaries, and the batch's id (unique per batch,
	// kept when the batch is published again after a failure).
	Summaries []Summary `json:"summaries,omitempty"`
	BatchID   string    `json:"batch_id,omitempty"`
}

// MsgID is the Nats-Msg-Id of r: a receipt recorded twice (a task sent
// twice after a crash) is stored once.
func (r Receipt) MsgID() string {
	switch r.Kind {
	case KindExpanded:
		return "expanded:" + strconv.FormatUint(r.Seq, 10)
	case KindSummary:
		return "summary:" + r.BatchID
	}
	return "outcome:" + r.DeliveryID
}

// LogMsgID is a message id of the pusher's records (a retry task's: its
// delivery id; a receipt's: MsgID) as a log line names it: a delivery id
// in it is redacted (RedactID), the device key never shown.
func LogMsgID(msgID string) string {
	if rest, ok := strings.CutPrefix(msgID, "outcome:"); ok {
		return "outcome:" + RedactID(rest)
	}
	if _, _, ok := ParseID(msgID); ok {
		return RedactID(msgID)
	}
	return msgID
}

// Status values of /send_status (as PushGo 1.3).
const (
	StatusAccepted        = "accepted"
	StatusProcessing      = "processing"
	StatusSent            = "sent"
	StatusPartiallyFailed = "partially_failed"
	StatusFailed          = "failed"
)

// Counts are the deliveries of one operation.
type Counts struct {
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
	Pending int `json:"pending"`
}

// SendStatus is the data of GET /send_status/{op_id}: PushGo 1.3's fields
// (op_id, status, model, entity_id, accepted_at, updated_at, expires_at:
// src/api/handlers/send_status.rs, SendStatusResponse) and ours
// (entity_type, deliveries). Times are Unix milliseconds.
type SendStatus struct {
	OpID   string `json:"op_id"`
	Status string `json:"status"`
	// Model is PushGo's name for the entity type: message, event or thing.
	Model      ops.Kind `json:"model"`
	EntityType ops.Kind `json:"entity_type"`
	EntityID   string   `json:"entity_id"`
	AcceptedAt int64    `json:"accepted_at"`
	UpdatedAt  int64    `json:"updated_at"`
	// ExpiresAt is when the operation leaves PUSHGO_OPS (accepted_at plus
	// the log's retention): the status is answered at least until then.
	// 0 when the log keeps operations forever.
	ExpiresAt  int64  `json:"expires_at"`
	Deliveries Counts `json:"deliveries"`
}

// StatusOf derives the status: accepted before the fan-out, processing
// while tasks are pending, then sent, partially_failed or failed.
func StatusOf(expanded bool, c Counts) string {
	switch {
	case !expanded:
		return StatusAccepted
	case c.Pending > 0:
		return StatusProcessing
	case c.Failed == 0:
		return StatusSent
	case c.Sent == 0:
		return StatusFailed
	}
	return StatusPartiallyFailed
}

// InboxItem is one item of a device's inbox (/v2/messages/pull).
type InboxItem struct {
	DeliveryID string            `json:"delivery_id"`
	Payload    map[string]string `json:"payload"`
}

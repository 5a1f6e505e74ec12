// Package streams names the JetStream streams, subjects and KV buckets of
// the gateway and defines them as plain data: what each holds, how long,
// with which limits. It performs no I/O and imports no NATS package;
// broker/streams turns these definitions into JetStream configurations and
// creates them, so every module can share the contract without pulling in
// the broker.
package streams

import (
	"fmt"
	"strings"
	"time"

	"github.com/pushgo/gateway/schemas/ops"
)

const (
	// Ops is the source of truth: every accepted operation.
	Ops = "PUSHGO_OPS"
	// OpsSubjectPrefix prefixes every operation subject.
	OpsSubjectPrefix = "pushgo.op."
	// ChannelsBucket is the channel registry: channel id → ChannelRecord.
	ChannelsBucket = "PUSHGO_CHANNELS"
	// DevicesBucket is the device registry: device key → devices.Device.
	DevicesBucket = "PUSHGO_DEVICES"
	// SubscriptionsBucket holds one key per subscription,
	// "<channel_id>.<device_key>" → devices.Subscription (or, for an hour
	// after an unsubscribe, its removal's record), so a channel's
	// subscribers are one key-prefix read.
	SubscriptionsBucket = "PUSHGO_SUBSCRIPTIONS"
	// DeviceChannelsBucket is the per-device index of subscriptions,
	// "<device_key>.<channel_id>" → devices.Subscription (sync, unsubscribe).
	DeviceChannelsBucket = "PUSHGO_DEVICE_CHANNELS"
	// ProviderTokensBucket maps a provider token to the device holding it,
	// "<channel_type>.<sha256 hex of the token>" → devices.TokenOwner, so a
	// token can be retired without knowing the device.
	ProviderTokensBucket = "PUSHGO_PROVIDER_TOKENS"
	// Deliveries is the work queue of delivery tasks: one per (operation,
	// device), taken by sender workers and removed when acknowledged.
	Deliveries = "PUSHGO_DELIVERIES"
	// DeliveriesSubjectPrefix prefixes delivery task subjects:
	// pushgo.delivery.<channel_id>.<device_key>.
	DeliveriesSubjectPrefix = "pushgo.delivery."
	// Receipts holds delivery outcomes, folded into /send_status.
	Receipts = "PUSHGO_RECEIPTS"
	// ReceiptsSubjectPrefix prefixes receipts: pushgo.receipt.<channel_id>.
	ReceiptsSubjectPrefix = "pushgo.receipt."
	// Inbox holds the full item of every push, from before or beside its
	// send until the app acks it, for /v2/messages/pull and the legacy
	// /messages/pull: one subject per device (InboxSubject), the item's
	// operation sequence in HeaderInboxSeq.
	Inbox = "PUSHGO_INBOX"
	// InboxSubjectPrefix prefixes the inbox subjects:
	// pushgo.inbox.<device_key>.
	InboxSubjectPrefix = "pushgo.inbox."
	// APITokensBucket holds the channel-scoped integration tokens:
	// <token id> → the token's channel, name, scopes and secret hash.
	APITokensBucket = "PUSHGO_API_TOKENS"
	// AlertKeysBucket maps an integration's alert key (Dynatrace
	// eventType+title+thing, Alertmanager fingerprint, PagerDuty dedup_key)
	// to the Event that currently represents it:
	// <channel_id>.<source>.<key hash> → the event id and its generation;
	// and each alert group's members (Alertmanager, Grafana):
	// <channel_id>.<source>_group.<group hash> → when each was last named.
	AlertKeysBucket = "PUSHGO_ALERT_KEYS"
	// PushersBucket holds one key per live pusher replica, refreshed
	// every few seconds and expiring after PushersTTL: how many replicas
	// share the delivery partitions. (Who sends a partition is the
	// broker's pin, never this bucket.)
	PushersBucket = "PUSHGO_PUSHERS"
	// PartitionFloorsBucket holds each delivery partition's floor (key:
	// the partition's number; value: the last PUSHGO_OPS sequence up to
	// which it finished every operation, decimal), written by its owner
	// at most every second: where a partition consumer found missing is
	// created again, whichever replica creates it.
	PartitionFloorsBucket = "PUSHGO_PARTITION_FLOORS"
)

// OpSubject returns the subject of an operation on one entity:
// pushgo.op.<channel_id>.<kind>.<entity_id>. The per-entity subject gives
// ordering and optimistic concurrency per entity.
func OpSubject(channelID string, kind ops.Kind, entityID string) string {
	var b strings.Builder
	b.Grow(len(OpsSubjectPrefix) + len(channelID) + len(kind) + len(entityID) + 2)
	b.WriteString(OpsSubjectPrefix)
	b.WriteString(channelID)
	b.WriteByte('.')
	b.WriteString(string(kind))
	b.WriteByte('.')
	b.WriteString(entityID)
	return b.String()
}

// MessagesSubject returns the subject of a channel's messages whose op_id
// the gateway generated: pushgo.op.<channel_id>.message. Such a message's
// op_id is new (a sender can only send it back after the answer, which
// ingest recognises through the projection) and messages are never
// written again, so it needs neither a subject of its own to order it nor
// one to catch a racing writer; one subject per channel spares
// the broker a subject's state for every message it keeps (the embedded
// broker's per-subject index grew with every /message otherwise). A
// message with a client op_id keeps its OpSubject: a retry past the
// duplicate window is recognised by that subject's sequence.
func MessagesSubject(channelID string) string {
	return OpsSubjectPrefix + channelID + "." + string(ops.KindMessage)
}

// ParseOpSubject splits an operation's subject, OpSubject's
// pushgo.op.<channel_id>.<kind>.<entity_id>, into its parts, and a
// channel's MessagesSubject into its channel, KindMessage and an empty
// entity id; ok is false for a subject of another form or with an empty
// part. The kind of an entity's subject is not checked against the known
// kinds.
func ParseOpSubject(subject string) (channelID string, kind ops.Kind, entityID string, ok bool) {
	rest, ok := strings.CutPrefix(subject, OpsSubjectPrefix)
	if !ok {
		return "", "", "", false
	}
	channelID, rest, ok = strings.Cut(rest, ".")
	if !ok || channelID == "" {
		return "", "", "", false
	}
	k, entityID, ok := strings.Cut(rest, ".")
	if !ok && k == string(ops.KindMessage) {
		return channelID, ops.KindMessage, "", true
	}
	if !ok || k == "" || entityID == "" {
		return "", "", "", false
	}
	return channelID, ops.Kind(k), entityID, true
}

// ChannelSubjects returns the filter matching every operation of a channel.
func ChannelSubjects(channelID string) string { return OpsSubjectPrefix + channelID + ".>" }

// Headers carried by every operation message.
const (
	// HeaderOp carries the ops.Name so consumers can filter without decoding.
	HeaderOp = "Pushgo-Op"
	// HeaderOpID carries the op_id, for idempotency checks without decoding.
	HeaderOpID = "Pushgo-Op-Id"
	// HeaderBodyHash carries the body hash of the request.
	HeaderBodyHash = "Pushgo-Body-Hash"
	// HeaderContentHash carries an integration's hash of what an operation
	// says (ops.Validated.ContentHash), so an unchanged repeat is known
	// without decoding; absent on other operations.
	HeaderContentHash = "Pushgo-Content-Hash"
)

// HeaderInboxSeq carries an inbox item's operation sequence (decimal): with
// its subject's device, what its delivery id names.
const HeaderInboxSeq = "Pushgo-Inbox-Seq"

// InboxSubject is the subject of a device's inbox items.
func InboxSubject(deviceKey string) string { return InboxSubjectPrefix + deviceKey }

// Options configure the streams. The zero value is not valid; use
// DefaultOptions and override.
type Options struct {
	// Replicas of every stream and bucket: 1 single node, 3 on a cluster.
	Replicas int
	// Retention is the history kept in PUSHGO_OPS (MaxAge).
	Retention time.Duration
	// DedupWindow is PUSHGO_OPS's duplicate window for Nats-Msg-Id.
	DedupWindow time.Duration
	// Storage of every stream; file in production, memory in some tests.
	Storage Storage
	// InboxPerDevice is the most items one device's inbox holds: past it
	// the broker drops the device's oldest (its other devices' are not
	// touched). 0 holds every item until it is acked or the retention
	// passes.
	InboxPerDevice int64
}

// Storage is where the broker keeps a stream.
type Storage int

const (
	// FileStorage survives a broker restart (the default).
	FileStorage Storage = iota
	// MemoryStorage is lost when the broker stops (tests, benches).
	MemoryStorage
)

// Retention is how a stream lets messages go.
type Retention int

const (
	// LimitsRetention keeps messages until an age or size limit.
	LimitsRetention Retention = iota
	// WorkQueueRetention removes a message once a consumer acknowledges it.
	WorkQueueRetention
)

// DefaultInboxPerDevice is the default of Options.InboxPerDevice: no
// cap, an item stays until the app acks it or the retention passes. A cap
// is the inbox stream's per-subject limit, which the broker enforces as
// it stores each item, and make bench's 500 ops/s row (10 devices that
// never ack, 30,000 items each a minute) measured its cost on 4 December,
// afternoon: the round in which the devices first reach a cap of 10,000
// had a p99 of 1.4 to 2.2 s (100 ms budget), against 0.09 to 0.13 s
// without one. An operator who would rather bound an offline device's
// inbox sets one (PUSHGO_INBOX_PER_DEVICE).
const DefaultInboxPerDevice = 0

// DefaultOptions are the documented defaults: one replica, 30 days of
// history, a one hour idempotency window, file storage, no cap on a
// device's inbox.
func DefaultOptions() Options {
	return Options{Replicas: 1, Retention: 30 * 24 * time.Hour, DedupWindow: time.Hour, Storage: FileStorage,
		InboxPerDevice: DefaultInboxPerDevice}
}

// MaxReplicas is the most replicas of a stream JetStream keeps.
const MaxReplicas = 5

// Validate reports an option out of range.
func (o Options) Validate() error {
	switch {
	case o.Replicas < 1 || o.Replicas > MaxReplicas:
		return fmt.Errorf("replicas %d: must be 1..%d", o.Replicas, MaxReplicas)
	case o.Retention <= 0:
		return fmt.Errorf("retention %s: must be positive", o.Retention)
	case o.DedupWindow <= 0:
		return fmt.Errorf("dedup window %s: must be positive", o.DedupWindow)
	case o.DedupWindow > o.Retention:
		return fmt.Errorf("dedup window %s: must not exceed retention %s", o.DedupWindow, o.Retention)
	case o.InboxPerDevice < 0:
		return fmt.Errorf("inbox items per device %d: must be 0 (no limit) or positive", o.InboxPerDevice)
	}
	return nil
}

// DeliverySubject is the subject of a delivery task.
func DeliverySubject(channelID, deviceKey string) string {
	return DeliveriesSubjectPrefix + channelID + "." + deviceKey
}

// SummariesSubject is the subject of delivery summaries, receipts that
// span channels ("_" is never in a channel id).
const SummariesSubject = ReceiptsSubjectPrefix + "_summary"

// ReceiptSubject is the subject of a receipt of a channel's operation.
func ReceiptSubject(channelID string) string { return ReceiptsSubjectPrefix + channelID }

// Stream defines one stream. Replicas and storage come from Options.
type Stream struct {
	Name        string
	Description string
	Subjects    []string
	Retention   Retention
	// MaxAge is how long a message is kept; zero keeps it forever.
	MaxAge time.Duration
	// Duplicates is the Nats-Msg-Id duplicate window.
	Duplicates time.Duration
	// MaxMsgsPerSubject keeps at most this many messages of one subject,
	// the oldest going first; 0 keeps them all.
	MaxMsgsPerSubject int64
	// AllowDirect serves direct gets from any replica.
	AllowDirect bool
	// DenyDelete and DenyPurge forbid clients to remove messages.
	DenyDelete, DenyPurge bool
}

// Bucket defines one key-value bucket. Every bucket keeps only the latest
// value of a key.
type Bucket struct {
	Name        string
	Description string
	// TTL expires values; zero keeps them.
	TTL time.Duration
}

// OpsStream is PUSHGO_OPS, the source of truth.
func OpsStream(o Options) Stream {
	return Stream{
		Name:        Ops,
		Description: "PushGo accepted operations: the source of truth",
		Subjects:    []string{OpsSubjectPrefix + ">"},
		Retention:   LimitsRetention,
		MaxAge:      o.Retention,
		Duplicates:  o.DedupWindow,
		AllowDirect: true,
		// Operations are never rolled up or purged by clients.
		DenyDelete: true,
		DenyPurge:  true,
	}
}

// PerPushDedupWindow bounds the duplicate window of the streams that get
// one message per push (tasks, receipts). The broker keeps every message id
// of the window in memory (about 145 bytes each, measured): with the
// operations' hour it grew by 29 MB per 100,000 pushes, and the garbage
// collector's work with it, so delivery slowed run after run. Two minutes
// cover what the window is for: a re-expanded operation (redelivered after
// the fan-out's 30 s ack wait, or resumed after a consumer was recreated)
// adding no second task, and a receipt republished after its task's ack
// wait. An operation expanded again later than that (after an outage of
// more than two minutes) can push twice.
const PerPushDedupWindow = 2 * time.Minute

// perPushDedup is the duplicate window of a per-push stream under o.
func perPushDedup(o Options) time.Duration { return min(o.DedupWindow, PerPushDedupWindow) }

// DeliveriesStream is the work queue of delivery tasks. Its duplicate
// window makes a re-expanded operation add no second task: the message id
// of a task is "<op seq>:<device_key>".
func DeliveriesStream(o Options) Stream {
	return Stream{
		Name:        Deliveries,
		Description: "PushGo delivery tasks: one per (operation, device)",
		Subjects:    []string{DeliveriesSubjectPrefix + ">"},
		Retention:   WorkQueueRetention,
		MaxAge:      o.Retention,
		Duplicates:  perPushDedup(o),
	}
}

// ReceiptsStream is the stream of delivery outcomes.
func ReceiptsStream(o Options) Stream {
	return Stream{
		Name:        Receipts,
		Description: "PushGo delivery receipts",
		Subjects:    []string{ReceiptsSubjectPrefix + ">"},
		Retention:   LimitsRetention,
		MaxAge:      o.Retention,
		Duplicates:  perPushDedup(o),
	}
}

// InboxStream holds the device inboxes: the full item of every push on
// its device's subject, until the app acks it (a delete) or the retention
// passes (items age out with the history they belong to).
//
// One subject per device, not a key per push: the broker keeps every
// subject that holds a message in its memory and in the stream index it
// writes out, and with a key per push those grew with every push a device
// had not acked, an offline device's included; make bench's 500 ops/s
// row, whose devices never ack, missed its 100 ms p99 (97 to 445 ms)
// where one subject per device met it (6.6 to 42.5 ms). Items carry no
// message id: an item stored twice (a retried or re-expanded push) is read
// once and acked whole, and the broker would hold every id of the
// duplicate window in memory (PerPushDedupWindow). The window is set only
// because the broker sets its default where none is (and provisioning
// would otherwise update the stream at every start).
func InboxStream(o Options) Stream {
	return Stream{
		Name:        Inbox,
		Description: "PushGo device inboxes: the full item of every push, one subject per device",
		Subjects:    []string{InboxSubjectPrefix + ">"},
		Retention:   LimitsRetention,
		MaxAge:      o.Retention,
		Duplicates:  perPushDedup(o),
		// One subject per device: its items past the cap go, oldest first.
		MaxMsgsPerSubject: o.InboxPerDevice,
		AllowDirect:       true,
	}
}

// AllStreams are every stream of the gateway.
func AllStreams(o Options) []Stream {
	return []Stream{OpsStream(o), DeliveriesStream(o), ReceiptsStream(o), InboxStream(o)}
}

// PushersTTL is how long a pusher replica counts as alive after its last
// refresh of PushersBucket.
const PushersTTL = 15 * time.Second

// AllBuckets are every key-value bucket of the gateway.
func AllBuckets(o Options) []Bucket {
	return []Bucket{
		{Name: ChannelsBucket, Description: "PushGo channels: id → name and password hash"},
		{Name: DevicesBucket, Description: "PushGo devices: key → platform and push route"},
		{Name: SubscriptionsBucket, Description: "PushGo subscriptions by channel: <channel_id>.<device_key>"},
		{Name: DeviceChannelsBucket, Description: "PushGo subscriptions by device: <device_key>.<channel_id>"},
		{Name: ProviderTokensBucket, Description: "PushGo provider tokens: <channel_type>.<token hash> → device key"},
		{Name: APITokensBucket, Description: "PushGo integration tokens: id → channel, scopes and secret hash"},
		// No TTL: a key must outlive its open Event, however long that stays
		// open. The ingest replicas sweep the keys of Events closed a
		// retention ago (ingest/alerts, sweep.go).
		{Name: AlertKeysBucket, Description: "PushGo integration alert keys: <channel>.<source>.<key hash> → current event"},
		{Name: PushersBucket, Description: "PushGo pusher replicas alive: id → start time", TTL: PushersTTL},
		{Name: PartitionFloorsBucket, Description: "PushGo delivery partitions' floors: partition → last operation finished"},
	}
}

// Package streams names the JetStream streams, subjects and KV buckets of
// the gateway and creates them. Every service calls Ensure at start, so any
// of them can be the first to run against a fresh broker.
package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	// "<channel_id>.<device_key>" → devices.Subscription, so a channel's
	// subscribers are one key-prefix listing.
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
	// InboxBucket holds the full items of oversized or undelivered
	// notifications per device, for /v2/messages/pull: <device_key>.<op seq>.
	InboxBucket = "PUSHGO_INBOX"
	// APITokensBucket holds the channel-scoped integration tokens:
	// <token id> → the token's channel, name, scopes and secret hash.
	APITokensBucket = "PUSHGO_API_TOKENS"
	// AlertKeysBucket maps an integration's alert key (Dynatrace
	// eventType+title+thing, Alertmanager fingerprint, PagerDuty dedup_key)
	// to the Event that currently represents it:
	// <channel_id>.<source>.<key hash> → the event id and its generation.
	AlertKeysBucket = "PUSHGO_ALERT_KEYS"
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
	Storage jetstream.StorageType
}

// DefaultOptions are the documented defaults: one replica, 30 days of
// history, a one hour idempotency window, file storage.
func DefaultOptions() Options {
	return Options{Replicas: 1, Retention: 30 * 24 * time.Hour, DedupWindow: time.Hour, Storage: jetstream.FileStorage}
}

// Validate reports an option out of range.
func (o Options) Validate() error {
	switch {
	case o.Replicas < 1 || o.Replicas > 5:
		return fmt.Errorf("replicas %d: must be 1..5", o.Replicas)
	case o.Retention <= 0:
		return fmt.Errorf("retention %s: must be positive", o.Retention)
	case o.DedupWindow <= 0:
		return fmt.Errorf("dedup window %s: must be positive", o.DedupWindow)
	case o.DedupWindow > o.Retention:
		return fmt.Errorf("dedup window %s: must not exceed retention %s", o.DedupWindow, o.Retention)
	}
	return nil
}

// OpsConfig is the configuration of PUSHGO_OPS.
func OpsConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Ops,
		Description: "PushGo accepted operations: the source of truth",
		Subjects:    []string{OpsSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		MaxAge:      o.Retention,
		Duplicates:  o.DedupWindow,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
		// Operations are never rolled up or purged by clients.
		DenyDelete: true,
		DenyPurge:  true,
	}
}

// ChannelsConfig is the configuration of the channel registry bucket.
func ChannelsConfig(o Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ChannelsBucket,
		Description: "PushGo channels: id → name and password hash",
		History:     1,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
	}
}

// DeviceBucketConfigs are the configurations of the device registry
// buckets (DevicesBucket, SubscriptionsBucket, DeviceChannelsBucket,
// ProviderTokensBucket). Each keeps only the latest value of a key.
func DeviceBucketConfigs(o Options) []jetstream.KeyValueConfig {
	mk := func(name, desc string) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, Storage: o.Storage, Replicas: o.Replicas}
	}
	return []jetstream.KeyValueConfig{
		mk(DevicesBucket, "PushGo devices: key → platform and push route"),
		mk(SubscriptionsBucket, "PushGo subscriptions by channel: <channel_id>.<device_key>"),
		mk(DeviceChannelsBucket, "PushGo subscriptions by device: <device_key>.<channel_id>"),
		mk(ProviderTokensBucket, "PushGo provider tokens: <channel_type>.<token hash> → device key"),
	}
}

// Ensure creates the streams and buckets that are missing and updates a
// stream only when its settings differ from o. It does not touch what is
// already right: every process of a scaled deployment calls Ensure at
// start, and a needless stream update racing with another process's
// consumer creation is work the broker need not do.
func Ensure(ctx context.Context, js jetstream.JetStream, o Options) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("stream options: %w", err)
	}
	for _, cfg := range []jetstream.StreamConfig{OpsConfig(o), DeliveriesConfig(o), ReceiptsConfig(o)} {
		if err := ensureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	buckets := append([]jetstream.KeyValueConfig{ChannelsConfig(o)}, DeviceBucketConfigs(o)...)
	buckets = append(buckets, InboxConfig(o), APITokensConfig(o), AlertKeysConfig(o))
	for _, cfg := range buckets {
		if err := ensureBucket(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates && have.Replicas == want.Replicas &&
		have.AllowDirect == want.AllowDirect && slices.Equal(have.Subjects, want.Subjects) {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	return nil
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	if _, err := js.KeyValue(ctx, want.Bucket); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("bucket %s: %w", want.Bucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, want); err != nil {
		return fmt.Errorf("create bucket %s: %w", want.Bucket, err)
	}
	return nil
}

// DeliverySubject is the subject of a delivery task.
func DeliverySubject(channelID, deviceKey string) string {
	return DeliveriesSubjectPrefix + channelID + "." + deviceKey
}

// ReceiptSubject is the subject of a receipt of a channel's operation.
func ReceiptSubject(channelID string) string { return ReceiptsSubjectPrefix + channelID }

// DeliveriesConfig is the work queue of delivery tasks. Its duplicate
// window makes a re-expanded operation add no second task: the message id
// of a task is "<op seq>:<device_key>".
func DeliveriesConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Deliveries,
		Description: "PushGo delivery tasks: one per (operation, device)",
		Subjects:    []string{DeliveriesSubjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		MaxAge:      o.Retention,
		Duplicates:  o.DedupWindow,
		Discard:     jetstream.DiscardOld,
	}
}

// ReceiptsConfig is the stream of delivery outcomes.
func ReceiptsConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Receipts,
		Description: "PushGo delivery receipts",
		Subjects:    []string{ReceiptsSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		MaxAge:      o.Retention,
		Duplicates:  o.DedupWindow,
		Discard:     jetstream.DiscardOld,
	}
}

// InboxConfig is the per-device inbox of full notification items.
func InboxConfig(o Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      InboxBucket,
		Description: "PushGo device inboxes: full items of oversized or undelivered notifications",
		History:     1,
		TTL:         o.Retention,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
	}
}

// APITokensConfig is the integration token bucket.
func APITokensConfig(o Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      APITokensBucket,
		Description: "PushGo integration tokens: id → channel, scopes and secret hash",
		History:     1,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
	}
}

// AlertKeysConfig is the bucket of integration alert keys. It keeps no
// TTL: a key must outlive its open Event, however long that stays open.
func AlertKeysConfig(o Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      AlertKeysBucket,
		Description: "PushGo integration alert keys: <channel>.<source>.<key hash> → current event",
		History:     1,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
	}
}

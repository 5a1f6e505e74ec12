// Package audience keeps, in memory, who an operation is pushed to: every
// channel's subscribers and the log sequence each subscribed after.
package audience

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/kvview"
	"github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/streams"
)

// Audience keeps every channel's subscriptions in memory, current through
// one long-lived watch of the subscriptions bucket, so the fan-out finds an
// operation's audience with no broker round trip. The caller MUST call Close.
type Audience struct {
	mu    sync.RWMutex
	subs  map[string]map[string]member // channel → device → its membership
	log   *slog.Logger
	watch *kvview.Watch
}

// member is a device's membership of a channel's audience, as its
// subscription's record says (devices.Subscription.Covers), in 24 bytes:
// a gateway's audience holds every subscription.
type member struct {
	devices.Membership
	before *devices.Membership
}

func (m member) covers(seq uint64) bool {
	return m.Covers(seq) || m.before != nil && m.before.Covers(seq)
}

// Open starts the watch and returns once the current subscriptions are
// loaded.
func Open(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Audience, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Audience{subs: map[string]map[string]member{}, log: log}
	w, err := kvview.Start(ctx, js, streams.SubscriptionsBucket, a, kvview.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	a.watch = w
	return a, nil
}

// Put applies a subscription written (kvview.Applier).
func (a *Audience) Put(key string, value []byte, _ uint64) {
	ch, dev, ok := devices.ParseSubscriptionKey(key)
	if !ok {
		return
	}
	var s devices.Subscription
	if err := json.Unmarshal(value, &s); err != nil {
		a.log.Error("audience: skip malformed subscription", "channel_id", ch, "device", devices.KeyRef(dev), "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.subs[ch] == nil {
		a.subs[ch] = map[string]member{}
	}
	// A removal's record (an unsubscribe) stays until ingest sweeps it
	// (devices.RemovalKept): the device is in the audience of the
	// operations appended before its unsubscribe.
	a.subs[ch][dev] = member{Membership: s.Membership(), before: s.Before}
}

// Delete applies a subscription removed (kvview.Applier).
func (a *Audience) Delete(key string, _ uint64) {
	ch, dev, ok := devices.ParseSubscriptionKey(key)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if m := a.subs[ch]; m != nil {
		delete(m, dev)
		if len(m) == 0 {
			delete(a.subs, ch)
		}
	}
}

// Sync waits until the audience holds every subscription write the bucket
// had when Sync was called. Called after an operation was appended, it makes
// At see every subscription made before that operation, whichever ingest
// replica wrote it.
func (a *Audience) Sync(ctx context.Context) error { return a.watch.Sync(ctx) }

// Err says why the watch is not running now, or nil.
func (a *Audience) Err() error { return a.watch.Err() }

// Has reports whether channelID has any subscriber now.
func (a *Audience) Has(channelID string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, m := range a.subs[channelID] {
		if m.RemovedAfter == math.MaxUint64 {
			return true
		}
	}
	return false
}

// At lists, in key order, the devices of channelID that the operation at
// stream sequence seq is pushed to: those subscribed when it was appended
// (devices.Subscription.Covers; a device unsubscribed is kept for the
// operations appended before, devices.RemovalKept). For a device that
// subscribed later it is history.
func (a *Audience) At(channelID string, seq uint64) []string {
	a.mu.RLock()
	out := make([]string, 0, len(a.subs[channelID]))
	for dev, m := range a.subs[channelID] {
		if m.covers(seq) {
			out = append(out, dev)
		}
	}
	a.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Close stops the watch and waits for it.
func (a *Audience) Close() { a.watch.Close() }

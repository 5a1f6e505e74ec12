// Package audience keeps, in memory, who an operation is pushed to: every
// channel's subscribers and the log sequence each subscribed after.
package audience

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

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
	mu   sync.RWMutex
	subs map[string]map[string]member // channel → device → its membership
	// removed are the devices whose removal's record was seen, oldest
	// first: kept removedFor after their key is deleted, then dropped.
	removed []removal
	log     *slog.Logger
	watch   *kvview.Watch
	now     func() time.Time
}

// member is a device's membership of a channel's audience: the
// operations after after, up to removedAfter when it was unsubscribed
// (0: still subscribed).
type member struct {
	after, removedAfter uint64
}

// removal is a removed device kept in the audience, until expires.
type removal struct {
	channelID, deviceKey string
	removedAfter         uint64
	expires              time.Time
}

// removedFor is how long a device unsubscribed stays in the audience of
// the operations appended before (devices.Subscription.RemovedAfter): a
// delivery partition fanning out such an operation later than that (far
// behind the others) no longer finds it.
const removedFor = time.Hour

// Open starts the watch and returns once the current subscriptions are
// loaded.
func Open(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Audience, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Audience{subs: map[string]map[string]member{}, log: log, now: time.Now}
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
	a.expireLocked(a.now())
	if a.subs[ch] == nil {
		a.subs[ch] = map[string]member{}
	}
	a.subs[ch][dev] = member{after: s.AfterSeq, removedAfter: s.RemovedAfter}
}

// Delete applies a subscription removed (kvview.Applier).
func (a *Audience) Delete(key string, _ uint64) {
	ch, dev, ok := devices.ParseSubscriptionKey(key)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expireLocked(now)
	m := a.subs[ch]
	if mb, ok := m[dev]; ok && mb.removedAfter != 0 {
		// Its removal's record came first: kept for the operations
		// appended before it, until it expires.
		a.removed = append(a.removed, removal{channelID: ch, deviceKey: dev, removedAfter: mb.removedAfter, expires: now.Add(removedFor)})
		return
	}
	a.dropLocked(ch, dev)
}

// expireLocked drops the removed devices kept past their time, unless
// subscribed again since.
func (a *Audience) expireLocked(now time.Time) {
	n := 0
	for n < len(a.removed) && !now.Before(a.removed[n].expires) {
		r := a.removed[n]
		if mb, ok := a.subs[r.channelID][r.deviceKey]; ok && mb.removedAfter == r.removedAfter {
			a.dropLocked(r.channelID, r.deviceKey)
		}
		n++
	}
	a.removed = a.removed[n:]
}

func (a *Audience) dropLocked(ch, dev string) {
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
	for _, mb := range a.subs[channelID] {
		if mb.removedAfter == 0 {
			return true
		}
	}
	return false
}

// At lists, in key order, the devices of channelID that the operation at
// stream sequence seq is pushed to: those subscribed before it was
// appended, and not unsubscribed before (a device unsubscribed is kept
// for the operations appended before, removedFor). For a device that
// subscribed later it is history.
func (a *Audience) At(channelID string, seq uint64) []string {
	a.mu.RLock()
	out := make([]string, 0, len(a.subs[channelID]))
	for dev, mb := range a.subs[channelID] {
		if mb.after < seq && (mb.removedAfter == 0 || seq <= mb.removedAfter) {
			out = append(out, dev)
		}
	}
	a.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Close stops the watch and waits for it.
func (a *Audience) Close() { a.watch.Close() }

// Package devices is ingest's device and subscription registry over the
// JetStream KV buckets PUSHGO_DEVICES, PUSHGO_SUBSCRIPTIONS,
// PUSHGO_DEVICE_CHANNELS and PUSHGO_PROVIDER_TOKENS (key layout and record
// types in schemas/devices, which the pusher reads too).
//
// Every read of a key is the bucket leader's answer (leaderread.Bucket.Latest;
// a direct get when the bucket has one replica), and a listing is a filtered
// key listing on the broker (no in-memory view): device writes are
// compare-and-swap on the record's revision, so they need the current
// revision anyway, and each read decides something a user sees (a new
// device key, platform_mismatch, device_not_found, a subscription removed,
// a token retired, the route a push goes to), which a follower that has
// not yet applied another replica's write would decide wrongly: on a
// 3-node cluster direct gets got it wrong hundreds of times in 1,000.
// Writes that lose a race re-read and decide again, a bounded number of
// times.
package devices

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/leaderread"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// maxAttempts bounds the compare-and-swap retries of one write; losers
// back off with jitter (cas.Backoff) so a burst of writers of one record
// spreads out instead of colliding again at once.
const maxAttempts = 10

// backoffStep is the unit of the jittered wait after a lost race.
const backoffStep = time.Millisecond

var (
	// ErrDeviceNotFound: no device has the key.
	ErrDeviceNotFound = errors.New("devices: device not found")
	// ErrPlatformMismatch: the route's channel type does not fit the
	// device's platform (apns needs an Apple platform, fcm android).
	ErrPlatformMismatch = errors.New("devices: channel type does not fit the platform")
	// ErrConflict: the record changed underneath more times than the retry
	// budget allows.
	ErrConflict = errors.New("devices: concurrent update conflict")
)

// Options configure a Registry.
type Options struct {
	// Timeout, when set, bounds each call of the registry as a whole:
	// every broker round trip it makes, retries included, shares it, so a
	// broker that is down costs a request one timeout and not one per
	// round trip (JetStream's default of 5 s each: a key create is two).
	// Ingest sets it to the append timeout; zero leaves each round trip to
	// the context and JetStream's default, as the pusher wants for its
	// listings.
	Timeout time.Duration
	// MarkersKept is how long SweepDeleteMarkers leaves a deleted key's
	// delete marker in its bucket; zero is markersKept (an hour), which
	// only tests shorten (negative: every marker is old).
	MarkersKept time.Duration
	Logger      *slog.Logger
}

// Registry reads and writes devices and subscriptions. It is safe for
// concurrent use.
type Registry struct {
	js                              jetstream.JetStream
	devices, subs, devChans, tokens *leaderread.Bucket
	timeout                         time.Duration
	log                             *slog.Logger
	// beforeRouteWrite, when set (tests), runs in BindRoute between the
	// token's claim and the device's write; an error fails the write.
	beforeRouteWrite func() error
	// beforeSubscriptionWrite, when set (tests), runs in Subscribe between
	// the index key's write and the subscription's.
	beforeSubscriptionWrite func()
	// markersKept is Options.MarkersKept, or the constant's (negative:
	// every marker is old).
	markersKept time.Duration
	// beforeMarkerPurge, when set (tests), runs in SweepDeleteMarkers
	// between the listing of a bucket's markers and the purge of each.
	beforeMarkerPurge func(bucket, key string)
	// removalsKept is maxRemovalsKept, or what a test sets.
	removalsKept int
	// beforeIdleDelete, when set (tests), runs in SweepIdleDevices between
	// a device's check and its deletion.
	beforeIdleDelete func(key string)

	// removals are the removals' records this registry wrote, one a key
	// at its last revision, oldest first, for ForgetRemovals to delete
	// once RemovalKept old; removalOf finds a key's element. An
	// unsubscribe again of a key replaces its record and moves it to the
	// back (one a key: a key's loop filled the bound with stale revisions;
	// in write order: a key unsubscribed again left at the front held
	// every older one back).
	removalsMu sync.Mutex
	removals   *list.List // of writtenRemoval
	removalOf  map[string]*list.Element
}

// writtenRemoval is a removal's record (written by Unsubscribe, or found
// by SweepRemovals) at its revision.
type writtenRemoval struct {
	key string
	rev uint64
	at  time.Time
}

// Open binds the registry buckets, which streams.Ensure created.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MarkersKept == 0 {
		opts.MarkersKept = markersKept
	}
	r := &Registry{js: js, timeout: opts.Timeout, log: opts.Logger, markersKept: opts.MarkersKept,
		removalsKept: maxRemovalsKept, removals: list.New(), removalOf: map[string]*list.Element{}}
	for _, b := range []struct {
		name string
		kv   **leaderread.Bucket
	}{
		{streams.DevicesBucket, &r.devices},
		{streams.SubscriptionsBucket, &r.subs},
		{streams.DeviceChannelsBucket, &r.devChans},
		{streams.ProviderTokensBucket, &r.tokens},
	} {
		kv, err := leaderread.OpenBucket(ctx, js, b.name)
		if err != nil {
			return nil, err
		}
		*b.kv = kv
	}
	return r, nil
}

// bound derives the context of one call: ctx within Options.Timeout.
func (r *Registry) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.timeout)
}

// Close releases nothing today; it is here so the service can treat every
// registry alike.
func (r *Registry) Close() {}

// Device returns the device of key (canonical form) as the bucket's
// leader holds it: every write acknowledged before, through any replica,
// is in it. ok is false when no device has it.
func (r *Registry) Device(ctx context.Context, key string) (devices.Device, bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	e, err := r.devices.Latest(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return devices.Device{}, false, nil
	}
	if err != nil {
		return devices.Device{}, false, fmt.Errorf("get device: %w", err)
	}
	d, err := Decode(key, e.Value(), e.Revision())
	if err != nil {
		return devices.Device{}, false, err
	}
	return d, true, nil
}

// Decode reads a device record of the devices bucket (a kvview.Decoder,
// for views of the bucket kept in memory).
func Decode(key string, b []byte, rev uint64) (devices.Device, error) {
	var d devices.Device
	if err := json.Unmarshal(b, &d); err != nil {
		return devices.Device{}, fmt.Errorf("decode device %s: %w", devices.KeyRef(key), err)
	}
	d.Key, d.Revision = key, rev
	return d, nil
}

// RegisterResult is the outcome of Register.
type RegisterResult struct {
	Device devices.Device
	// IssuedNewKey is true when a new key was made; Reason says why
	// (devices.IssueMissing or devices.IssueUnknown).
	IssuedNewKey bool
	Reason       string
}

// Register records a device. With key "" or a key the registry does not
// know, it makes a device under a fresh key; with a known key it keeps the
// key and updates the platform if it changed (dropping a route the new
// platform cannot use).
func (r *Registry) Register(ctx context.Context, key, platform string, now time.Time) (RegisterResult, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	reason := devices.IssueMissing
	if key != "" {
		reason = devices.IssueUnknown
		var res RegisterResult
		err := r.updateDevice(ctx, key, func(d *devices.Device) (bool, error) {
			res.Device = *d
			if d.Platform == platform {
				return false, nil
			}
			d.Platform = platform
			if d.ChannelType != "" && !devices.Compatible(d.ChannelType, platform) {
				d.ClearRoute()
			}
			d.UpdatedAt = now.UnixMilli()
			return true, nil
		}, func(d devices.Device) { res.Device = d })
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, ErrDeviceNotFound) {
			return RegisterResult{}, fmt.Errorf("register device: %w", err)
		}
	}
	ms := now.UnixMilli()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		d := devices.Device{Key: ids.NewDeviceKey(), Platform: platform, CreatedAt: ms, UpdatedAt: ms}
		b, err := json.Marshal(d)
		if err != nil {
			return RegisterResult{}, err
		}
		rev, err := r.devices.KV().Create(ctx, d.Key, b)
		if cas.Lost(err) { // 128 random bits collided: draw again
			continue
		}
		if err != nil {
			return RegisterResult{}, fmt.Errorf("register device: create: %w", err)
		}
		d.Revision = rev
		return RegisterResult{Device: d, IssuedNewKey: true, Reason: reason}, nil
	}
	return RegisterResult{}, ErrConflict
}

// updateDevice applies change to the device of key by compare-and-swap,
// re-reading and re-applying on a concurrent write. change reports whether
// it changed anything (false: nothing is written). done, if not nil, gets
// the stored record after a write.
func (r *Registry) updateDevice(ctx context.Context, key string, change func(*devices.Device) (bool, error), done func(devices.Device)) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		d, ok, err := r.Device(ctx, key)
		if err != nil {
			return err
		}
		if !ok {
			return ErrDeviceNotFound
		}
		changed, err := change(&d)
		if err != nil || !changed {
			return err
		}
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		rev, err := r.devices.KV().Update(ctx, key, b, d.Revision)
		if cas.Lost(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update device: %w", err)
		}
		d.Revision = rev
		if done != nil {
			done(d)
		}
		return nil
	}
	return ErrConflict
}

// BindRoute sets the push route of device key to (channelType, token).
// platform, when not "", replaces the registered platform. The token then
// belongs to this device only: another device that held it loses its
// route, so one provider token is never pushed to twice.
// Errors: ErrDeviceNotFound, ErrPlatformMismatch.
func (r *Registry) BindRoute(ctx context.Context, key, channelType, token, platform string, now time.Time) (devices.Device, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	// Check first, claim the token index second, write the device third:
	// a crash in between leaves at worst an index entry that the device
	// record contradicts, which every reader of the index checks for.
	d, ok, err := r.Device(ctx, key)
	if err != nil {
		return devices.Device{}, fmt.Errorf("bind route: %w", err)
	}
	if !ok {
		return devices.Device{}, ErrDeviceNotFound
	}
	if !devices.Compatible(channelType, pick(platform, d.Platform)) {
		return devices.Device{}, ErrPlatformMismatch
	}
	tk := devices.TokenKey(channelType, token)
	previousOwner, claimRev, err := r.claimToken(ctx, tk, key)
	if err != nil {
		return devices.Device{}, fmt.Errorf("bind route: %w", err)
	}
	if r.beforeRouteWrite != nil {
		if err := r.beforeRouteWrite(); err != nil {
			return devices.Device{}, fmt.Errorf("bind route: %w", err)
		}
	}
	var old devices.Device
	var stored devices.Device
	ms := now.UnixMilli()
	err = r.updateDevice(ctx, key, func(d *devices.Device) (bool, error) {
		old = *d
		p := pick(platform, d.Platform)
		if !devices.Compatible(channelType, p) {
			return false, ErrPlatformMismatch
		}
		if d.Platform == p && d.ChannelType == channelType && d.ProviderToken == token {
			stored = *d
			return false, nil
		}
		d.Platform, d.ChannelType, d.ProviderToken = p, channelType, token
		d.RouteBoundAt, d.UpdatedAt = ms, ms
		return true, nil
	}, func(d devices.Device) { stored = d })
	if err != nil {
		if !errors.Is(err, ErrDeviceNotFound) && !errors.Is(err, ErrPlatformMismatch) {
			err = fmt.Errorf("bind route: %w", err)
		}
		return devices.Device{}, err
	}
	// The device's previous token, if another, no longer points here.
	if old.HasRoute() && (old.ChannelType != channelType || old.ProviderToken != token) {
		r.releaseToken(ctx, devices.TokenKey(old.ChannelType, old.ProviderToken), key)
	}
	// The token's previous holder, if another device, loses its route. Not
	// done, the bind answers an error: its retry finds the holder in the
	// token's index entry (claimToken) and clears it then, where a holder
	// left with the token would keep receiving this device's pushes.
	if previousOwner != "" && previousOwner != key {
		if err := r.clearRouteIf(ctx, previousOwner, channelType, token, now, false); err != nil && !errors.Is(err, ErrDeviceNotFound) {
			return devices.Device{}, fmt.Errorf("bind route: clear the token's previous holder: %w", err)
		}
		// Done: the entry forgets the holder, so that this device's later
		// binds (an app sends its token at every launch) clear nobody. At
		// the revision claimed: an entry another bind has changed since is
		// that bind's to settle. Not written, a later bind clears the
		// holder again, a no-op unless it took the token back meanwhile.
		if fresh, err := json.Marshal(devices.TokenOwner{DeviceKey: key}); err == nil {
			_, _ = r.tokens.KV().Update(ctx, tk, fresh, claimRev)
		}
	}
	// Another device claimed the token after this bind did, and its bind
	// may have looked for this device's route before this write made it:
	// the token is the later claimer's, and this device gives it up. (Two
	// devices binding one token at once both kept it: the phone got every
	// push twice, and the pusher's retirement of the dead token, which asks
	// the index, never found this one.)
	if lost, err := r.claimedByAnother(ctx, tk, key); err != nil {
		return devices.Device{}, fmt.Errorf("bind route: %w", err)
	} else if lost {
		if err := r.clearRouteIf(ctx, key, channelType, token, now, false); err != nil {
			return devices.Device{}, fmt.Errorf("bind route: give up the token another device claimed: %w", err)
		}
		stored.ClearRoute()
	}
	return stored, nil
}

// claimedByAnother reports whether the token index entry tk names a device
// other than key.
func (r *Registry) claimedByAnother(ctx context.Context, tk, key string) (bool, error) {
	e, err := r.tokens.Latest(ctx, tk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the token's index entry: %w", err)
	}
	var owner devices.TokenOwner
	if err := json.Unmarshal(e.Value(), &owner); err != nil {
		return false, nil // malformed: the next claim replaces it
	}
	return owner.DeviceKey != "" && owner.DeviceKey != key, nil
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// claimToken points the token index entry tk at device key by
// compare-and-swap and returns the device it pointed at before ("" if
// none) and the entry's revision. An entry that points at key already
// returns the device it pointed at before key claimed it
// (TokenOwner.Previous, until BindRoute has cleared it): the holder an
// earlier attempt of this bind may have left with the token.
func (r *Registry) claimToken(ctx context.Context, tk, key string) (previous string, rev uint64, err error) {
	fresh, err := json.Marshal(devices.TokenOwner{DeviceKey: key})
	if err != nil {
		return "", 0, err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		e, err := r.tokens.Latest(ctx, tk)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			rev, err := r.tokens.KV().Create(ctx, tk, fresh)
			if cas.Lost(err) {
				continue
			}
			if err != nil {
				return "", 0, fmt.Errorf("claim token: %w", err)
			}
			return "", rev, nil
		}
		if err != nil {
			return "", 0, fmt.Errorf("claim token: %w", err)
		}
		var owner devices.TokenOwner
		if err := json.Unmarshal(e.Value(), &owner); err != nil {
			r.log.Warn("devices: malformed token index entry replaced", "err", err)
		}
		if owner.DeviceKey == key {
			return owner.Previous, e.Revision(), nil
		}
		val, err := json.Marshal(devices.TokenOwner{DeviceKey: key, Previous: owner.DeviceKey})
		if err != nil {
			return "", 0, err
		}
		rev, err := r.tokens.KV().Update(ctx, tk, val, e.Revision())
		if cas.Lost(err) {
			continue
		}
		if err != nil {
			return "", 0, fmt.Errorf("claim token: %w", err)
		}
		return owner.DeviceKey, rev, nil
	}
	return "", 0, ErrConflict
}

// releaseToken deletes the token index entry tk if it still points at
// device key. Best effort: a stale entry is harmless (readers check the
// device record).
func (r *Registry) releaseToken(ctx context.Context, tk, key string) {
	e, err := r.tokens.Latest(ctx, tk)
	if err != nil {
		return
	}
	var owner devices.TokenOwner
	if json.Unmarshal(e.Value(), &owner) == nil && owner.DeviceKey != key {
		return
	}
	if err := r.tokens.KV().Delete(ctx, tk, jetstream.LastRevision(e.Revision())); err != nil && !cas.Lost(err) {
		// Not the device key: it is the device's credential.
		r.log.Warn("devices: token index entry not released", "token_index_key", tk, "err", err)
	}
}

// clearRouteIf removes the route of device key when it is (channelType,
// token), or of any token when token is "" (only channelType must match).
// retired marks the removal as a provider retirement.
func (r *Registry) clearRouteIf(ctx context.Context, key, channelType, token string, now time.Time, retired bool) error {
	return r.updateDevice(ctx, key, func(d *devices.Device) (bool, error) {
		if d.ChannelType != channelType || (token != "" && d.ProviderToken != token) {
			return false, nil
		}
		d.ClearRoute()
		d.UpdatedAt = now.UnixMilli()
		if retired {
			d.RetiredAt = d.UpdatedAt
		}
		return true, nil
	}, nil)
}

// DeleteRoute removes the route of device key if it is of channelType and
// reports whether there was one. Error: ErrDeviceNotFound.
func (r *Registry) DeleteRoute(ctx context.Context, key, channelType string, now time.Time) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var removed devices.Device
	err := r.updateDevice(ctx, key, func(d *devices.Device) (bool, error) {
		if d.ChannelType != channelType || !d.HasRoute() {
			return false, nil
		}
		removed = *d
		d.ClearRoute()
		d.UpdatedAt = now.UnixMilli()
		return true, nil
	}, nil)
	if err != nil {
		if !errors.Is(err, ErrDeviceNotFound) {
			err = fmt.Errorf("delete route: %w", err)
		}
		return false, err
	}
	if !removed.HasRoute() {
		return false, nil
	}
	r.releaseToken(ctx, devices.TokenKey(removed.ChannelType, removed.ProviderToken), key)
	return true, nil
}

// RetireToken removes the route of whichever device holds (channelType,
// token), as when the provider reports the token dead, so the pusher stops
// sending to it. It reports whether a device's route was removed; an
// unknown token is not an error.
func (r *Registry) RetireToken(ctx context.Context, channelType, token string, now time.Time) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return r.RetireTokenOf(ctx, channelType, token, "", now)
}

// RetireTokenOf is RetireToken limited to the device key (canonical; ""
// for any device): when another device holds the token now (it was bound
// there after the caller's device used it), nothing is retired, since the
// token is alive on that device.
func (r *Registry) RetireTokenOf(ctx context.Context, channelType, token, key string, now time.Time) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	tk := devices.TokenKey(channelType, token)
	e, err := r.tokens.Latest(ctx, tk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("retire token: %w", err)
	}
	var owner devices.TokenOwner
	if err := json.Unmarshal(e.Value(), &owner); err != nil {
		return false, fmt.Errorf("retire token: decode index entry: %w", err)
	}
	if key != "" && owner.DeviceKey != key {
		return false, nil
	}
	retired := false
	err = r.updateDevice(ctx, owner.DeviceKey, func(d *devices.Device) (bool, error) {
		if d.ChannelType != channelType || d.ProviderToken != token {
			return false, nil
		}
		d.ClearRoute()
		d.UpdatedAt = now.UnixMilli()
		d.RetiredAt = d.UpdatedAt
		retired = true
		return true, nil
	}, nil)
	if err != nil && !errors.Is(err, ErrDeviceNotFound) {
		return false, fmt.Errorf("retire token: %w", err)
	}
	// Drop the index entry unless someone re-claimed it meanwhile.
	if err := r.tokens.KV().Delete(ctx, tk, jetstream.LastRevision(e.Revision())); err != nil && !cas.Lost(err) {
		r.log.Warn("devices: retired token's index entry not deleted", "token_index_key", tk, "err", err)
	}
	return retired, nil
}

// Subscribe subscribes device key to channelID (both canonical, both
// checked by the caller) and reports whether the subscription is new.
// Idempotent. The device index key is written before the channel key.
// The device is touched first (touch): ErrDeviceNotFound when it is gone.
func (r *Registry) Subscribe(ctx context.Context, key, channelID string, now time.Time) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if err := r.touch(ctx, key, now); err != nil {
		return false, fmt.Errorf("subscribe %s: %w", channelID, err)
	}
	// Read the log's position before writing: every operation appended
	// after this subscription is answered has a higher sequence.
	ops, err := r.js.Stream(ctx, streams.Ops)
	if err != nil {
		return false, fmt.Errorf("subscribe %s: log position: %w", channelID, err)
	}
	after := ops.CachedInfo().State.LastSeq
	b, err := json.Marshal(devices.Subscription{ChannelID: channelID, DeviceKey: key, SubscribedAt: now.UnixMilli(), AfterSeq: after})
	if err != nil {
		return false, err
	}
	ik := devices.DeviceChannelKey(key, channelID)
	if _, err := r.createIfAbsent(ctx, r.devChans, ik, b); err != nil {
		return false, fmt.Errorf("subscribe %s: index: %w", channelID, err)
	}
	if r.beforeSubscriptionWrite != nil {
		r.beforeSubscriptionWrite()
	}
	created, err := r.subscribeKey(ctx, devices.SubscriptionKey(channelID, key), b)
	if err != nil {
		return false, fmt.Errorf("subscribe %s: %w", channelID, err)
	}
	// An unsubscribe between the two writes may have deleted the index key
	// this one found in place, and looked for a subscription to restore it
	// for before this one replaced its removal's record: the index key is
	// written again after the subscription, so that a subscription never
	// stands without it (/channel/sync would not see it to remove it, and
	// the device would keep the channel's pushes).
	if _, err := r.createIfAbsent(ctx, r.devChans, ik, b); err != nil {
		return false, fmt.Errorf("subscribe %s: index: %w", channelID, err)
	}
	return created, nil
}

// touchEvery is how stale a device's UpdatedAt may be before touch
// writes it: well within devices.IdleKept, so a device the idle sweep may
// take is always written.
const touchEvery = 10 * time.Minute

// touch records that device key is used at now (its UpdatedAt), unless it
// was within touchEvery. A subscription does not change the device's
// record otherwise, so the idle sweep's compare-and-swap on the revision
// it read did not see one made between its check of the device's channels
// and its deletion: the subscription stood for a device that was gone.
// Now either the sweep's deletion fails (the revision moved) or the touch
// does (ErrDeviceNotFound, and the app registers again).
func (r *Registry) touch(ctx context.Context, key string, now time.Time) error {
	return r.updateDevice(ctx, key, func(d *devices.Device) (bool, error) {
		if now.UnixMilli()-d.UpdatedAt < touchEvery.Milliseconds() {
			return false, nil
		}
		d.UpdatedAt = now.UnixMilli()
		return true, nil
	}, nil)
}

// subscribeKey creates the subscription key k with val unless it holds a
// subscription; a removal's record (an unsubscribe within
// devices.RemovalKept) is replaced, its stretch kept as Before. It reports
// whether it wrote.
func (r *Registry) subscribeKey(ctx context.Context, k string, val []byte) (bool, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		e, err := r.subs.Latest(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = r.subs.KV().Create(ctx, k, val)
		case err != nil:
			return false, err
		default:
			var cur devices.Subscription
			if json.Unmarshal(e.Value(), &cur) == nil && !cur.Removed() {
				return false, nil // subscribed already
			}
			// Back within RemovalKept of leaving: the stretch it was
			// subscribed for stays its (the latest one; an older one is
			// forgotten).
			next := val
			var sub devices.Subscription
			if cur.Removed() && json.Unmarshal(val, &sub) == nil {
				sub.Before = &devices.Membership{After: cur.AfterSeq, RemovedAfter: cur.RemovedAfter}
				if next, err = json.Marshal(sub); err != nil {
					return false, err
				}
			}
			_, err = r.subs.KV().Update(ctx, k, next, e.Revision())
		}
		if err == nil {
			return true, nil
		}
		if !cas.Lost(err) {
			return false, err
		}
	}
	return false, ErrConflict
}

// Subscription returns device key's subscription to channelID as the
// subscriptions bucket's leader holds it: every subscribe and unsubscribe
// acknowledged before, through any replica, is in it. ok is false when
// the device is not subscribed.
func (r *Registry) Subscription(ctx context.Context, key, channelID string) (devices.Subscription, bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	e, err := r.subs.Latest(ctx, devices.SubscriptionKey(channelID, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return devices.Subscription{}, false, nil
	}
	if err != nil {
		return devices.Subscription{}, false, fmt.Errorf("get subscription: %w", err)
	}
	var sub devices.Subscription
	if err := json.Unmarshal(e.Value(), &sub); err != nil {
		return devices.Subscription{}, false, fmt.Errorf("decode subscription %s: %w", devices.KeyRef(e.Key()), err)
	}
	if sub.Removed() {
		return devices.Subscription{}, false, nil
	}
	return sub, true, nil
}

// createIfAbsent creates k (also over a delete marker) unless it exists;
// it reports whether it created it.
func (r *Registry) createIfAbsent(ctx context.Context, b *leaderread.Bucket, k string, val []byte) (bool, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		_, err := b.KV().Create(ctx, k, val)
		if err == nil {
			return true, nil
		}
		if !cas.Lost(err) {
			return false, err
		}
		// Exists, or a concurrent create/delete raced us: look again.
		if _, gerr := b.Latest(ctx, k); gerr == nil {
			return false, nil
		} else if !errors.Is(gerr, jetstream.ErrKeyNotFound) {
			return false, gerr
		}
	}
	return false, ErrConflict
}

// Unsubscribe removes the subscription of device key to channelID and
// reports whether there was one. The channel key goes before the device
// index key. The channel key is not deleted but rewritten as a removal's
// record (Subscription.RemovedAt, RemovedAfter: the log's last sequence
// now), which ingest deletes devices.RemovalKept later (ForgetRemovals,
// SweepRemovals): until then
// every delivery partition finds the device in the audience of the
// operations appended before, and not in those appended after, whenever
// it fans them out. A partition that found the audience after the device
// left counted it out while another had counted it in, and the
// operation's /send_status waited for its delivery for good.
func (r *Registry) Unsubscribe(ctx context.Context, key, channelID string) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	k := devices.SubscriptionKey(channelID, key)
	removed, err := r.unsubscribeKey(ctx, k)
	if err != nil {
		return false, fmt.Errorf("unsubscribe %s: %w", channelID, err)
	}
	ik := devices.DeviceChannelKey(key, channelID)
	if _, err := r.deleteIfPresent(ctx, r.devChans, ik); err != nil {
		return removed, fmt.Errorf("unsubscribe %s: index: %w", channelID, err)
	}
	// A subscribe through another replica between the two may have
	// found its index key still there, then replaced the removal's
	// record: the subscription stands, and its index key must too.
	e, err := r.subs.Latest(ctx, k)
	if err == nil {
		var sub devices.Subscription
		if json.Unmarshal(e.Value(), &sub) == nil && !sub.Removed() {
			if _, err := r.createIfAbsent(ctx, r.devChans, ik, e.Value()); err != nil {
				return removed, fmt.Errorf("unsubscribe %s: index of the subscription made meanwhile: %w", channelID, err)
			}
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return removed, fmt.Errorf("unsubscribe %s: %w", channelID, err)
	}
	return removed, nil
}

// unsubscribeKey rewrites the subscription key k as a removal's record,
// by compare-and-swap on its revision, and reports whether k held a
// subscription (not a removal's record, not nothing).
func (r *Registry) unsubscribeKey(ctx context.Context, k string) (bool, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		e, err := r.subs.Latest(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		var sub devices.Subscription
		if err := json.Unmarshal(e.Value(), &sub); err != nil {
			return false, fmt.Errorf("decode subscription %s: %w", devices.KeyRef(k), err)
		}
		if sub.Removed() {
			return false, nil
		}
		// The log's position read before the write: an operation appended
		// between the two may be counted in by a partition that fanned it
		// out before the write and out by one after (milliseconds, where
		// the partitions' lag was the window before).
		ops, err := r.js.Stream(ctx, streams.Ops)
		if err != nil {
			return false, fmt.Errorf("log position: %w", err)
		}
		sub.RemovedAt, sub.RemovedAfter = max(time.Now().UnixMilli(), 1), ops.CachedInfo().State.LastSeq
		b, err := json.Marshal(sub)
		if err != nil {
			return false, err
		}
		rev, err := r.subs.KV().Update(ctx, k, b, e.Revision())
		if cas.Lost(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		r.removalsMu.Lock()
		wr := writtenRemoval{key: k, rev: rev, at: time.UnixMilli(sub.RemovedAt)}
		if el, queued := r.removalOf[k]; queued {
			el.Value = wr
			r.removals.MoveToBack(el)
		} else if r.removals.Len() < r.removalsKept {
			r.removalOf[k] = r.removals.PushBack(wr)
		}
		r.removalsMu.Unlock()
		return true, nil
	}
	return false, ErrConflict
}

// ForgetRemovals deletes the removals' records this registry wrote that
// are devices.RemovalKept old as of now (unless changed since: subscribed
// again), and returns how many it deleted. One it could not delete (the
// broker away) ends the call with the error, and it and the later ones are
// tried again at the next. The records of another process, or of this one
// before a restart, are SweepRemovals's. One goroutine calls it.
func (r *Registry) ForgetRemovals(ctx context.Context, now time.Time) (int, error) {
	done := 0
	for {
		r.removalsMu.Lock()
		front := r.removals.Front()
		if front == nil || now.Before(front.Value.(writtenRemoval).at.Add(devices.RemovalKept)) {
			r.removalsMu.Unlock()
			return done, nil
		}
		d := front.Value.(writtenRemoval)
		r.removalsMu.Unlock()
		deleted, err := r.deleteRemoval(ctx, d)
		if err != nil {
			return done, fmt.Errorf("forget removals: %w", err)
		}
		if deleted {
			done++
		}
		r.removalsMu.Lock()
		if front.Value.(writtenRemoval) == d { // not unsubscribed again meanwhile (that moved it back)
			r.removals.Remove(front)
			delete(r.removalOf, d.key)
		}
		r.removalsMu.Unlock()
	}
}

// maxRemovalsKept bounds the removals' records a registry keeps in memory
// for ForgetRemovals (about 110 bytes each): an hour of a subscribe and
// unsubscribe loop held millions. A record past it is left to
// SweepRemovals, which finds it in the bucket within hours.
const maxRemovalsKept = 100_000

// sweepBound bounds one SweepRemovals.
const sweepBound = 5 * time.Minute

// SweepRemovals deletes the removals' records (Unsubscribe) older than
// devices.RemovalKept as of now, each by compare-and-swap on the revision
// it read (a subscription made again since stays), and returns how many
// it deleted. It reads every subscription's latest value once: ingest
// runs it after its start and every few hours, for the records no live
// process will forget (ForgetRemovals) because the one that wrote them
// stopped. Every replica may run it; a record another deleted first is
// passed.
func (r *Registry) SweepRemovals(ctx context.Context, now time.Time) (int, error) {
	// Bounded: with the broker away the watch would wait for it, and the
	// forgetting of this process's own records with it.
	ctx, cancel := context.WithTimeout(ctx, sweepBound)
	defer cancel()
	var expired []writtenRemoval
	cutoff := now.Add(-devices.RemovalKept).UnixMilli()
	err := r.eachSubscription(ctx, ">", func(e jetstream.KeyValueEntry, sub devices.Subscription) {
		if sub.Removed() && sub.RemovedAt <= cutoff {
			expired = append(expired, writtenRemoval{key: e.Key(), rev: e.Revision()})
		}
	})
	if err != nil {
		return 0, fmt.Errorf("sweep removals: %w", err)
	}
	n := 0
	for _, d := range expired {
		deleted, err := r.deleteRemoval(ctx, d)
		if err != nil {
			return n, fmt.Errorf("sweep removals: %w", err)
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// idleChecksEach is how many idle devices SweepIdleDevices checks for
// channels one by one; past it, it reads the whole index once.
const idleChecksEach = 256

// SweepIdleDevices deletes the devices that can be pushed nothing and were
// left so: no route, no channel, no update for devices.IdleKept as of now,
// each by compare-and-swap on the revision it read (one updated since
// stays), and returns how many it deleted. Devices were never deleted, so
// registrations that bound nothing (anyone may register, 300 a minute an
// address) filled the cap (PUSHGO_LIMIT_DEVICES) for good and every new
// install was refused. Their delete markers go markersKept later
// (SweepDeleteMarkers, which ingest runs right after it), so the cap's
// count drops. It reads every device once: ingest runs it every hour.
// Every replica may run it.
//
// A device subscribed between its check and its deletion loses its
// subscription's use: its app's next call answers device_key_not_found
// and it registers and subscribes again.
func (r *Registry) SweepIdleDevices(ctx context.Context, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, sweepBound)
	defer cancel()
	cutoff := now.Add(-devices.IdleKept).UnixMilli()
	var idle []devices.Device
	w, err := r.devices.KV().WatchAll(ctx, jetstream.IgnoreDeletes())
	if err == nil {
		err = eachLatest(ctx, w, func(e jetstream.KeyValueEntry) {
			d, err := Decode(e.Key(), e.Value(), e.Revision())
			if err == nil && !d.HasRoute() && d.UpdatedAt <= cutoff {
				idle = append(idle, d)
			}
		})
	}
	if err != nil {
		return 0, fmt.Errorf("sweep idle devices: %w", err)
	}
	// Which of them have a channel: a read of each one's index keys, or,
	// past a few hundred (a flood of registrations, or the devices of
	// uninstalled apps, whose routes were retired and whose channels
	// stay), one pass over the whole index, marking the candidates only (a
	// read each made a consumer each, and a sweep's five minutes did not
	// see a flood's through).
	var subscribed map[string]bool // each candidate's answer; nil: asked one by one
	if len(idle) > idleChecksEach {
		subscribed = make(map[string]bool, len(idle))
		for _, d := range idle {
			subscribed[d.Key] = false
		}
		err := eachKey(ctx, r.devChans.KV(), ">", func(k string) {
			if dk, _, ok := devices.ParseDeviceChannelKey(k); ok {
				if _, candidate := subscribed[dk]; candidate {
					subscribed[dk] = true
				}
			}
		})
		if err != nil {
			return 0, fmt.Errorf("sweep idle devices: the devices' channels: %w", err)
		}
	}
	n := 0
	for _, d := range idle {
		if subscribed != nil {
			if subscribed[d.Key] {
				continue
			}
		} else if chans, err := listKeys(ctx, r.devChans.KV(), devices.DeviceChannelsFilter(d.Key)); err != nil {
			return n, fmt.Errorf("sweep idle devices: channels of a device: %w", err)
		} else if len(chans) > 0 {
			continue
		}
		if r.beforeIdleDelete != nil {
			r.beforeIdleDelete(d.Key)
		}
		err = r.devices.KV().Delete(ctx, d.Key, jetstream.LastRevision(d.Revision))
		if cas.Lost(err) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("sweep idle devices: %w", err)
		}
		n++
	}
	return n, nil
}

// deleteRemoval deletes the removal's record d by compare-and-swap on its
// revision; deleted is false when the key changed since (subscribed again,
// or deleted by another replica's sweep).
func (r *Registry) deleteRemoval(ctx context.Context, d writtenRemoval) (deleted bool, err error) {
	err = r.subs.KV().Delete(ctx, d.key, jetstream.LastRevision(d.rev))
	if cas.Lost(err) {
		return false, nil
	}
	return err == nil, err
}

// deleteIfPresent deletes k by compare-and-swap on its revision and
// reports whether it existed.
func (r *Registry) deleteIfPresent(ctx context.Context, b *leaderread.Bucket, k string) (bool, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			_ = cas.Backoff(ctx, attempt, backoffStep)
		}
		e, err := b.Latest(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		err = b.KV().Delete(ctx, k, jetstream.LastRevision(e.Revision()))
		if cas.Lost(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		return true, nil
	}
	return false, ErrConflict
}

// Channels returns the ids of the channels device key is subscribed to,
// sorted, from the per-device index.
func (r *Registry) Channels(ctx context.Context, key string) ([]string, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	keys, err := listKeys(ctx, r.devChans.KV(), devices.DeviceChannelsFilter(key))
	if err != nil {
		return nil, fmt.Errorf("list channels of device: %w", err)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ch, ok := devices.ParseDeviceChannelKey(k); ok {
			out = append(out, ch)
		}
	}
	sort.Strings(out)
	return out, nil
}

// eachSubscription calls fn with the latest value of every key of the
// subscriptions bucket matching filter (">": all), decoded (a value that
// does not decode is passed), through one watch of their latest values.
func (r *Registry) eachSubscription(ctx context.Context, filter string, fn func(jetstream.KeyValueEntry, devices.Subscription)) error {
	w, err := r.subs.KV().WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	return eachLatest(ctx, w, func(e jetstream.KeyValueEntry) {
		var sub devices.Subscription
		if json.Unmarshal(e.Value(), &sub) == nil {
			fn(e, sub)
		}
	})
}

// eachLatest calls fn with each latest value w brings, until they are all
// in (w's nil entry), then stops w.
func eachLatest(ctx context.Context, w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) error {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, open := <-w.Updates():
			if !open {
				return errors.New("the watch ended")
			}
			if e == nil {
				return nil // the latest values are all in
			}
			fn(e)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Subscribers returns the keys of the devices subscribed to channelID,
// sorted. It is one filtered read of PUSHGO_SUBSCRIPTIONS's latest values
// (a removal's record is no subscriber), so its cost is proportional to
// the channel's keys, not to the bucket. Fetch routes with Device (the
// pusher keeps its own view).
func (r *Registry) Subscribers(ctx context.Context, channelID string) ([]string, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var out []string
	err := r.eachSubscription(ctx, devices.SubscribersFilter(channelID), func(e jetstream.KeyValueEntry, sub devices.Subscription) {
		if sub.Removed() {
			return
		}
		if _, dk, ok := devices.ParseSubscriptionKey(e.Key()); ok {
			out = append(out, dk)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list subscribers of %s: %w", channelID, err)
	}
	sort.Strings(out)
	return out, nil
}

// listKeys lists the live keys of kv matching filter.
func listKeys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	var out []string
	err := eachKey(ctx, kv, filter, func(k string) { out = append(out, k) })
	return out, err
}

// eachKey calls fn with each live key of kv matching filter, as they come.
func eachKey(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kl, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	defer func() { _ = kl.Stop() }()
	for k := range kl.Keys() {
		fn(k)
	}
	return ctx.Err()
}

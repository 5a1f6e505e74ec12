// Package devices is the device and subscription contract shared by ingest
// (which writes the registry) and the pusher (which reads it to fan out):
// the request bodies of the device and subscription routes (spec sections 2
// and 3) and their validation, the records stored in the registry buckets,
// and the key layout of those buckets.
//
// Buckets (names in schemas/streams) and keys:
//
//	PUSHGO_DEVICES          <device_key>                    → Device
//	PUSHGO_SUBSCRIPTIONS    <channel_id>.<device_key>       → Subscription
//	PUSHGO_DEVICE_CHANNELS  <device_key>.<channel_id>       → Subscription
//	PUSHGO_PROVIDER_TOKENS  <channel_type>.<sha256(token)>  → TokenOwner
//
// A channel's subscribers are the keys matching SubscribersFilter(channel)
// whose value is a subscription, not a removal's record (an unsubscribe
// rewrites the channel key as one, Subscription.RemovedAt, which ingest
// deletes RemovalKept later): one filtered read, no scan of other
// channels. The per-device index serves /channel/sync and unsubscribe.
// Writers put the device index key before the channel key and turn the
// channel key into a removal's record before deleting the index key, so a
// subscription always has its index key (sync can always find it).
//
// Device keys are 32 lowercase hex characters and channel ids 26 Crockford
// base32 characters, so both are single NATS subject tokens and valid KV
// key tokens.
package devices

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"time"
)

// Platforms (spec section 3).
const (
	PlatformIOS     = "ios"
	PlatformIPadOS  = "ipados"
	PlatformMacOS   = "macos"
	PlatformWatchOS = "watchos"
	PlatformAndroid = "android"
)

// Channel types: the push provider of a device's route.
const (
	ChannelTypeAPNs = "apns"
	ChannelTypeFCM  = "fcm"
)

// PushGo's other channel types, which this gateway does not serve: private
// is PushGo's own transport (the app keeps a QUIC, TCP or WebSocket
// connection to the gateway: src/private/ in the PushGo gateway, used by the
// Android app's PrivateChannelClient), wns is Windows push. A route of
// either type is refused (private: 503 private_channel_disabled, PushGo's
// answer when its private channel is off; wns: 400 invalid_channel_type),
// and deleting one removes nothing.
const (
	ChannelTypePrivate = "private"
	ChannelTypeWNS     = "wns"
)

// Issue reasons of /device/register when a new key is issued.
const (
	IssueMissing = "missing" // no device_key was sent
	IssueUnknown = "unknown" // the device_key is not in the registry
)

// DeviceKeyLen is the length of a device key: 32 lowercase hex characters.
const DeviceKeyLen = 32

// ValidPlatform reports whether p is one of the platforms (normalised).
func ValidPlatform(p string) bool {
	switch p {
	case PlatformIOS, PlatformIPadOS, PlatformMacOS, PlatformWatchOS, PlatformAndroid:
		return true
	}
	return false
}

// ValidChannelType reports whether t is apns or fcm.
func ValidChannelType(t string) bool { return t == ChannelTypeAPNs || t == ChannelTypeFCM }

// ChannelTypeFor returns the only channel type a platform can be routed
// through: apns for the Apple platforms, fcm for android, "" otherwise.
func ChannelTypeFor(platform string) string {
	switch platform {
	case PlatformIOS, PlatformIPadOS, PlatformMacOS, PlatformWatchOS:
		return ChannelTypeAPNs
	case PlatformAndroid:
		return ChannelTypeFCM
	}
	return ""
}

// Compatible reports whether a device of platform can have a route of
// channelType: apns requires an Apple platform, fcm requires android.
func Compatible(channelType, platform string) bool {
	return channelType != "" && ChannelTypeFor(platform) == channelType
}

// NormalizeDeviceKey returns the canonical (lowercase) form of a device
// key; ok is false unless s is exactly 32 hex characters.
func NormalizeDeviceKey(s string) (key string, ok bool) {
	if len(s) != DeviceKeyLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// Device is a device record in PUSHGO_DEVICES, keyed by its device key.
// A device has at most one push route: ChannelType with ProviderToken.
// A device without a route (never bound, deleted or retired) receives
// nothing; the pusher skips it.
type Device struct {
	Key      string `json:"-"`
	Platform string `json:"platform"`
	// ChannelType is apns or fcm; "" means no route.
	ChannelType string `json:"channel_type,omitempty"`
	// ProviderToken is the APNs device token (lowercase hex) or the FCM
	// registration token. It is never logged.
	ProviderToken string `json:"provider_token,omitempty"`
	// RouteBoundAt is when the current route was bound (ms).
	RouteBoundAt int64 `json:"route_bound_at,omitempty"`
	// RetiredAt is when a route of this device was last retired (ms): the
	// provider reported its token dead.
	RetiredAt int64 `json:"retired_at,omitempty"`
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
	// Revision is the bucket revision of this record (compare-and-swap).
	Revision uint64 `json:"-"`
}

// HasRoute reports whether d can be pushed to.
func (d Device) HasRoute() bool { return d.ChannelType != "" && d.ProviderToken != "" }

// ClearRoute removes d's push route.
func (d *Device) ClearRoute() {
	d.ChannelType, d.ProviderToken, d.RouteBoundAt = "", "", 0
}

// Subscription is the value of a key in PUSHGO_SUBSCRIPTIONS and in
// PUSHGO_DEVICE_CHANNELS. The ids are also in the key; they are repeated so
// a value read alone is self-describing.
type Subscription struct {
	ChannelID    string `json:"channel_id"`
	DeviceKey    string `json:"device_key"`
	SubscribedAt int64  `json:"subscribed_at"`
	// AfterSeq is the last PUSHGO_OPS sequence when the subscription was
	// made: the device is pushed the channel's operations with a higher
	// sequence, and everything up to it is history. Sequences order what
	// timestamps cannot (many operations share a millisecond).
	AfterSeq uint64 `json:"after_seq,omitempty"`
	// RemovedAt (ms), when set, makes the record a removal's: the device
	// was unsubscribed then, when the last PUSHGO_OPS sequence was
	// RemovedAfter. The operations up to it are the device's as AfterSeq
	// says, those after it are not, so that every delivery partition finds
	// the same audience for an operation however late it fans it out
	// (Registry.Unsubscribe writes the record instead of deleting the key;
	// ingest deletes it RemovalKept later). A removal's record is no
	// subscription.
	RemovedAt    int64  `json:"removed_at,omitempty"`
	RemovedAfter uint64 `json:"removed_after,omitempty"`
	// Before is the device's previous membership of the channel, when it
	// subscribed again within RemovalKept of leaving: the operations it
	// covers stay the device's too.
	Before *Membership `json:"before,omitempty"`
}

// Membership is a past stretch of the log a device was subscribed for:
// the operations after After, up to RemovedAfter.
type Membership struct {
	After        uint64 `json:"after"`
	RemovedAfter uint64 `json:"removed_after"`
}

// Covers reports whether the operation at sequence seq was appended
// within m.
func (m Membership) Covers(seq uint64) bool { return m.After < seq && seq <= m.RemovedAfter }

// Removed reports whether s is a removal's record (no subscription).
func (s Subscription) Removed() bool { return s.RemovedAt != 0 }

// Membership is the stretch of the log s covers (to the end while
// subscribed), without Before.
func (s Subscription) Membership() Membership {
	m := Membership{After: s.AfterSeq, RemovedAfter: math.MaxUint64}
	if s.Removed() {
		m.RemovedAfter = s.RemovedAfter
	}
	return m
}

// Covers reports whether the operation at sequence seq is the device's:
// appended while it was subscribed (now, or in Before).
func (s Subscription) Covers(seq uint64) bool {
	return s.Membership().Covers(seq) || s.Before != nil && s.Before.Covers(seq)
}

// RemovalKept is how long a removal's record stays (its device in the
// audience of the operations appended before it): a delivery partition
// fanning out such an operation later than that (far behind the others)
// no longer finds it.
const RemovalKept = time.Hour

// IdleKept is how long a device that can be pushed nothing (no route, no
// channel) stays after its last update (its registration, a route bound
// or cleared, a subscription): an app binds its route as it registers
// (the Android app's ensureProviderRoute registers and binds in one go),
// so such a device is one abandoned, or made by someone filling the
// devices' cap, who keeps no more than three to four hours of
// registrations (IdleKept, the sweep's hour, and the delete marker's hour
// or two before its purge). Deleted, its key answers
// device_key_not_found, on which both apps register again (and a
// registration under an unknown key is given a new one).
const IdleKept = time.Hour

// TokenOwner is the value of a key in PUSHGO_PROVIDER_TOKENS: the device
// that last bound the token. It is an index, checked against the device
// record (whose token is authoritative) before anything is changed.
type TokenOwner struct {
	DeviceKey string `json:"device_key"`
	// Previous is the device that held the token before DeviceKey claimed
	// it: a bind whose device write or whose clearing of that holder
	// failed is retried, and the retry, finding the token its own already,
	// clears Previous's route then (only if it still names this token).
	Previous string `json:"previous,omitempty"`
}

// KeyRef names a device key, or a registry key that holds one, in a log
// line or an error without the key itself: the device key is the device's
// credential on the inbox routes (whoever has it can pull and ack the
// device's items). It is a short hash, the same for the same key.
func KeyRef(key string) string {
	h := sha256.Sum256([]byte(key))
	return "key#" + hex.EncodeToString(h[:4])
}

// SubscriptionKey is the PUSHGO_SUBSCRIPTIONS key of (channel, device).
func SubscriptionKey(channelID, deviceKey string) string { return channelID + "." + deviceKey }

// SubscribersFilter matches every PUSHGO_SUBSCRIPTIONS key of a channel
// (for ListKeysFiltered / WatchFiltered).
func SubscribersFilter(channelID string) string { return channelID + ".*" }

// ParseSubscriptionKey splits a PUSHGO_SUBSCRIPTIONS key.
func ParseSubscriptionKey(key string) (channelID, deviceKey string, ok bool) {
	return split(key)
}

// DeviceChannelKey is the PUSHGO_DEVICE_CHANNELS key of (device, channel).
func DeviceChannelKey(deviceKey, channelID string) string { return deviceKey + "." + channelID }

// DeviceChannelsFilter matches every PUSHGO_DEVICE_CHANNELS key of a device.
func DeviceChannelsFilter(deviceKey string) string { return deviceKey + ".*" }

// ParseDeviceChannelKey splits a PUSHGO_DEVICE_CHANNELS key.
func ParseDeviceChannelKey(key string) (deviceKey, channelID string, ok bool) {
	return split(key)
}

func split(key string) (string, string, bool) {
	a, b, ok := strings.Cut(key, ".")
	if !ok || a == "" || b == "" || strings.Contains(b, ".") {
		return "", "", false
	}
	return a, b, true
}

// TokenKey is the PUSHGO_PROVIDER_TOKENS key of a provider token: the
// channel type and the SHA-256 of the token, so the token itself is not a
// key (keys show up in subjects and broker logs) and any token length fits.
func TokenKey(channelType, token string) string {
	sum := sha256.Sum256([]byte(token))
	return channelType + "." + hex.EncodeToString(sum[:])
}

// Package payload decides what one device receives for one operation: the
// flat string map of spec section 8, the visible alert, the severity
// mapping, collapse and thread ids, the expiry, and whether the push is an
// alert or a background (content-available) push.
//
// It is pure: Build reads no clock (the caller passes now), no state and no
// network, so the same (operation, device) always builds the same
// Notification. The senders (package sender and its subpackages) only
// translate a Notification into a provider request; every decision about
// content is made here, once, for both providers.
//
// The contract is PushGo's, key for key, because the PushGo apps parse the
// push and drop what they cannot read: the gateway's
// src/api/handlers/message/payload/ and src/util/wakeup.rs, and the apps'
// parsers (Apple Shared/Utilities/NotificationPayloadSemantics.swift and
// Shared/Services/NotificationHandling.swift; Android
// NotificationIngressParser.kt). internal/deliveryflow/testdata/app_contract.json
// lists each key with the app file and line that reads it, and
// internal/deliveryflow checks every one at the fake providers.
//
// Alert or background: every operation is an alert, as in PushGo (thing
// updates included). Two pushes are background (APNs content-available,
// priority 5; FCM normal priority) by our choice: thing updates on a channel
// that asked for quiet ones (QuietThingUpdates, PUSHGO_THING_UPDATE_QUIET),
// and an integration's refresh of an open event, which says nothing new.
//
// FCM pushes are data-only: the PushGo Android app builds every
// notification itself from the data (PushGoMessagingService.onMessageReceived),
// which Android calls in the background only for messages without a
// notification block.
//
// Oversized items: a provider accepts at most MaxPayloadBytes. When the
// encoded push would be larger, Build returns PushGo's wake-up push
// (Oversized true; Data carries provider_wakeup "1", provider_mode "wakeup",
// _skip_persist "1" and the ids of wakeup.rs, delivery_id among them); Full
// holds the complete map, which the caller keeps in the device's inbox so
// the app can fetch it with /v2/messages/pull naming that delivery_id.
package payload

import (
	"time"
)

// Provider names a push provider. The values are the channel_type of a
// device route (spec section 3).
type Provider string

const (
	APNs Provider = "apns"
	FCM  Provider = "fcm"
)

// Valid reports whether p is a known provider.
func (p Provider) Valid() bool { return p == APNs || p == FCM }

// Priority is the delivery priority of a push. Its values are the APNs
// apns-priority values; FCM maps High to android priority "high" and Normal
// to "normal".
type Priority int

const (
	PriorityNormal Priority = 5
	PriorityHigh   Priority = 10
)

// MaxPayloadBytes is the largest push both providers accept (APNs: the JSON
// body; FCM: the message's data and notification).
const MaxPayloadBytes = 4096

// Versions carried in every map (as PushGo).
const (
	SchemaVersion  = "1"
	PayloadVersion = "1"
)

// Notification is what to send for one (operation, device). It is provider
// neutral except for Provider itself, which decides the size check.
//
// The zero Expiration means "no expiry chosen": the provider's default
// applies. Title and Body are the visible alert; they are empty on
// background pushes' alert (which has none) but still appear in Data.
type Notification struct {
	// DeliveryID is "<op seq>:<device_key>", the id of the delivery task.
	// APNs derives apns-id from it so a retried duplicate can be dropped.
	DeliveryID string
	Provider   Provider
	// Token is the device's provider token. It is a secret of the device:
	// never log it (DESIGN invariant 6).
	Token string
	// Platform is the device's registered platform (ios, ipados, macos,
	// watchos, android): APNs sends a watch's pushes under the watch
	// app's topic.
	Platform string

	// Data is the flat map sent to the device: beside aps for APNs, the
	// data of a data message for FCM. Every value is a string.
	Data map[string]string
	// Full is the complete section-8 map, what the caller keeps in the
	// device's inbox. Data is Full with the device's provider_device_key
	// unless Oversized, in which case Data is the wake-up map. Treat both
	// as read-only.
	Full map[string]string

	// Title and Body are the visible alert (APNs aps.alert), PushGo's texts.
	// They can differ from Data's title and body: a thing alert's title is
	// "<action>: <title>", and a text PushGo derives (an event update
	// without a title is "Event <id>") is shown but not put in Data, where
	// the apps would take it for the entity's own.
	Title string
	Body  string

	// Severity is one of critical, high, normal, low.
	Severity string
	// InterruptionLevel is the APNs interruption-level for Severity.
	InterruptionLevel string
	// Priority follows Severity, except that background pushes are always
	// PriorityNormal (APNs requires priority 5 for background pushes).
	Priority Priority
	// Background marks an APNs content-available push with no alert, sound
	// or badge (FCM: the same data-only message at normal priority).
	Background bool
	// InboxOnly: the notification goes to the device's inbox, for its next
	// pull, and is not pushed. Set for a background event update to FCM:
	// the PushGo Android app reads no silent flag and alerts for every
	// event push of high or critical severity (NotificationIngressParser),
	// so an integration's refresh of a critical incident rang the phone's
	// alarm each time (the iPhone stays silent).
	InboxOnly bool

	// CollapseID makes later pushes about the same entity replace earlier
	// ones (apns-collapse-id). At most 64 bytes. Empty for messages, which
	// never replace each other, and for FCM (Build says why).
	CollapseID string
	// ThreadID groups notifications on the device (APNs thread-id), in
	// the form the Apple app computes itself:
	// "<entity_type>|channel=<id>[|event=<id>][|thing=<id>]".
	ThreadID string
	// Expiration is when the provider may drop the push undelivered.
	Expiration time.Time
	// NowOrNever asks the provider to keep nothing for a device that is
	// not connected (FCM ttl 0s, APNs apns-expiration 0): the push is
	// delivered now or dropped. Build sets it for pushes that show nothing
	// on the device (nowOrNever says which and why); the device's inbox
	// keeps them either way.
	NowOrNever bool

	// Oversized reports that the full item exceeded MaxPayloadBytes and Data
	// is a wake-up push; see the package comment.
	Oversized bool

	// APNsBody is APNsJSON(n) as Build encoded it for the size check, so the
	// APNs sender does not encode it again. Nil means "encode when sending"
	// (a Notification changed after Build MUST reset it).
	APNsBody []byte
	// fullJSON is Full encoded, for a notification cut from a Template
	// (whose Full is nil): InboxItem's payload.
	fullJSON []byte
}

// SeverityMapping is one row of the severity table of spec section 8.
type SeverityMapping struct {
	InterruptionLevel string   // APNs aps.interruption-level
	Priority          Priority // APNs apns-priority; FCM android priority
	// Sound is the APNs aps.sound of an alert: one of the sound files the
	// PushGo apps bundle (Resources/Sounds), "" for a silent alert.
	Sound string
	// CriticalSound makes aps.sound PushGo's critical-alert dictionary
	// {"name", "critical": 1, "volume": 1.0} instead of a plain name.
	CriticalSound bool
}

// AndroidPriority is the FCM android.priority for p: "high" or "normal".
func (p Priority) AndroidPriority() string {
	if p == PriorityHigh {
		return "high"
	}
	return "normal"
}

// severityTable is spec section 8's table, with PushGo's sounds (gateway
// src/providers/apns.rs build_sound_for_level; the same files the Apple
// app's Shared/Services/NotificationContentPreparer.swift resolvedSound
// picks when its extension runs).
var severityTable = map[string]SeverityMapping{
	"critical": {InterruptionLevel: "critical", Priority: PriorityHigh, Sound: "alert.caf", CriticalSound: true},
	"high":     {InterruptionLevel: "time-sensitive", Priority: PriorityHigh, Sound: "level-up.caf"},
	"normal":   {InterruptionLevel: "active", Priority: PriorityHigh, Sound: "bubble-pop.caf"},
	"low":      {InterruptionLevel: "passive", Priority: PriorityNormal},
}

// MapSeverity returns the mapping of severity, and false for an unknown
// severity (which ingest's validation makes impossible; callers treat it as
// normal).
func MapSeverity(severity string) (SeverityMapping, bool) {
	m, ok := severityTable[severity]
	return m, ok
}

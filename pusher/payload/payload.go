// Package payload decides what one device receives for one operation: the
// flat string map of spec section 8, the visible alert, the severity
// mapping, collapse and thread ids, the expiry, and whether the push is an
// alert or a background (content-available / data-only) push.
//
// It is pure: Build reads no clock (the caller passes now), no state and no
// network, so the same (operation, device) always builds the same
// Notification. The senders (package sender and its subpackages) only
// translate a Notification into a provider request; every decision about
// content is made here, once, for both providers.
//
// Alert or background:
//
//	message.create, event.*, thing.create/archive/delete  alert
//	thing.update                                          background
//
// A Thing that reports every few seconds must not ring the phone, so its
// updates go as APNs background pushes (content-available, priority 5) and
// FCM data-only messages (normal priority).
//
// Oversized items: a provider accepts at most MaxPayloadBytes. When the
// encoded push would be larger, Build returns a small wake-up Notification
// (Oversized true, Data["wakeup"] == "1") that carries delivery_id; Full
// holds the complete map, which the caller keeps in the device's inbox so
// the device can fetch it with /v2/messages/pull.
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

	// Data is the flat map sent to the device: beside aps for APNs, the
	// data of a data message for FCM. Every value is a string.
	Data map[string]string
	// Full is the complete section-8 map. It is the same map as Data
	// unless Oversized, in which case Data is the wake-up map and Full is
	// what the caller keeps in the device's inbox. Treat both as read-only.
	Full map[string]string

	Title string
	Body  string

	// Severity is one of critical, high, normal, low.
	Severity string
	// InterruptionLevel is the APNs interruption-level for Severity.
	InterruptionLevel string
	// Priority follows Severity, except that background pushes are always
	// PriorityNormal (APNs requires priority 5 for background pushes).
	Priority Priority
	// Background marks a content-available (APNs) / data-only (FCM) push
	// with no alert, sound or badge.
	Background bool

	// CollapseID makes later pushes about the same entity replace earlier
	// ones on the device (apns-collapse-id, FCM collapse_key and
	// notification tag). At most 64 bytes. Empty for messages, which never
	// replace each other.
	CollapseID string
	// ThreadID groups notifications on the device (APNs thread-id).
	ThreadID string
	// Expiration is when the provider may drop the push undelivered.
	Expiration time.Time

	// Oversized reports that the full item exceeded MaxPayloadBytes and Data
	// is a wake-up push; see the package comment.
	Oversized bool

	// APNsBody is APNsJSON(n) as Build encoded it for the size check, so the
	// APNs sender does not encode it again. Nil means "encode when sending"
	// (a Notification changed after Build MUST reset it).
	APNsBody []byte
}

// SeverityMapping is one row of the severity table of spec section 8.
type SeverityMapping struct {
	InterruptionLevel string   // APNs aps.interruption-level
	Priority          Priority // APNs apns-priority; FCM android priority
	// Sound reports whether an alert plays the default sound.
	Sound bool
}

// AndroidPriority is the FCM android.priority for p: "high" or "normal".
func (p Priority) AndroidPriority() string {
	if p == PriorityHigh {
		return "high"
	}
	return "normal"
}

// severityTable is spec section 8's table.
var severityTable = map[string]SeverityMapping{
	"critical": {InterruptionLevel: "critical", Priority: PriorityHigh, Sound: true},
	"high":     {InterruptionLevel: "time-sensitive", Priority: PriorityHigh, Sound: true},
	"normal":   {InterruptionLevel: "active", Priority: PriorityHigh, Sound: true},
	"low":      {InterruptionLevel: "passive", Priority: PriorityNormal, Sound: false},
}

// MapSeverity returns the mapping of severity, and false for an unknown
// severity (which ingest's validation makes impossible; callers treat it as
// normal).
func MapSeverity(severity string) (SeverityMapping, bool) {
	m, ok := severityTable[severity]
	return m, ok
}

// Package sendertest is the conformance suite every sender.Sender passes,
// and the local fake providers it runs against: FakeAPNs (an httptest TLS
// HTTP/2 server speaking the APNs provider API) and FakeFCM (an httptest
// server speaking FCM HTTP v1). Both listen on loopback only; no test
// touches the internet.
//
// The suite talks to a provider through the Provider interface: it scripts
// a token's answers in a provider-neutral vocabulary (Answer) and reads back
// what the provider received in a common form (Observed). Each fake
// translates the vocabulary into its provider's native statuses and error
// bodies. The in-memory sender in sender/fake is its own Provider.
//
// Some checks apply only to providers that can show them (the apns-id
// derived from the delivery id exists only for APNs): a case names the
// Capability it needs, and providers without it simply do not have that
// case. Nothing in the suite is skipped.
package sendertest

import (
	"time"

	"github.com/pushgo/gateway/pusher/payload"
)

// AnswerKind is a provider-neutral answer to one push.
type AnswerKind int

const (
	// OK accepts the push (APNs 200; FCM 200 with a message name).
	OK AnswerKind = iota
	// Unregistered: the token is no longer valid (APNs 410 Unregistered;
	// FCM 404 UNREGISTERED).
	Unregistered
	// BadToken: the token is malformed or not for this app (APNs 400
	// BadDeviceToken; FCM 400 INVALID_ARGUMENT about the registration
	// token).
	BadToken
	// BadRequest: the request is rejected for a reason other than the
	// token (APNs 400 BadCollapseId; FCM 400 INVALID_ARGUMENT about a
	// message field).
	BadRequest
	// AuthError: the sender's credentials are not accepted (APNs 403
	// InvalidProviderToken; FCM 403 PERMISSION_DENIED).
	AuthError
	// TooManyRequests: rate limited (APNs 429 TooManyRequests; FCM 429
	// QUOTA_EXCEEDED).
	TooManyRequests
	// Unavailable: the service is down (APNs 503 ServiceUnavailable; FCM
	// 503 UNAVAILABLE).
	Unavailable
	// Internal: the service failed (APNs 500 InternalServerError; FCM 500
	// INTERNAL).
	Internal
	// ExpiredAuth: the sender's credential has expired (APNs 403
	// ExpiredProviderToken; FCM 401 UNAUTHENTICATED): a later try with a
	// fresh one may pass.
	ExpiredAuth
)

// Answer is one scripted answer.
type Answer struct {
	Kind AnswerKind
	// RetryAfter, when positive, is sent as a Retry-After header (whole
	// seconds).
	RetryAfter time.Duration
	// Latency delays the answer; a request abandoned by the sender before
	// then gets no answer.
	Latency time.Duration
	// Reason, when set, replaces the provider's reason (APNs) or error
	// code (FCM) of Kind, keeping Kind's status: Answer{Kind: BadToken,
	// Reason: "DeviceTokenNotForTopic"} is APNs' other 400 token error.
	Reason string
}

// Observed is one push as a provider received it, in a provider-neutral
// form.
type Observed struct {
	Token string
	// CapAlert: Background is true for an APNs background push (push type
	// background, content-available 1, no alert); Alert is true when the
	// request itself asks for a visible alert. FCM pushes are data-only
	// (the PushGo Android app builds every notification itself), so an FCM
	// provider reports neither.
	Background bool
	Alert      bool
	// Title and Body are the texts the device shows: the APNs alert's, or
	// for FCM the data's title and body, from which the Android app builds
	// its notification.
	Title string
	Body  string
	// High is APNs priority 10 or FCM android priority high.
	High bool
	// CollapseID is apns-collapse-id, or FCM collapse_key.
	CollapseID string
	// Data is the flat string map: the keys beside aps, or FCM data.
	Data map[string]string
	// Expires is apns-expiration, or FCM receipt time + ttl (to the
	// second); zero when absent or NowOrNever.
	Expires time.Time
	// NowOrNever: apns-expiration 0, or FCM ttl 0s; the provider stores
	// nothing for a device that is not connected (OfflineDelivery).
	NowOrNever bool

	// Provider specific, filled when the provider has the capability.
	ID                string // CapProviderID: apns-id
	InterruptionLevel string // CapInterruptionLevel
	ThreadID          string // CapInterruptionLevel (APNs thread-id)
	// Sound is the alert's sound file name ("" for none) and
	// CriticalSound reports PushGo's critical-alert dictionary
	// {"name", "critical": 1, "volume": 1} (CapInterruptionLevel).
	Sound         string
	CriticalSound bool
	Authorized    bool // CapAuth: credentials were presented

	// Problems lists protocol violations the provider noticed (a non-string
	// data value, a background push with priority 10, ...). The suite
	// requires it empty.
	Problems []string
	// tooBig: the provider refuses the push for its size (FakeFCM).
	tooBig bool
}

// Capability is a set of provider features a case may need.
type Capability uint

const (
	// CapProviderID: the provider sees an id derived from the delivery id
	// (APNs apns-id).
	CapProviderID Capability = 1 << iota
	// CapInterruptionLevel: the provider sees aps.interruption-level and
	// thread-id (APNs).
	CapInterruptionLevel
	// CapAuth: the provider sees the sender's credentials.
	CapAuth
	// CapAlert: the request says whether it is a visible alert or a
	// background push (APNs). FCM pushes are data-only and say neither.
	CapAlert
	// CapCollapse: a push names a collapse id, so a later one about the
	// same entity replaces it (APNs apns-collapse-id). FCM's pushes name
	// none (fcm.Message says why).
	CapCollapse
)

// Provider is a push provider the suite can script and inspect.
type Provider interface {
	// Platform is the provider the suite builds notifications for.
	Platform() payload.Provider
	// Capabilities lists what this provider can show.
	Capabilities() Capability
	// Script queues answers for token; once they are used up the provider
	// answers OK.
	Script(token string, answers ...Answer)
	// Received returns what the provider received for token, in order,
	// including requests it is still holding (Latency).
	Received(token string) []Observed
}

// Package sender defines how the pusher hands one notification to a push
// provider and what it learns back.
//
// A Sender makes exactly one attempt per Send: it never retries on its own
// and never sleeps. Retrying is the caller's decision, per device, driven by
// the Result (Outcome Retry with an optional RetryAfter) and a Policy. This
// keeps one retry policy for every provider and keeps a delivery task from
// being held by an SDK's hidden back-off (the FCM SDK retries 503s for up to
// about 8 s, or for as long as Retry-After asks, up to 2 minutes; the FCM
// sender stops it after the first attempt).
//
// Every Send is bounded by a deadline: the caller's context, and the
// sender's own SendTimeout, whichever is earlier. A Send that runs out of
// time returns Outcome Retry: the provider may or may not have the push, and
// at-least-once delivery (DESIGN invariant 5) means trying again, at the
// cost of a duplicate on the device when the first did arrive (neither
// provider drops one: apns-id is an identifier, not an idempotency key).
//
// Senders hold no global state, are safe for concurrent use, and never log
// or return a device token or a credential (DESIGN invariant 6).
//
// Implementations: sender/apns (APNs over HTTP/2 with token auth),
// sender/fcm (FCM HTTP v1 through the Firebase Admin SDK) and sender/fake
// (in memory, scriptable, for tests). sender/sendertest holds the one
// conformance suite all three pass, and fake APNs and FCM servers.
package sender

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
)

// Sender sends notifications to one push provider.
type Sender interface {
	// Send makes one attempt to hand n to the provider and reports what
	// happened. It returns within the earlier of ctx's deadline and the
	// sender's own timeout. It never panics on a provider answer and never
	// returns an error: every failure is a Result.
	Send(ctx context.Context, n payload.Notification) Result
	// Name is the provider's name for logs and receipts ("apns", "fcm").
	Name() string
}

// Outcome is what the caller should do after a Send.
type Outcome int

const (
	// Sent: the provider accepted the push. Done.
	Sent Outcome = iota + 1
	// Retry: a transient failure (429, 5xx, a timeout, a connection error).
	// Send the same notification to the same device again later, no sooner
	// than RetryAfter when it is set, within the retry budget.
	Retry
	// RetireToken: the token is permanently invalid for this app (APNs 410
	// Unregistered, 400 BadDeviceToken / DeviceTokenNotForTopic; FCM
	// UNREGISTERED or an invalid-argument error about the token). Retire it
	// and do not retry.
	RetireToken
	// Failed: a permanent error that is not the token's fault (a rejected
	// payload, bad credentials, an unconfigured provider). Do not retry;
	// record a failed receipt with Reason.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Retry:
		return "retry"
	case RetireToken:
		return "retire_token"
	case Failed:
		return "failed"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is what one Send learned.
type Result struct {
	Outcome Outcome
	// RetryAfter is the provider's requested wait (Retry-After), zero when
	// it asked for none. Only meaningful with Retry.
	RetryAfter time.Duration
	// Backoff is the provider's least back-off for this kind of refusal,
	// which the policy doubles from (FCM's QUOTA_EXCEEDED: a minute);
	// zero for the policy's own. Only meaningful with Retry.
	Backoff time.Duration
	// Reason is a short machine-readable cause: the provider's reason or
	// error code ("Unregistered", "UNAVAILABLE"), or "timeout",
	// "connection", "auth" (no credential to send with: the token source
	// failed, nothing was sent), "not_configured", ... It never contains
	// a token.
	Reason string
	// ProviderID is the provider's id of the accepted push: the apns-id
	// for APNs, the message name for FCM.
	ProviderID string
	// StatusCode is the provider's HTTP status, 0 when there was no answer.
	StatusCode int
}

func (r Result) String() string {
	s := r.Outcome.String()
	if r.StatusCode != 0 {
		s += " " + strconv.Itoa(r.StatusCode)
	}
	if r.Reason != "" {
		s += " " + r.Reason
	}
	if r.RetryAfter > 0 {
		s += " retry-after=" + r.RetryAfter.String()
	}
	return s
}

// FromStatus classifies an HTTP status without a more specific reason:
// 2xx Sent, 429 and 5xx Retry, anything else Failed. Senders refine it with
// the provider's own error codes (token errors).
func FromStatus(status int) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Sent
	case status == http.StatusTooManyRequests || status >= 500:
		return Retry
	}
	return Failed
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date (relative to now). It returns 0 for an absent, malformed or
// past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// maxRetryAfter caps a provider's Retry-After so a bogus value cannot park
// a delivery for days.
const maxRetryAfter = time.Hour

// Unconfigured returns a Sender for a provider that is not configured: every
// Send fails visibly with Reason "not_configured: <why>" (DESIGN:
// "its deliveries fail visibly, never silently").
func Unconfigured(name, why string) Sender { return unconfigured{name: name, why: why} }

type unconfigured struct{ name, why string }

func (u unconfigured) Name() string { return u.name }

func (u unconfigured) Send(context.Context, payload.Notification) Result {
	return Result{Outcome: Failed, Reason: fmt.Sprintf("not_configured: %s", u.why)}
}

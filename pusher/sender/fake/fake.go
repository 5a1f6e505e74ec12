// Package fake is an in-memory sender.Sender for the pusher's tests. It
// records every notification it is given and answers from a per-token
// script in the sendertest vocabulary ("503 twice, then OK"; "410"), with
// the outcomes the real senders give for the same provider answers. It
// passes the same conformance suite as the APNs and FCM senders and is its
// own sendertest.Provider.
package fake

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
)

// Sender is a scriptable in-memory sender. The zero value is not usable;
// call New.
type Sender struct {
	sendertest.Queue
	name     string
	platform payload.Provider
	now      func() time.Time
	seq      atomic.Int64

	mu   sync.Mutex
	sent []payload.Notification
}

var (
	_ sender.Sender       = (*Sender)(nil)
	_ sendertest.Provider = (*Sender)(nil)
)

// Option configures a Sender.
type Option func(*Sender)

// WithName sets Name (default "fake").
func WithName(name string) Option { return func(s *Sender) { s.name = name } }

// WithPlatform sets the provider the conformance suite builds for (default
// payload.APNs).
func WithPlatform(p payload.Provider) Option { return func(s *Sender) { s.platform = p } }

// WithClock sets the clock used for expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Sender) { s.now = now } }

// New returns a Sender that answers OK to everything not scripted.
func New(opts ...Option) *Sender {
	s := &Sender{name: "fake", platform: payload.APNs, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Name implements sender.Sender.
func (s *Sender) Name() string { return s.name }

// Platform implements sendertest.Provider.
func (s *Sender) Platform() payload.Provider { return s.platform }

// Capabilities implements sendertest.Provider: the fake sees the
// notification itself. Built for APNs it shows what an APNs request says
// (alert or background, interruption level, thread id, sound); built for
// FCM it shows what a data-only FCM message says, as FakeFCM does.
func (s *Sender) Capabilities() sendertest.Capability {
	if s.platform == payload.FCM {
		return 0
	}
	return sendertest.CapInterruptionLevel | sendertest.CapAlert | sendertest.CapCollapse
}

// Notifications returns every notification Send was given (attempts
// included), in order.
func (s *Sender) Notifications() []payload.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]payload.Notification(nil), s.sent...)
}

// Send implements sender.Sender. An expired notification or an empty token
// is answered without touching the script, as the real senders do.
func (s *Sender) Send(ctx context.Context, n payload.Notification) sender.Result {
	if n.Token == "" {
		return sender.Result{Outcome: sender.RetireToken, Reason: "missing_token"}
	}
	if !n.Expiration.IsZero() && !n.Expiration.After(s.now()) {
		return sender.Result{Outcome: sender.Failed, Reason: "expired"}
	}
	if err := ctx.Err(); err != nil {
		return sender.Result{Outcome: sender.Retry, Reason: "timeout"}
	}
	s.mu.Lock()
	s.sent = append(s.sent, n)
	s.mu.Unlock()

	a := s.Next(s.observe(n))
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return sender.Result{Outcome: sender.Retry, Reason: "timeout"}
		}
	}
	return s.result(a)
}

// result is what the real senders return for the provider answer a.
func (s *Sender) result(a sendertest.Answer) sender.Result {
	var r sender.Result
	switch a.Kind {
	case sendertest.OK:
		return sender.Result{Outcome: sender.Sent, StatusCode: http.StatusOK,
			ProviderID: s.name + "-" + strconv.FormatInt(s.seq.Add(1), 10)}
	case sendertest.Unregistered:
		r = sender.Result{Outcome: sender.RetireToken, StatusCode: http.StatusGone, Reason: "Unregistered"}
	case sendertest.BadToken:
		r = sender.Result{Outcome: sender.RetireToken, StatusCode: http.StatusBadRequest, Reason: "BadDeviceToken"}
	case sendertest.BadRequest:
		r = sender.Result{Outcome: sender.Failed, StatusCode: http.StatusBadRequest, Reason: "BadRequest"}
	case sendertest.AuthError:
		r = sender.Result{Outcome: sender.Failed, StatusCode: http.StatusForbidden, Reason: "AuthError"}
	case sendertest.ExpiredAuth:
		r = sender.Result{Outcome: sender.Retry, StatusCode: http.StatusForbidden, Reason: "ExpiredProviderToken"}
		if s.platform == payload.FCM {
			r.StatusCode, r.Reason = http.StatusUnauthorized, "UNAUTHENTICATED"
		}
	case sendertest.TooManyRequests:
		r = sender.Result{Outcome: sender.Retry, StatusCode: http.StatusTooManyRequests, Reason: "TooManyRequests"}
		if s.platform == payload.FCM {
			r.Reason = "QUOTA_EXCEEDED"
		}
	case sendertest.Unavailable:
		r = sender.Result{Outcome: sender.Retry, StatusCode: http.StatusServiceUnavailable, Reason: "ServiceUnavailable"}
	default:
		r = sender.Result{Outcome: sender.Retry, StatusCode: http.StatusInternalServerError, Reason: "InternalServerError"}
	}
	if a.Reason != "" {
		r.Reason = a.Reason
	}
	if r.Outcome == sender.Retry && a.RetryAfter > 0 {
		r.RetryAfter = a.RetryAfter.Truncate(time.Second)
		if r.RetryAfter < a.RetryAfter {
			r.RetryAfter += time.Second
		}
	}
	if r.Reason == "QUOTA_EXCEEDED" {
		r.Backoff = sender.FCMQuotaBackoff
	}
	return r
}

// observe is what a provider of the fake's platform would see of n.
func (s *Sender) observe(n payload.Notification) sendertest.Observed {
	o := sendertest.Observed{
		Token:      n.Token,
		High:       n.Priority == payload.PriorityHigh,
		CollapseID: n.CollapseID,
		Data:       make(map[string]string, len(n.Data)),
		Expires:    n.Expiration,
		NowOrNever: n.NowOrNever,
	}
	for k, v := range n.Data {
		o.Data[k] = v
	}
	if s.platform == payload.FCM {
		o.Title, o.Body = n.Data["title"], n.Data["body"]
		return o
	}
	o.Background, o.Alert = n.Background, !n.Background
	if o.Alert {
		o.Title, o.Body, o.InterruptionLevel, o.ThreadID = n.Title, n.Body, n.InterruptionLevel, n.ThreadID
		if m, ok := payload.MapSeverity(n.Severity); ok {
			o.Sound, o.CriticalSound = m.Sound, m.CriticalSound
		}
	}
	return o
}

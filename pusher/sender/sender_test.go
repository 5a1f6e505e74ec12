package sender_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":        0,
		"7":       7 * time.Second,
		" 120 ":   2 * time.Minute,
		"0":       0,
		"-3":      0,
		"soon":    0,
		"9999999": time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := sender.ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFromStatus(t *testing.T) {
	for status, want := range map[int]sender.Outcome{
		200: sender.Sent, 204: sender.Sent, 400: sender.Failed, 403: sender.Failed, 404: sender.Failed,
		413: sender.Failed, 429: sender.Retry, 500: sender.Retry, 502: sender.Retry, 503: sender.Retry,
	} {
		if got := sender.FromStatus(status); got != want {
			t.Errorf("FromStatus(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestPolicy(t *testing.T) {
	p := sender.Policy{Base: time.Second, Max: 10 * time.Second, Attempts: 5, NoJitter: true}
	retry := sender.Result{Outcome: sender.Retry}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second} {
		if d, ok := p.Next(attempt, retry); !ok || d != want {
			t.Errorf("Next(%d) = %v %v, want %v", attempt, d, ok, want)
		}
	}
	if _, ok := p.Next(5, retry); ok {
		t.Errorf("retried past the budget")
	}
	big := sender.Policy{Base: time.Second, Max: 10 * time.Second, Attempts: 50, NoJitter: true}
	if d, _ := big.Next(40, retry); d != 10*time.Second {
		t.Errorf("cap: %v", d)
	}
	if d, _ := p.Next(1, sender.Result{Outcome: sender.Retry, RetryAfter: 30 * time.Second}); d != 30*time.Second {
		t.Errorf("Retry-After not honoured: %v", d)
	}
	for _, o := range []sender.Outcome{sender.Sent, sender.RetireToken, sender.Failed} {
		if _, ok := p.Next(1, sender.Result{Outcome: o}); ok {
			t.Errorf("%v retried", o)
		}
	}
	// A provider's back-off floor (FCM's quota: a minute) doubles as the
	// policy's own does, up to Max or the floor, jittered above it: the
	// floor taken as a Retry-After made every wait the same minute.
	quota := sender.Result{Outcome: sender.Retry, Backoff: time.Minute}
	long := sender.Policy{Base: time.Second, Max: 5 * time.Minute, Attempts: 8, NoJitter: true}
	for attempt, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 5 * time.Minute, 7: 5 * time.Minute} {
		if d, ok := long.Next(attempt, quota); !ok || d != want {
			t.Errorf("after quota, Next(%d) = %v %v, want %v", attempt, d, ok, want)
		}
	}
	if d, _ := p.Next(2, quota); d != time.Minute {
		t.Errorf("a floor above Max: %v, want the floor", d)
	}
	seen := map[time.Duration]bool{}
	for range 100 {
		d, _ := sender.Policy{}.Next(2, quota)
		if d < 2*time.Minute || d >= 3*time.Minute {
			t.Fatalf("jittered Next(2) after quota = %v, want in [2m, 3m)", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("after quota, the waits are not spread: %d distinct of 100", len(seen))
	}
	var zero sender.Policy
	for range 100 {
		d, ok := zero.Next(3, retry)
		if !ok || d < 2*time.Second || d >= 4*time.Second {
			t.Fatalf("jittered Next(3) = %v %v, want in [2s, 4s)", d, ok)
		}
	}
}

func TestUnconfigured(t *testing.T) {
	s := sender.Unconfigured("fcm", "PUSHGO_FCM_PROJECT_ID not set")
	r := s.Send(context.Background(), payload.Notification{Token: "x"})
	if s.Name() != "fcm" || r.Outcome != sender.Failed || !strings.HasPrefix(r.Reason, "not_configured:") {
		t.Errorf("%s: %v", s.Name(), r)
	}
}

func TestResultString(t *testing.T) {
	r := sender.Result{Outcome: sender.Retry, StatusCode: 429, Reason: "TooManyRequests", RetryAfter: 3 * time.Second}
	if got := r.String(); got != "retry 429 TooManyRequests retry-after=3s" {
		t.Errorf("%q", got)
	}
}

package sender

import (
	"math/rand/v2"
	"time"
)

// Policy is the per-device retry policy for Outcome Retry: exponential
// back-off from Base (or the result's Backoff, when larger) doubling up to
// Max, never sooner than the provider's Retry-After, for at most Attempts
// sends in all. After the budget the
// caller records a failed receipt.
//
// The zero Policy is usable: it takes DefaultPolicy's values.
type Policy struct {
	Base     time.Duration // first wait; default 1 s
	Max      time.Duration // largest computed wait; default 5 min
	Attempts int           // sends in all, the first included; default 8
	// NoJitter disables jitter. By default a wait d is drawn from
	// [d/2, d) so devices failed by one outage do not retry in lockstep.
	NoJitter bool
}

// FCMQuotaBackoff is the least wait after FCM's QUOTA_EXCEEDED, which
// Google's ErrorCode reference asks for, with exponential back-off from
// there: the FCM sender returns it as the result's Backoff.
const FCMQuotaBackoff = time.Minute

// DefaultPolicy is the policy used for zero fields.
var DefaultPolicy = Policy{Base: time.Second, Max: 5 * time.Minute, Attempts: 8}

// Next reports whether to send again after res, which was the result of
// send number attempt (1 for the first), and how long to wait first. It
// returns false for any outcome but Retry and when the budget is spent. A
// Retry-After longer than Max is honoured (it is capped by
// ParseRetryAfter at one hour).
func (p Policy) Next(attempt int, res Result) (time.Duration, bool) {
	if p.Base <= 0 {
		p.Base = DefaultPolicy.Base
	}
	if p.Max <= 0 {
		p.Max = DefaultPolicy.Max
	}
	if p.Attempts <= 0 {
		p.Attempts = DefaultPolicy.Attempts
	}
	if res.Outcome != Retry || attempt >= p.Attempts {
		return 0, false
	}
	d := p.Base
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if !p.NoJitter && d > 1 {
		d = d/2 + rand.N(d/2)
	}
	if b := res.Backoff; b > 0 {
		// Doubled from the provider's floor as the policy's own from
		// Base, up to Max (or the floor, if larger), and jittered above
		// it: taken as a Retry-After, every later wait was the floor
		// itself, so a burst refused for quota came back in the same
		// second, each time, until its budget was spent.
		for i := 1; i < attempt && b < p.Max; i++ {
			b *= 2
		}
		b = min(b, max(p.Max, res.Backoff))
		if !p.NoJitter {
			b += rand.N(b/2 + 1)
		}
		d = max(d, b)
	}
	return max(d, res.RetryAfter), true
}

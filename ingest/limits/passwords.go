package limits

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/schemas/apierr"
)

// Bounds of the in-memory state: past them the least recently used entry
// goes (about 100 bytes each).
const (
	maxAddrs   = 1 << 16
	maxChans   = 1 << 16
	maxTrusted = 1 << 16
)

// trustFor is how long an address that proved a channel's password is
// exempt from that channel's back-off.
const trustFor = 24 * time.Hour

// firstBackoff is the first back-off once a budget is spent; each further
// failure doubles it.
const firstBackoff = time.Second

// strikes are the failed checks of one address or channel.
type strikes struct {
	n     int       // failures since the count was last forgotten
	last  time.Time // the latest failure
	until time.Time // refused until then
}

// fail records a failure at now: once budget failures are spent, each
// one sets a back-off, firstBackoff at first and doubling per failure up
// to maxWait. A count idle for forget starts again.
func (s *strikes) fail(now time.Time, budget int, maxWait, forget time.Duration) {
	if now.Sub(s.last) > forget {
		s.n = 0
	}
	s.n++
	s.last = now
	if s.n >= budget {
		d := firstBackoff << min(s.n-budget, 30)
		s.until = now.Add(min(d, maxWait))
	}
}

type trustKey struct{ channel, addr string }

// passwordGate is the registry.Gate of the limits: the back-off of failed
// password checks per client address and per channel.
//
// A check is refused (429 too_many_password_failures, before any hashing)
// while its address backs off, or while its channel backs off and the
// address has not proved the channel's password in the last 24 hours. A
// proven address whose password is the cached one always passes: the
// channel's senders keep sending while someone guesses. An unproven one
// is refused even with the right password, or the refusal would tell a
// guesser which guess was right without the hash's cost.
type passwordGate struct {
	l              *Limits
	addrOn, chanOn bool
	forget         time.Duration
	// the pushgo_password_checks_total counters, bound once
	cached, verified, mismatch, refused prometheus.Counter

	mu      sync.Mutex
	addrs   *simplelru.LRU[string, *strikes]
	chans   *simplelru.LRU[string, *strikes]
	trusted *simplelru.LRU[trustKey, time.Time] // proven until
}

var _ registry.Gate = (*passwordGate)(nil)

func newPasswordGate(l *Limits) *passwordGate {
	g := &passwordGate{l: l, addrOn: l.cfg.PasswordFailuresPerAddr >= 0, chanOn: l.cfg.PasswordFailuresPerChannel >= 0,
		forget: max(time.Hour, 2*l.cfg.PasswordBackoffMax),
		cached: l.checks.WithLabelValues("cached"), verified: l.checks.WithLabelValues("verified"),
		mismatch: l.checks.WithLabelValues("mismatch"), refused: l.checks.WithLabelValues("refused")}
	g.addrs, _ = simplelru.NewLRU[string, *strikes](maxAddrs, nil)
	g.chans, _ = simplelru.NewLRU[string, *strikes](maxChans, nil)
	g.trusted, _ = simplelru.NewLRU[trustKey, time.Time](maxTrusted, nil)
	if l.cfg.PasswordBackoffMax < 0 {
		g.addrOn, g.chanOn = false, false
	}
	return g
}

// Passwords is the registry.Gate applying the password back-off (nil
// when it is off).
func (l *Limits) Passwords() registry.Gate {
	if !l.passwords.addrOn && !l.passwords.chanOn {
		return nil
	}
	return l.passwords
}

// Admit implements registry.Gate.
func (g *passwordGate) Admit(ctx context.Context, channelID string, cached bool) *apierr.Error {
	cl, hasClient := ClientOf(ctx)
	now := g.l.now()
	g.mu.Lock()
	proven := false
	if hasClient {
		until, ok := g.trusted.Get(trustKey{channelID, cl.Key})
		proven = ok && now.Before(until)
	}
	if cached && proven {
		g.mu.Unlock()
		return nil
	}
	var wait time.Duration
	var lim Limit
	if hasClient && g.addrOn {
		if s, ok := g.addrs.Get(cl.Key); ok && now.Before(s.until) {
			wait, lim = s.until.Sub(now), PasswordAddr
		}
	}
	if !proven && g.chanOn {
		if s, ok := g.chans.Get(channelID); ok && now.Before(s.until) && s.until.Sub(now) > wait {
			wait, lim = s.until.Sub(now), PasswordChannel
		}
	}
	g.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	g.l.Refused(lim)
	g.refused.Inc()
	whom := "this address"
	if lim == PasswordChannel {
		whom = "this channel"
	}
	return &apierr.Error{Code: apierr.TooManyPasswordFailures, RetryAfter: retryAfter(wait),
		Detail: fmt.Sprintf("too many failed password checks of %s; retry after %d s", whom, retryAfter(wait))}
}

// Checked implements registry.Gate.
func (g *passwordGate) Checked(ctx context.Context, channelID string, cached, ok bool) {
	switch {
	case cached:
		g.cached.Inc()
	case ok:
		g.verified.Inc()
	default:
		g.mismatch.Inc()
	}
	cl, hasClient := ClientOf(ctx)
	now := g.l.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		if !hasClient {
			return
		}
		k := trustKey{channelID, cl.Key}
		// Renewed when half spent, so the hot path of a sender whose
		// checks are cached only reads.
		if until, found := g.trusted.Peek(k); !found || until.Sub(now) < trustFor/2 {
			g.trusted.Add(k, now.Add(trustFor))
		}
		return
	}
	cfg := g.l.cfg
	if hasClient && g.addrOn {
		g.strike(g.addrs, cl.Key, now, cfg.PasswordFailuresPerAddr)
	}
	if g.chanOn {
		g.strike(g.chans, channelID, now, cfg.PasswordFailuresPerChannel)
	}
}

func (g *passwordGate) strike(m *simplelru.LRU[string, *strikes], key string, now time.Time, budget int) {
	s, ok := m.Get(key)
	if !ok {
		s = &strikes{}
		m.Add(key, s)
	}
	s.fail(now, budget, g.l.cfg.PasswordBackoffMax, g.forget)
}

package limits

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Slots admit requests into a number of places served at once, with a
// share per key (an integration token, a client address), and the same
// share per group of keys (a channel's tokens), so that no key and no
// group can take every place. Take never waits: a request over a bound is
// refused at once, in the caller's answer shape.
type Slots struct {
	l                          *Limits
	total, perKey              int   // <= 0: no bound
	totalLim, keyLim, groupLim Limit // the refusals' names
	mu                         sync.Mutex
	used                       int
	held, groups               map[string]int
}

// IntegrationSlots are the integration routes' places, taken once the
// token is known: total at once, Config.IntegrationPerToken of them for
// one token (default a quarter of total, at least 1), and as many for all
// the tokens of one channel (a channel may hold 100 tokens: per token
// alone, four of them took every place).
func (l *Limits) IntegrationSlots(total int) *Slots {
	per := l.cfg.IntegrationPerToken
	if per == 0 {
		per = max(1, total/4)
	}
	return &Slots{l: l, total: total, perKey: per, totalLim: IntegrationTotal, keyLim: IntegrationToken,
		groupLim: IntegrationChannel, held: map[string]int{}, groups: map[string]int{}}
}

// UnauthenticatedReads are the places of integration bodies read before
// their token is known (PagerDuty's routing_key is in the body):
// Config.UnauthenticatedReadsPerAddr per client address, and no total,
// so clients cannot crowd each other out (the body read has a deadline).
func (l *Limits) UnauthenticatedReads() *Slots {
	return &Slots{l: l, perKey: l.cfg.UnauthenticatedReadsPerAddr, keyLim: UnauthenticatedRead, held: map[string]int{}}
}

// Take takes a place for key; ok false is a refusal (counted). The caller
// MUST call release when ok.
func (s *Slots) Take(key string) (release func(), ok bool) { return s.TakeIn("", key) }

// TakeIn is Take for key of group (no group: ""), whose keys together hold
// at most a key's share.
func (s *Slots) TakeIn(group, key string) (release func(), ok bool) {
	s.mu.Lock()
	switch {
	case s.total > 0 && s.used >= s.total:
		s.mu.Unlock()
		s.l.Refused(s.totalLim)
		return nil, false
	case s.perKey > 0 && s.held[key] >= s.perKey:
		s.mu.Unlock()
		s.l.Refused(s.keyLim)
		return nil, false
	case group != "" && s.perKey > 0 && s.groups[group] >= s.perKey:
		s.mu.Unlock()
		s.l.Refused(s.groupLim)
		return nil, false
	}
	s.used++
	s.held[key]++
	if group != "" {
		s.groups[group]++
	}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.used--
			if s.held[key]--; s.held[key] <= 0 {
				delete(s.held, key)
			}
			if group != "" {
				if s.groups[group]--; s.groups[group] <= 0 {
					delete(s.groups, group)
				}
			}
			s.mu.Unlock()
		})
	}, true
}

// TakeClient is Take keyed by the request's client address (no bound when
// the request has none).
func (s *Slots) TakeClient(ctx context.Context) (release func(), ok bool) {
	cl, found := ClientOf(ctx)
	if !found {
		return func() {}, true
	}
	return s.Take(cl.Key)
}

// BodyDeadline sets the time the request's body must have arrived by
// (Config.BodyRead for each started MiB of n, the length the body
// announces or the most the route reads; at least once), on servers that
// support read deadlines; clear, called once the body is read, lifts it
// again (so a keep-alive connection's next request is not held to it).
func (l *Limits) BodyDeadline(w http.ResponseWriter, n int64) (clear func()) {
	rc := http.NewResponseController(w)
	if l.cfg.BodyRead <= 0 {
		// Off: no deadline, not even the server's for a whole request.
		_ = rc.SetReadDeadline(time.Time{})
		return func() {}
	}
	mib := max(1, (n+1<<20-1)>>20)
	if rc.SetReadDeadline(time.Now().Add(time.Duration(mib)*l.cfg.BodyRead)) != nil {
		return func() {}
	}
	return func() { _ = rc.SetReadDeadline(time.Time{}) }
}

// LargeBodies are the bytes of integration bodies over 1 MiB held at once
// (Config.LargeBodies; no bound when it is off), half of them at most for
// one channel: a body is charged the length it announces before its bytes
// arrive, so one channel's two slow 16 MiB announcements held the whole
// budget, and every other channel's large notifications were refused.
func (l *Limits) LargeBodies() *Budget {
	total := int64(l.cfg.LargeBodies)
	return &Budget{l: l, total: total, perKey: total / 2, lim: LargeBodies, held: l.largeHeld, keys: map[string]int64{}}
}

// Budget admits amounts (bytes) held at once up to a total, and up to a
// share of it for one key. Take never waits: an amount over what is left is
// refused at once, in the caller's answer shape.
type Budget struct {
	l             *Limits
	total, perKey int64 // <= 0: no bound
	lim           Limit
	held          prometheus.Gauge // what is taken, as the metric sees it
	mu            sync.Mutex
	used          int64
	keys          map[string]int64
}

// Take takes n for key; ok false is a refusal (counted). An n larger than
// the whole total (or the key's share) is taken when nothing else is held
// (by the key), so a configured total below the largest body refuses such
// a body only while another is held. The caller MUST call release when ok.
func (b *Budget) Take(key string, n int64) (release func(), ok bool) {
	b.mu.Lock()
	if b.total > 0 && (b.used > 0 && b.used+n > b.total || b.keys[key] > 0 && b.keys[key]+n > b.perKey) {
		b.mu.Unlock()
		b.l.Refused(b.lim)
		return nil, false
	}
	b.used += n
	b.keys[key] += n
	b.held.Set(float64(b.used))
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= n
			if b.keys[key] -= n; b.keys[key] <= 0 {
				delete(b.keys, key)
			}
			b.held.Set(float64(b.used))
			b.mu.Unlock()
		})
	}, true
}

// BodyTimedOut reports whether err, from reading a body, is the deadline
// BodyDeadline set (and counts it).
func (l *Limits) BodyTimedOut(err error) bool {
	if !ReadTimedOut(err) {
		return false
	}
	l.Refused(BodyRead)
	return true
}

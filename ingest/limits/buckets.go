package limits

import (
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// maxBuckets bounds the client addresses whose buckets are kept; the least
// recently used goes first (an address forgotten starts with a full
// bucket, which only a client holding more than this many addresses can
// use).
const maxBuckets = 1 << 16

// addrBuckets are token buckets per client address: perMinute tokens a
// minute, holding a minute's worth.
type addrBuckets struct {
	perMinute int

	mu      sync.Mutex
	buckets *simplelru.LRU[string, *rate.Limiter]
}

// newAddrBuckets returns the buckets of perMinute, or nil (no limit) when
// perMinute is not positive.
func newAddrBuckets(perMinute int) *addrBuckets {
	if perMinute <= 0 {
		return nil
	}
	b := &addrBuckets{perMinute: perMinute}
	b.buckets, _ = simplelru.NewLRU[string, *rate.Limiter](maxBuckets, nil)
	return b
}

// take takes a token of key's bucket at now; when there is none it takes
// nothing and says how long until there is one.
func (b *addrBuckets) take(key string, now time.Time) (wait time.Duration, ok bool) {
	l := b.limiter(key)
	// AllowN takes a token or, when there is none, nothing: a refusal
	// made as a reservation cancelled after it gave back nothing when
	// another reservation came between (x/time/rate restores a cancelled
	// reservation's tokens only while it is the latest), so refusals at
	// once drove the bucket into debt, and on a shared address (a NAT) the
	// refusals went on after the flood stopped.
	if l.AllowN(now, 1) {
		return 0, true
	}
	return until(l, now), false
}

// peek is take without taking: whether key's bucket holds a token at now,
// and if not, how long until it does.
func (b *addrBuckets) peek(key string, now time.Time) (wait time.Duration, ok bool) {
	b.mu.Lock()
	l, found := b.buckets.Get(key)
	b.mu.Unlock()
	if !found || l.TokensAt(now) >= 1 { // an address with no bucket has a full one
		return 0, true
	}
	return until(l, now), false
}

// limiter is key's bucket, made full when it has none.
func (b *addrBuckets) limiter(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, found := b.buckets.Get(key)
	if !found {
		l = rate.NewLimiter(rate.Limit(float64(b.perMinute)/60), b.perMinute)
		b.buckets.Add(key, l)
	}
	return l
}

// until is how long until l holds a token, from now.
func until(l *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - l.TokensAt(now)
	return time.Duration(math.Ceil(missing / float64(l.Limit()) * float64(time.Second)))
}

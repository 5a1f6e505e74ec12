package limits

import (
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
	b.mu.Lock()
	l, found := b.buckets.Get(key)
	if !found {
		l = rate.NewLimiter(rate.Limit(float64(b.perMinute)/60), b.perMinute)
		b.buckets.Add(key, l)
	}
	b.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

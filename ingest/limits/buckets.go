package limits

import (
	"fmt"
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
// minute, holding a minute's worth; and, when networkFactor is set, per
// IPv6 /48 (Client.Network), networkFactor times that.
type addrBuckets struct {
	perMinute     int
	networkFactor int

	mu       sync.Mutex
	buckets  *simplelru.LRU[string, *rate.Limiter]
	networks *simplelru.LRU[string, *rate.Limiter]
}

// newAddrBuckets returns the buckets of perMinute (and of networkFactor
// times that per /48; 0: none), or nil (no limit) when perMinute is not
// positive.
func newAddrBuckets(perMinute, networkFactor int) *addrBuckets {
	if perMinute <= 0 {
		return nil
	}
	b := &addrBuckets{perMinute: perMinute, networkFactor: networkFactor}
	b.buckets, _ = simplelru.NewLRU[string, *rate.Limiter](maxBuckets, nil)
	b.networks, _ = simplelru.NewLRU[string, *rate.Limiter](maxBuckets, nil)
	return b
}

// take takes a token of cl's bucket and of its network's (when it has
// one) at now; when either has none it takes nothing and says how long
// until both have one. network reports that the network's refused.
func (b *addrBuckets) take(cl Client, now time.Time) (wait time.Duration, network, ok bool) {
	l := b.limiter(b.buckets, cl.Key, b.perMinute)
	var n *rate.Limiter
	if cl.Network != "" && b.networkFactor > 0 {
		n = b.limiter(b.networks, cl.Network, b.perMinute*b.networkFactor)
		if n.TokensAt(now) < 1 {
			return until(n, now), true, false
		}
	}
	// AllowN takes a token or, when there is none, nothing: a refusal
	// made as a reservation cancelled after it gave back nothing when
	// another reservation came between (x/time/rate restores a cancelled
	// reservation's tokens only while it is the latest), so refusals at
	// once drove the bucket into debt, and on a shared address (a NAT) the
	// refusals went on after the flood stopped.
	if !l.AllowN(now, 1) {
		return until(l, now), false, false
	}
	if n != nil && !n.AllowN(now, 1) {
		// Another address of the network took its last token since:
		// this address's token stays spent (rare, and never in debt).
		return until(n, now), true, false
	}
	return 0, false, true
}

// peek is take without taking: whether cl's bucket and its network's hold
// a token at now, and if not, how long until they do.
func (b *addrBuckets) peek(cl Client, now time.Time) (wait time.Duration, network, ok bool) {
	b.mu.Lock()
	l, found := b.buckets.Get(cl.Key)
	var n *rate.Limiter
	if cl.Network != "" && b.networkFactor > 0 {
		n, _ = b.networks.Get(cl.Network)
	}
	b.mu.Unlock()
	if n != nil && n.TokensAt(now) < 1 {
		return until(n, now), true, false
	}
	if !found || l.TokensAt(now) >= 1 { // an address with no bucket has a full one
		return 0, false, true
	}
	return until(l, now), false, false
}

// limiter is key's bucket of m, made full (perMinute) when it has none.
func (b *addrBuckets) limiter(m *simplelru.LRU[string, *rate.Limiter], key string, perMinute int) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, found := m.Get(key)
	if !found {
		l = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
		m.Add(key, l)
	}
	return l
}

// whose names the bucket that refused, for a refusal's detail: the
// address's, or its network's.
func (b *addrBuckets) whose(network bool) string {
	if network {
		return fmt.Sprintf("network (IPv6 /48: %d a minute)", b.perMinute*b.networkFactor)
	}
	return fmt.Sprintf("address (%d a minute)", b.perMinute)
}

// until is how long until l holds a token, from now.
func until(l *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - l.TokensAt(now)
	return time.Duration(math.Ceil(missing / float64(l.Limit()) * float64(time.Second)))
}

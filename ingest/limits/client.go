package limits

import (
	"context"
	"net/netip"
)

// Client is the address a request came from, as the limits count it.
type Client struct {
	// Addr is the client's IP address.
	Addr string
	// Key is what the limits are kept by: the address, except that an
	// IPv6 address counts as its /64 (one host usually holds a whole /64,
	// so counting single IPv6 addresses would let it take 2^64 budgets).
	Key string
	// Network is an IPv6 address's /48 ("" for IPv4), which the anonymous
	// routes' rates also bound, at NetworkFactor times an address's
	// budget: a home's ISP delegates a /56 or a /48, so a /64 alone gave
	// one subscriber 256 or 65,536 budgets.
	Network string
}

// NetworkFactor is how many times an address's rate a /48 gets
// (Client.Network): room for the many hosts of an office or a campus
// behind one /48, and a subscriber's /56 no more than this.
const NetworkFactor = 16

type clientKey struct{}

// WithClient returns ctx carrying the request's client address addr.
func WithClient(ctx context.Context, addr string) context.Context {
	key, network := keysOf(addr)
	return context.WithValue(ctx, clientKey{}, Client{Addr: addr, Key: key, Network: network})
}

// ClientOf is the client WithClient put in ctx; ok is false when none was
// (a call that did not come from a request: no per-address limit applies).
func ClientOf(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok && c.Key != ""
}

// keysOf is addr's Key and Network.
func keysOf(addr string) (key, network string) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr, ""
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		n, _ := a.Prefix(48)
		return p.String(), n.String()
	}
	return a.String(), ""
}

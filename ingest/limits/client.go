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
}

type clientKey struct{}

// WithClient returns ctx carrying the request's client address addr.
func WithClient(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientKey{}, Client{Addr: addr, Key: keyOf(addr)})
}

// ClientOf is the client WithClient put in ctx; ok is false when none was
// (a call that did not come from a request: no per-address limit applies).
func ClientOf(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok && c.Key != ""
}

func keyOf(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

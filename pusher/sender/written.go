package sender

import "context"

// A device's pushes reach the provider in log order. The pusher keeps that
// order without waiting, before each push, for the provider's answer to the
// one before: a Sender that carries one device's requests in order on one
// connection (APNs: each device's pushes take one HTTP/2 connection, and a
// request is written, headers and body, before the device's next one
// starts) says when a request is written, and the pusher may start the
// device's next Send then. At a provider latency of 20 ms, waiting for each
// answer would cap a device at 50 pushes a second, and a burst of alerts to
// a few phones would queue for seconds. (Pushes of one event or thing still
// wait for each answer: that is the pusher's rule, not the Sender's.)
//
// A Sender that cannot promise the order of two requests in flight (FCM,
// whose transport opens another connection when one is full; the fake)
// never calls Written: the device's next Send starts when this one returns.

type writtenKey struct{}

// WithWritten returns a context whose Send calls written once the request
// is written to the connection that carries the device's requests in order.
// written may be called from another goroutine, before Send returns, and
// more than once; the caller makes it idempotent.
func WithWritten(ctx context.Context, written func()) context.Context {
	return context.WithValue(ctx, writtenKey{}, written)
}

// Written reports to the caller of Send that the request is written (see
// WithWritten); nothing when the caller did not ask.
func Written(ctx context.Context) {
	if f, ok := ctx.Value(writtenKey{}).(func()); ok {
		f()
	}
}

// WantsWritten reports whether the caller of Send asked to be told when the
// request is written (WithWritten).
func WantsWritten(ctx context.Context) bool {
	_, ok := ctx.Value(writtenKey{}).(func())
	return ok
}

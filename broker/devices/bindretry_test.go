package devices

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/broker/brokertest"
	schema "github.com/pushgo/gateway/schemas/devices"
)

// TestRetriedBindClearsTheTokensPreviousHolder: a token moves from device
// A to device B (an app reinstalled under a new key), and B's bind fails
// after it claimed the token, before its device write; the client retries
// the bind. The retry must take the token from A too: A left with it would
// go on receiving pushes for A's channels on the phone that is now B, and
// once the token died, the pusher's retirement (which asks the token's
// index) would never find A.
func TestRetriedBindClearsTheTokensPreviousHolder(t *testing.T) {
	r, device := openWithDevices(t)
	ctx, now := context.Background(), time.UnixMilli(1713750000000)
	a, b := device(), device()
	const token = "apns-token-of-the-phone"
	if _, err := r.BindRoute(ctx, a, "apns", token, "", now); err != nil {
		t.Fatal(err)
	}
	r.beforeRouteWrite = func() error { return errors.New("the device write timed out") }
	if _, err := r.BindRoute(ctx, b, "apns", token, "", now); err == nil {
		t.Fatal("the failed bind answered success")
	}
	r.beforeRouteWrite = nil
	got, err := r.BindRoute(ctx, b, "apns", token, "", now)
	if err != nil || got.ProviderToken != token {
		t.Fatalf("the retried bind: %+v, %v", got, err)
	}
	prev, ok, err := r.Device(ctx, a)
	if err != nil || !ok {
		t.Fatalf("device A: %v %v", ok, err)
	}
	if prev.HasRoute() {
		t.Fatalf("device A kept the token after B's retried bind took it: %+v", prev)
	}
	// Settled, the index entry names B alone: B's later binds (at every
	// launch of the app) clear nobody.
	e, err := r.tokens.Latest(ctx, schema.TokenKey("apns", token))
	if err != nil {
		t.Fatal(err)
	}
	var owner schema.TokenOwner
	if err := json.Unmarshal(e.Value(), &owner); err != nil {
		t.Fatal(err)
	}
	if owner != (schema.TokenOwner{DeviceKey: b}) {
		t.Fatalf("the token's index entry %+v, want B's alone", owner)
	}
}

// TestConcurrentBindsOfOneToken: devices A and B bind one token at once,
// and A's device write comes last: B claimed the token after A, so B holds
// it, and A, finding the token's index naming another device after its
// write, gives its route up. Before, both kept it: the phone got every push
// twice, and once the token died the pusher's retirement (which asks the
// index) never found A.
func TestConcurrentBindsOfOneToken(t *testing.T) {
	r, device := openWithDevices(t)
	ctx, now := context.Background(), time.UnixMilli(1713750000000)
	a, b := device(), device()
	const token = "apns-token-of-the-phone"
	// A claims the token, then waits before its device write while B's
	// whole bind runs.
	paused, resume := make(chan struct{}), make(chan struct{})
	r.beforeRouteWrite = func() error {
		r.beforeRouteWrite = nil // B's bind goes straight through
		close(paused)
		<-resume
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.BindRoute(ctx, a, "apns", token, "", now)
		done <- err
	}()
	<-paused
	if _, err := r.BindRoute(ctx, b, "apns", token, "", now); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var holders []string
	for _, k := range []string{a, b} {
		d, ok, err := r.Device(ctx, k)
		if err != nil || !ok {
			t.Fatalf("device %s: %v %v", k, ok, err)
		}
		if d.HasRoute() && d.ProviderToken == token {
			holders = append(holders, k)
		}
	}
	if len(holders) != 1 || holders[0] != b {
		t.Fatalf("the token is held by %v, want B (%s) alone", holders, b)
	}
}

// TestUnsubscribeBetweenASubscribesWrites: a device subscribed to a
// channel unsubscribes and subscribes again at once (two replicas, or an
// app's quick toggle); the whole unsubscribe runs between the subscribe's
// two writes. The subscription stands, and so does the device's index key
// of it: without the key, Channels (what /channel/sync compares with) did
// not list the channel, so no sync could remove it, and the device kept
// the channel's pushes.
func TestUnsubscribeBetweenASubscribesWrites(t *testing.T) {
	r, device := openWithDevices(t)
	ctx, now := context.Background(), time.UnixMilli(1713750000000)
	dk, ch := device(), "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	if _, err := r.Subscribe(ctx, dk, ch, now); err != nil {
		t.Fatal(err)
	}
	r.beforeSubscriptionWrite = func() {
		r.beforeSubscriptionWrite = nil
		if removed, err := r.Unsubscribe(ctx, dk, ch); err != nil || !removed {
			t.Errorf("the unsubscribe between: %v %v", removed, err)
		}
	}
	if _, err := r.Subscribe(ctx, dk, ch, now); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Subscription(ctx, dk, ch); err != nil || !ok {
		t.Fatalf("the subscription after the subscribe: %v %v", ok, err)
	}
	chs, err := r.Channels(ctx, dk)
	if err != nil || len(chs) != 1 || chs[0] != ch {
		t.Fatalf("the device's channels %v (%v): the subscription stands without its index key", chs, err)
	}
}

// openWithDevices opens a registry on a broker of its own, and device
// registers a new iOS device in it and returns its key.
func openWithDevices(t *testing.T) (r *Registry, device func() string) {
	t.Helper()
	r, err := Open(context.Background(), brokertest.Start(t).JS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, func() string {
		res, err := r.Register(context.Background(), "", "ios", time.UnixMilli(1713750000000))
		if err != nil {
			t.Fatal(err)
		}
		return res.Device.Key
	}
}

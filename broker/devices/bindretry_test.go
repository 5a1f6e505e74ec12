package devices

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
)

// TestRetriedBindClearsTheTokensPreviousHolder: a token moves from device
// A to device B (an app reinstalled under a new key), and B's bind fails
// after it claimed the token, before its device write; the client retries
// the bind. The retry must take the token from A too: A left with it would
// go on receiving pushes for A's channels on the phone that is now B, and
// once the token died, the pusher's retirement (which asks the token's
// index) would never find A.
func TestRetriedBindClearsTheTokensPreviousHolder(t *testing.T) {
	js := brokertest.Start(t).JS
	ctx := context.Background()
	r, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	now := time.UnixMilli(1713750000000)
	device := func() string {
		res, err := r.Register(ctx, "", "ios", now)
		if err != nil {
			t.Fatal(err)
		}
		return res.Device.Key
	}
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
}

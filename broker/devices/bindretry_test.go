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

package devices_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/schemas/ids"
)

// TestTimeoutBoundsEachCall: with Options.Timeout, a call made while the
// broker is down ends with the registry's own deadline, one for the whole
// call (a key create is two round trips, each of which waited JetStream's
// default 5 s: issue 12's registry routes took 10 s and more), even when
// the caller's context has none. The JetStream handle's own default is
// made 10 minutes, so a call the registry does not bound does not return.
func TestTimeoutBoundsEachCall(t *testing.T) {
	b := brokertest.Start(t)
	js, err := jetstream.New(b.NC, jetstream.WithDefaultTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := devices.Open(ctx, js, devices.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Register(ctx, "", "android", now)
	if err != nil {
		t.Fatal(err)
	}
	key := res.Device.Key
	b.Shutdown()

	calls := map[string]func() error{
		"Device":        func() error { _, _, err := r.Device(context.Background(), key); return err },
		"Register":      func() error { _, err := r.Register(context.Background(), "", "android", now); return err },
		"Register key":  func() error { _, err := r.Register(context.Background(), key, "ios", now); return err },
		"BindRoute":     func() error { _, err := r.BindRoute(context.Background(), key, "fcm", "tok", "", now); return err },
		"DeleteRoute":   func() error { _, err := r.DeleteRoute(context.Background(), key, "fcm", now); return err },
		"RetireTokenOf": func() error { _, err := r.RetireTokenOf(context.Background(), "fcm", "tok", key, now); return err },
		"Subscribe":     func() error { _, err := r.Subscribe(context.Background(), key, ids.NewChannelID(), now); return err },
		"Unsubscribe":   func() error { _, err := r.Unsubscribe(context.Background(), key, ids.NewChannelID()); return err },
		"Channels":      func() error { _, err := r.Channels(context.Background(), key); return err },
	}
	for name, call := range calls {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with the broker down: %v, want the registry's deadline", name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s with the broker down: no answer a minute after the registry's 200 ms timeout", name)
		}
	}
}

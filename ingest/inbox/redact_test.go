package inbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/inbox"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
)

// TestFailedReadsDoNotNameTheDeviceKey: with the broker gone, every inbox
// route fails, and its error (which the HTTP front logs at Warn) names
// the device by devices.KeyRef, never by its key: the key is the
// device's credential on these routes, and a broker outage put every
// pulling device's key in the logs.
func TestFailedReadsDoNotNameTheDeviceKey(t *testing.T) {
	b := brokertest.Start(t)
	in, err := inbox.Open(context.Background(), b.JS)
	if err != nil {
		t.Fatal(err)
	}
	device := ids.NewDeviceKey()
	id := delivery.ID(7, device)
	put(t, b.JS, device, 7, `{"delivery_id":"`+id+`"}`)
	b.Shutdown()
	// Each call fails at its bound: the broker is gone.
	bounded := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	_, pullErr := in.Pull(bounded(), device, "", 10)
	_, getErr := in.Get(bounded(), device, id)
	_, takeErr := in.Take(bounded(), device, "", 10)
	_, ackErr := in.Ack(bounded(), device, []string{id})
	for name, err := range map[string]error{"pull": pullErr, "get": getErr, "take": takeErr, "ack": ackErr} {
		switch {
		case err == nil:
			t.Errorf("%s with the broker gone: no error", name)
		case strings.Contains(err.Error(), device):
			t.Errorf("%s: the error names the device key: %v", name, err)
		}
	}
	if !strings.Contains(pullErr.Error(), devices.KeyRef(device)) {
		t.Errorf("pull: %v, want the device named as %s", pullErr, devices.KeyRef(device))
	}
}

package devices_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestWritesThroughOneReplicaAreSeenAtOnceThroughAnother: on a 3-node
// cluster, what the device registry of one ingest replica (attached to
// the buckets' leader's server) wrote is what the registry of another
// replica, attached to a follower's server, decides by at once, 300
// times in a row: a device registered through the first is known to the
// second (no new key issued for it), takes a route for the platform it
// was just moved to (no platform_mismatch or device_not_found), shows the
// route just bound, is unsubscribed from a channel it was just subscribed
// to, and has a token just bound retired. Before, each of those read a
// follower's answer by direct get, which did not hold the write yet (and
// now and then so did the first replica's own reads: a direct get is not
// always answered by the server the client is attached to).
func TestWritesThroughOneReplicaAreSeenAtOnceThroughAnother(t *testing.T) {
	c := brokertest.StartCluster(t)
	for _, b := range []string{streams.DevicesBucket, streams.SubscriptionsBucket, streams.DeviceChannelsBucket, streams.ProviderTokensBucket} {
		c.LeadOn(t, "KV_"+b, 0)
	}
	ctx := context.Background()
	open := func(node int) *devices.Registry {
		_, js := c.Conn(t, node)
		r, err := devices.Open(ctx, js, devices.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	a, b := open(0), open(1)
	// 100: the old code missed about 60% of these reads, so 100 cannot all
	// pass by luck (0.4^100); 300 took 19 s of make test's ten minutes
	// under the race detector (e2e's TestCluster does 1,000 through the
	// HTTP API).
	const n = 100
	wrong := map[string]int{}
	// one runs one iteration; a failure of a write through a is counted
	// too and ends the iteration.
	one := func(i int) {
		fail := func(what string, err error) {
			if err != nil {
				what += ": " + err.Error()
			}
			wrong[what]++
		}
		res, err := a.Register(ctx, "", "android", now)
		if err != nil {
			t.Fatal(err)
		}
		key := res.Device.Key
		again, err := b.Register(ctx, key, "android", now)
		if err != nil {
			t.Fatal(err)
		}
		if again.IssuedNewKey || again.Device.Key != key {
			fail("a device just registered got a new key", nil)
		}
		if res, err := a.Register(ctx, key, "ios", now); err != nil || res.IssuedNewKey {
			fail("the writer's own re-register failed", err)
			return
		}
		switch _, err := b.BindRoute(ctx, key, "apns", fmt.Sprintf("%064x", i), "", now); {
		case errors.Is(err, devices.ErrPlatformMismatch), errors.Is(err, devices.ErrDeviceNotFound):
			fail("a route for the platform just set was refused", err)
		case err != nil:
			t.Fatal(err)
		}
		next := fmt.Sprintf("%064x", n+i)
		if _, err := a.BindRoute(ctx, key, "apns", next, "", now); err != nil {
			fail("the writer's own bind failed", err)
			return
		}
		if d, ok, err := b.Device(ctx, key); err != nil {
			t.Fatal(err)
		} else if !ok || d.ProviderToken != next {
			fail("the device read did not show the route just bound", nil)
		}
		ch := ids.NewChannelID()
		if _, err := a.Subscribe(ctx, key, ch, now); err != nil {
			t.Fatal(err)
		}
		if sub, ok, err := b.Subscription(ctx, key, ch); err != nil {
			t.Fatal(err)
		} else if !ok || sub.ChannelID != ch || sub.DeviceKey != key {
			fail("a subscription just made was not read", nil)
		}
		if removed, err := b.Unsubscribe(ctx, key, ch); err != nil {
			t.Fatal(err)
		} else if !removed {
			fail("a subscription just made was not there to remove", nil)
		}
		if _, ok, err := a.Subscription(ctx, key, ch); err != nil {
			t.Fatal(err)
		} else if ok {
			fail("a subscription just removed was read", nil)
		}
		last := fmt.Sprintf("%064x", 2*n+i)
		if _, err := a.BindRoute(ctx, key, "apns", last, "", now); err != nil {
			fail("the writer's own bind failed", err)
			return
		}
		if retired, err := b.RetireToken(ctx, "apns", last, now); err != nil {
			t.Fatal(err)
		} else if !retired {
			fail("a token just bound was not retired", nil)
		}
	}
	for i := range n {
		one(i)
	}
	for what, k := range wrong {
		t.Errorf("%s: %d of %d times", what, k, n)
	}
}

// TestMarkersPurgedOnACluster: on a 3-node cluster, the registry of a
// replica attached to a follower's server purges the provider tokens'
// delete markers of a device that rotated its token (the buckets
// replicated, the purge the leader's), and the live token stays.
func TestMarkersPurgedOnACluster(t *testing.T) {
	c := brokertest.StartCluster(t)
	c.LeadOn(t, "KV_"+streams.ProviderTokensBucket, 0)
	ctx := context.Background()
	_, js := c.Conn(t, 1)
	r, err := devices.Open(ctx, js, devices.Options{MarkersKept: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	res, err := r.Register(ctx, "", "android", now)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i <= n; i++ {
		if _, err := r.BindRoute(ctx, res.Device.Key, "fcm", fmt.Sprint("token-", i), "", now); err != nil {
			t.Fatal(err)
		}
	}
	if purged, err := r.SweepDeleteMarkers(ctx); err != nil || purged != n {
		t.Fatalf("sweep: %d purged, %v; want %d", purged, err, n)
	}
	kv, err := js.KeyValue(ctx, streams.ProviderTokensBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.Values() != 1 {
		t.Fatalf("tokens bucket after the sweep: %d entries, %v; want the live token's", st.Values(), err)
	}
	if ok, err := r.RetireTokenOf(ctx, "fcm", fmt.Sprint("token-", n), res.Device.Key, now); err != nil || !ok {
		t.Fatalf("retire the live token: %v, %v", ok, err)
	}
}

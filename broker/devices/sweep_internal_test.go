package devices

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	schema "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestSweepIdleDevices: a device registered a day ago that bound no route
// and joined no channel is deleted, and once its delete marker is old the
// marker goes too (SweepDeleteMarkers, which ingest runs after it), so the cap's count (the bucket's values) drops; a
// device with a route, one with a channel, and one registered lately
// stay. Before, anonymous registrations filled PUSHGO_LIMIT_DEVICES for
// good.
func TestSweepIdleDevices(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t)
	r, err := Open(ctx, b.JS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	now := time.Now()
	old := now.Add(-schema.IdleKept - time.Minute)
	register := func(at time.Time) string {
		t.Helper()
		res, err := r.Register(ctx, "", "ios", at)
		if err != nil {
			t.Fatal(err)
		}
		return res.Device.Key
	}
	idle, routed, subscribed, recent := register(old), register(old), register(old), register(now.Add(-10*time.Minute))
	if _, err := r.BindRoute(ctx, routed, "apns", "apns-token-1", "", old); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Subscribe(ctx, subscribed, ids.NewChannelID(), old); err != nil {
		t.Fatal(err)
	}
	kv, err := b.JS.KeyValue(ctx, streams.DevicesBucket)
	if err != nil {
		t.Fatal(err)
	}
	values := func() uint64 {
		t.Helper()
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Values()
	}

	if n, err := r.SweepIdleDevices(ctx, now); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want the one idle device", n, err)
	}
	for key, want := range map[string]bool{idle: false, routed: true, subscribed: true, recent: true} {
		if _, found, err := r.Device(ctx, key); err != nil || found != want {
			t.Errorf("device %s: found %v, %v; want %v", schema.KeyRef(key), found, err, want)
		}
	}
	if _, err := r.BindRoute(ctx, idle, "apns", "apns-token-2", "", now); !errors.Is(err, ErrDeviceNotFound) {
		t.Fatalf("bind of the swept device: %v, want ErrDeviceNotFound (the apps register again)", err)
	}
	if got := values(); got != 4 {
		t.Fatalf("%d values with a fresh delete marker, want 4 (3 devices, the marker kept for the watchers)", got)
	}
	if n, err := r.SweepDeleteMarkers(ctx); err != nil || n != 0 {
		t.Fatalf("marker sweep: %d, %v; want the fresh marker kept", n, err)
	}
	r.markersKept = -1 // every marker old
	if n, err := r.SweepIdleDevices(ctx, now); err != nil || n != 0 {
		t.Fatalf("sweep again: %d, %v; want none", n, err)
	}
	if n, err := r.SweepDeleteMarkers(ctx); err != nil || n != 1 {
		t.Fatalf("marker sweep: %d, %v; want the old marker purged", n, err)
	}
	if got := values(); got != 3 {
		t.Fatalf("%d values after the old marker's purge, want the 3 devices", got)
	}
}

// TestRemovalsKeptAreBounded: the removals' records a registry keeps for
// ForgetRemovals are bounded (an hour of a subscribe and unsubscribe loop
// held millions), by key: a key unsubscribed again replaces its record
// (one key's loop filled the bound with stale revisions, and the others'
// were left to the sweep). One past the bound is left in the bucket for
// SweepRemovals, which deletes it.
func TestRemovalsKeptAreBounded(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t)
	r.removalsKept = 2
	at := time.Now()
	res, err := r.Register(ctx, "", "ios", at)
	if err != nil {
		t.Fatal(err)
	}
	dk := res.Device.Key
	toggle := func(ch string) {
		t.Helper()
		if _, err := r.Subscribe(ctx, dk, ch, at); err != nil {
			t.Fatal(err)
		}
		if removed, err := r.Unsubscribe(ctx, dk, ch); err != nil || !removed {
			t.Fatalf("unsubscribe: %v %v", removed, err)
		}
	}
	looped := ids.NewChannelID()
	for range 5 {
		toggle(looped)
	}
	toggle(ids.NewChannelID())
	toggle(ids.NewChannelID()) // past the bound
	r.removalsMu.Lock()
	kept := r.removals.Len()
	r.removalsMu.Unlock()
	if kept != 2 {
		t.Fatalf("%d removals' records kept in memory, want the bound's 2 (one a key)", kept)
	}
	later := time.Now().Add(schema.RemovalKept + time.Minute)
	if n, err := r.ForgetRemovals(ctx, later); err != nil || n != 2 {
		t.Fatalf("forget: %d %v, want the 2 kept, the looped key's at its last revision", n, err)
	}
	if n, err := r.SweepRemovals(ctx, later); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v, want the one past the bound", n, err)
	}
}

// TestSweepSparesADeviceSubscribedMeanwhile: a subscription made between
// the sweep's check of a device's channels and its deletion keeps the
// device (the subscription touches it, so the sweep's compare-and-swap
// fails); before, the device was deleted under its new subscription.
func TestSweepSparesADeviceSubscribedMeanwhile(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t)
	now := time.Now()
	res, err := r.Register(ctx, "", "ios", now.Add(-schema.IdleKept-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	key, ch := res.Device.Key, ids.NewChannelID()
	r.beforeIdleDelete = func(k string) {
		if _, err := r.Subscribe(ctx, k, ch, now); err != nil {
			t.Errorf("subscribe meanwhile: %v", err)
		}
	}
	if n, err := r.SweepIdleDevices(ctx, now); err != nil || n != 0 {
		t.Fatalf("sweep: %d, %v; want none deleted", n, err)
	}
	if _, found, err := r.Device(ctx, key); err != nil || !found {
		t.Fatalf("the device subscribed meanwhile: found %v, %v", found, err)
	}
	if chans, err := r.Channels(ctx, key); err != nil || len(chans) != 1 {
		t.Fatalf("its channels: %v %v", chans, err)
	}
}

// TestSweepOfAFlood: past idleChecksEach idle devices the sweep reads the
// devices' channels once, and still spares the subscribed ones.
func TestSweepOfAFlood(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t)
	now := time.Now()
	old := now.Add(-schema.IdleKept - time.Minute)
	var keys []string
	for range idleChecksEach + 20 {
		res, err := r.Register(ctx, "", "android", old)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, res.Device.Key)
	}
	kept := map[string]bool{keys[3]: true, keys[idleChecksEach+7]: true}
	for k := range kept {
		// Subscribed as long ago as registered: idle by its record, kept
		// for its channel.
		if _, err := r.Subscribe(ctx, k, ids.NewChannelID(), old); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := r.SweepIdleDevices(ctx, now); err != nil || n != len(keys)-len(kept) {
		t.Fatalf("sweep: %d, %v; want %d", n, err, len(keys)-len(kept))
	}
	for _, k := range keys {
		if _, found, err := r.Device(ctx, k); err != nil || found != kept[k] {
			t.Fatalf("device %s: found %v, %v; want %v", schema.KeyRef(k), found, err, kept[k])
		}
	}
}

// TestForgetRemovalsInWriteOrder: a key unsubscribed again goes to the
// back of the records to forget, so it holds no older one back (kept at
// the front by its first write, its newer record stopped ForgetRemovals
// for every key behind it).
func TestForgetRemovalsInWriteOrder(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t)
	res, err := r.Register(ctx, "", "ios", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dk, a, b := res.Device.Key, ids.NewChannelID(), ids.NewChannelID()
	toggle := func(ch string) {
		t.Helper()
		if _, err := r.Subscribe(ctx, dk, ch, time.Now()); err != nil {
			t.Fatal(err)
		}
		if removed, err := r.Unsubscribe(ctx, dk, ch); err != nil || !removed {
			t.Fatalf("unsubscribe: %v %v", removed, err)
		}
	}
	toggle(a)
	toggle(b)
	time.Sleep(3 * time.Millisecond) // a's second record a few milliseconds after b's
	toggle(a)
	r.removalsMu.Lock()
	last := r.removals.Back().Value.(writtenRemoval)
	r.removalsMu.Unlock()
	// When b's record is old and a's last is not.
	now := last.at.Add(schema.RemovalKept - time.Millisecond)
	if n, err := r.ForgetRemovals(ctx, now); err != nil || n != 1 {
		t.Fatalf("forget: %d %v, want b's record (a's last is not old yet)", n, err)
	}
	if n, err := r.ForgetRemovals(ctx, now.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("forget later: %d %v, want a's", n, err)
	}
}

// openRegistry opens a registry on a broker of its own.
func openRegistry(t *testing.T) *Registry {
	t.Helper()
	r, err := Open(context.Background(), brokertest.Start(t).JS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

package devices_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/devices"
	schema "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// open starts a real embedded broker, ensures the buckets and opens the
// registry over them.
func open(t *testing.T) (*devices.Registry, jetstream.JetStream) {
	t.Helper()
	js := brokertest.Start(t).JS
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := devices.Open(ctx, js, devices.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, js
}

var now = time.UnixMilli(1713750000000)

// register registers a new iOS device with r and returns its key (a
// subscription is only made for a device that exists).
func register(t *testing.T, r *devices.Registry) string {
	t.Helper()
	res, err := r.Register(context.Background(), "", "ios", now)
	if err != nil {
		t.Fatal(err)
	}
	return res.Device.Key
}

// TestSubscribersTenThousand: a channel's 10,000 subscribers list in well
// under a second, next to another channel of the same size.
func TestSubscribersTenThousand(t *testing.T) {
	r, js := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	target, noise := ids.NewChannelID(), ids.NewChannelID()
	const n = 10_000
	want := make(map[string]bool, n)
	// Seed through the broker directly (async publishes of the same keys
	// and values Subscribe writes) to keep the test quick.
	var futures []jetstream.PubAckFuture
	for i := 0; i < n; i++ {
		for _, ch := range []string{target, noise} {
			dk := ids.NewDeviceKey()
			if ch == target {
				want[dk] = true
			}
			b, _ := json.Marshal(schema.Subscription{ChannelID: ch, DeviceKey: dk, SubscribedAt: now.UnixMilli()})
			f, err := js.PublishAsync("$KV."+streams.SubscriptionsBucket+"."+schema.SubscriptionKey(ch, dk), b)
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		// Wait for the broker every 1,000 publishes: the client refuses
		// more than its pending bound when the broker is slow to answer.
		if i%500 == 499 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("seeding timed out")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("seeding timed out")
	}
	for _, f := range futures {
		select {
		case err := <-f.Err():
			t.Fatal(err)
		default:
		}
	}
	// One more through the registry, and one removed again.
	extra := register(t, r)
	if _, err := r.Subscribe(ctx, extra, target, now); err != nil {
		t.Fatal(err)
	}
	want[extra] = true
	var gone string
	for k := range want {
		gone = k
		break
	}
	if removed, err := r.Unsubscribe(ctx, gone, target); err != nil || !removed {
		t.Fatalf("unsubscribe %v %v", removed, err)
	}
	delete(want, gone)

	start := time.Now()
	subs, err := r.Subscribers(ctx, target)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listed %d subscribers in %s", len(subs), took)
	if len(subs) != len(want) {
		t.Fatalf("%d subscribers, want %d", len(subs), len(want))
	}
	for _, k := range subs {
		if !want[k] {
			t.Fatalf("unexpected subscriber %s", k)
		}
	}
	// How long it took is logged, not judged: timing is make bench's.
}

func TestRegisterAndRoutes(t *testing.T) {
	r, _ := open(t)
	ctx := context.Background()
	res, err := r.Register(ctx, "", "ios", now)
	if err != nil || !res.IssuedNewKey || res.Reason != schema.IssueMissing {
		t.Fatalf("%+v %v", res, err)
	}
	key := res.Device.Key
	tok := strings.Repeat("0a", 32)
	if _, err := r.BindRoute(ctx, key, "apns", tok, "", now); err != nil {
		t.Fatal(err)
	}
	// Re-platforming to android drops the apns route the device cannot use.
	res, err = r.Register(ctx, key, "android", now)
	if err != nil || res.IssuedNewKey || res.Device.Platform != "android" || res.Device.HasRoute() {
		t.Fatalf("%+v %v", res, err)
	}
	// ...and its token index entry: retiring the token touches nothing.
	if retired, err := r.RetireToken(ctx, "apns", tok, now); err != nil || retired {
		t.Fatalf("retire %v %v", retired, err)
	}
	if _, err := r.BindRoute(ctx, key, "apns", tok, "", now); !errors.Is(err, devices.ErrPlatformMismatch) {
		t.Fatalf("apns on android: %v", err)
	}
	if _, err := r.BindRoute(ctx, ids.NewDeviceKey(), "fcm", "t", "", now); !errors.Is(err, devices.ErrDeviceNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	// Rebinding a new token releases the old one.
	if _, err := r.BindRoute(ctx, key, "fcm", "first", "", now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.BindRoute(ctx, key, "fcm", "second", "", now); err != nil {
		t.Fatal(err)
	}
	if retired, _ := r.RetireToken(ctx, "fcm", "first", now); retired {
		t.Fatal("retiring a replaced token removed the current route")
	}
	if retired, _ := r.RetireToken(ctx, "fcm", "second", now); !retired {
		t.Fatal("current token not retired")
	}
	d, _, _ := r.Device(ctx, key)
	if d.HasRoute() || d.RetiredAt != now.UnixMilli() {
		t.Fatalf("%+v", d)
	}
}

// TestConcurrentDeviceWrites: many writers of one device record by
// compare-and-swap; every write lands on a fresh revision and the record
// ends consistent (one route, its token indexed to it).
func TestConcurrentDeviceWrites(t *testing.T) {
	r, _ := open(t)
	ctx := context.Background()
	res, err := r.Register(ctx, "", "android", now)
	if err != nil {
		t.Fatal(err)
	}
	key := res.Device.Key
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			if _, err := r.BindRoute(ctx, key, "fcm", fmt.Sprintf("token-%d", i), "", now); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	d, _, _ := r.Device(ctx, key)
	if !d.HasRoute() || !strings.HasPrefix(d.ProviderToken, "token-") {
		t.Fatalf("%+v", d)
	}
	// The token the record holds retires it.
	if retired, err := r.RetireToken(ctx, "fcm", d.ProviderToken, now); err != nil || !retired {
		t.Fatalf("retire %v %v", retired, err)
	}
}

// TestRetireTokenOf: a retirement limited to a device key retires the
// token only from that device; once the token moved to another device it
// is alive there and stays.
func TestRetireTokenOf(t *testing.T) {
	r, _ := open(t)
	ctx := context.Background()
	a, err := r.Register(ctx, "", "android", now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Register(ctx, "", "android", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.BindRoute(ctx, a.Device.Key, "fcm", "moving", "", now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.BindRoute(ctx, b.Device.Key, "fcm", "moving", "", now); err != nil {
		t.Fatal(err)
	}
	if retired, err := r.RetireTokenOf(ctx, "fcm", "moving", a.Device.Key, now); err != nil || retired {
		t.Fatalf("retired from the device that no longer holds it: %v %v", retired, err)
	}
	if d, _, _ := r.Device(ctx, b.Device.Key); !d.HasRoute() {
		t.Fatalf("the holder lost its route: %+v", d)
	}
	if retired, err := r.RetireTokenOf(ctx, "fcm", "moving", b.Device.Key, now); err != nil || !retired {
		t.Fatalf("holder's retirement: %v %v", retired, err)
	}
	if d, _, _ := r.Device(ctx, b.Device.Key); d.HasRoute() {
		t.Fatalf("route kept: %+v", d)
	}
}

func TestSubscribeIdempotent(t *testing.T) {
	r, _ := open(t)
	ctx := context.Background()
	dk, ch := register(t, r), ids.NewChannelID()
	for i, want := range []bool{true, false} {
		created, err := r.Subscribe(ctx, dk, ch, now)
		if err != nil || created != want {
			t.Fatalf("subscribe %d: %v %v", i, created, err)
		}
	}
	if chs, err := r.Channels(ctx, dk); err != nil || len(chs) != 1 || chs[0] != ch {
		t.Fatalf("%v %v", chs, err)
	}
	if subs, err := r.Subscribers(ctx, ids.NewChannelID()); err != nil || len(subs) != 0 {
		t.Fatalf("empty channel: %v %v", subs, err)
	}
}

// TestRemovalRecord: an unsubscribe leaves a removal's record on the key
// (for the pusher's audience, devices.RemovalKept): it is no
// subscription, not a subscriber, and an unsubscribe again finds none; a
// subscribe replaces it, keeping the stretch it covered; SweepRemovals
// deletes one older than RemovalKept and leaves a subscription.
func TestRemovalRecord(t *testing.T) {
	r, js := open(t)
	ctx := context.Background()
	dk, other, ch := register(t, r), register(t, r), ids.NewChannelID()
	kv, err := js.KeyValue(ctx, streams.SubscriptionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dk, other} {
		if _, err := r.Subscribe(ctx, d, ch, now); err != nil {
			t.Fatal(err)
		}
	}
	if removed, err := r.Unsubscribe(ctx, dk, ch); err != nil || !removed {
		t.Fatalf("unsubscribe: %v %v", removed, err)
	}
	e, err := kv.Get(ctx, schema.SubscriptionKey(ch, dk))
	if err != nil {
		t.Fatalf("no removal's record: %v", err)
	}
	var rec schema.Subscription
	if err := json.Unmarshal(e.Value(), &rec); err != nil || !rec.Removed() {
		t.Fatalf("record %s (%v): want a removal's", e.Value(), err)
	}
	if _, ok, err := r.Subscription(ctx, dk, ch); err != nil || ok {
		t.Fatalf("a removal's record read as a subscription: %v %v", ok, err)
	}
	if subs, err := r.Subscribers(ctx, ch); err != nil || len(subs) != 1 || subs[0] != other {
		t.Fatalf("subscribers %v %v, want only %s", subs, err, other)
	}
	if chs, err := r.Channels(ctx, dk); err != nil || len(chs) != 0 {
		t.Fatalf("channels of the unsubscribed device: %v %v", chs, err)
	}
	if removed, err := r.Unsubscribe(ctx, dk, ch); err != nil || removed {
		t.Fatalf("unsubscribe again: removed %v, %v; want false", removed, err)
	}
	if created, err := r.Subscribe(ctx, dk, ch, now); err != nil || !created {
		t.Fatalf("subscribe over a removal's record: %v %v, want created", created, err)
	}
	sub, ok, err := r.Subscription(ctx, dk, ch)
	if err != nil || !ok || sub.Removed() || sub.Before == nil || sub.Before.RemovedAfter != rec.RemovedAfter {
		t.Fatalf("subscription after subscribing again: %+v %v %v, want its earlier stretch in Before", sub, ok, err)
	}
	if chs, err := r.Channels(ctx, dk); err != nil || len(chs) != 1 {
		t.Fatalf("channels after subscribing again: %v %v", chs, err)
	}
	if removed, err := r.Unsubscribe(ctx, other, ch); err != nil || !removed {
		t.Fatal(removed, err)
	}
	// The writer forgets its own records RemovalKept later (not sooner);
	// another registry (a replica, or this one restarted) sweeps them.
	later := time.Now().Add(schema.RemovalKept + time.Minute)
	if n, err := r.ForgetRemovals(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("forget at once: %d %v, want none", n, err)
	}
	if n, err := r.ForgetRemovals(ctx, later); err != nil || n != 1 {
		t.Fatalf("forget past RemovalKept: %d %v, want the removal's record left (dk's was replaced)", n, err)
	}
	if _, err := kv.Get(ctx, schema.SubscriptionKey(ch, other)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the forgotten record is still there: %v", err)
	}
	if removed, err := r.Unsubscribe(ctx, other, ch); err != nil || removed {
		t.Fatal(removed, err)
	}
	if _, err := r.Subscribe(ctx, other, ch, now); err != nil {
		t.Fatal(err)
	}
	if removed, err := r.Unsubscribe(ctx, other, ch); err != nil || !removed {
		t.Fatal(removed, err)
	}
	replica, err := devices.Open(ctx, js, devices.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if n, err := replica.SweepRemovals(ctx, later); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v, want the one removal's record", n, err)
	}
	if _, err := kv.Get(ctx, schema.SubscriptionKey(ch, other)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the swept record is still there: %v", err)
	}
	if _, ok, err := r.Subscription(ctx, dk, ch); err != nil || !ok {
		t.Fatalf("the sweep took a subscription: %v %v", ok, err)
	}
	if n, err := r.ForgetRemovals(ctx, later); err != nil || n != 0 {
		t.Fatalf("forget after another's sweep: %d %v, want none (passed)", n, err)
	}
}

package audience_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/pusher/audience"
	schema "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestUnsubscribedDeviceStaysInTheAudienceOfEarlierOperations: a device
// unsubscribed is in the audience of the operations appended before its
// unsubscribe, and not of those after, whenever the audience is asked:
// each delivery partition asks when it fans an operation out, one of them
// maybe long after the others, and they must find the same audience (a
// partition that found the device gone wrote no share of it while
// another had counted it in, and /send_status waited for it for good).
// Subscribed again, it is in the audience of what follows.
func TestUnsubscribedDeviceStaysInTheAudienceOfEarlierOperations(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	reg, err := devices.Open(ctx, b.JS, devices.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := audience.Open(ctx, b.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	register := func() string {
		t.Helper()
		res, err := reg.Register(ctx, "", "ios", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return res.Device.Key
	}
	ch, stay, leave := ids.NewChannelID(), register(), register()
	appendOp := func() uint64 {
		t.Helper()
		ack, err := b.JS.Publish(ctx, streams.MessagesSubject(ch), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	before := appendOp()
	for _, d := range []string{stay, leave} {
		if _, err := reg.Subscribe(ctx, d, ch, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	during := appendOp()
	if removed, err := reg.Unsubscribe(ctx, leave, ch); err != nil || !removed {
		t.Fatalf("unsubscribe: %v %v", removed, err)
	}
	after := appendOp()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[uint64][]string{before: {}, during: sorted(stay, leave), after: {stay}} {
		if got := a.At(ch, seq); !slices.Equal(got, want) {
			t.Errorf("audience of seq %d: %v, want %v", seq, got, want)
		}
	}
	if _, ok, err := reg.Subscription(ctx, leave, ch); err != nil || ok {
		t.Fatalf("the unsubscribed device's subscription: %v %v, want none", ok, err)
	}
	if subs, err := reg.Subscribers(ctx, ch); err != nil || !slices.Equal(subs, []string{stay}) {
		t.Fatalf("subscribers %v %v, want only %s", subs, err, stay)
	}

	// Subscribed again: in the audience of what follows.
	if created, err := reg.Subscribe(ctx, leave, ch, time.Now()); err != nil || !created {
		t.Fatalf("subscribe again: %v %v", created, err)
	}
	again := appendOp()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.At(ch, again); !slices.Equal(got, sorted(stay, leave)) {
		t.Errorf("audience after subscribing again: %v", got)
	}
	if got := a.At(ch, after); !slices.Equal(got, []string{stay}) {
		t.Errorf("audience of the operation appended while it was away: %v, want %v", got, []string{stay})
	}
	if got := a.At(ch, during); !slices.Equal(got, sorted(stay, leave)) {
		t.Errorf("audience of the operation of its first subscription, after subscribing again: %v, want both", got)
	}

	// Unsubscribed again and swept by ingest devices.RemovalKept later: it
	// leaves the audience of every operation.
	if removed, err := reg.Unsubscribe(ctx, leave, ch); err != nil || !removed {
		t.Fatalf("unsubscribe again: %v %v", removed, err)
	}
	if n, err := reg.SweepRemovals(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("a sweep at once: %d swept, %v; want none", n, err)
	}
	if n, err := reg.SweepRemovals(ctx, time.Now().Add(schema.RemovalKept+time.Minute)); err != nil || n != 1 {
		t.Fatalf("a sweep past RemovalKept: %d swept, %v; want 1", n, err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{during, again} {
		if got := a.At(ch, seq); !slices.Equal(got, []string{stay}) {
			t.Errorf("audience of seq %d after the sweep: %v, want %v", seq, got, []string{stay})
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestAudienceAfterTheMarkersPurge: once an unsubscribed device's record
// is deleted and the registry's sweep has purged the delete markers
// (devices.Registry.SweepDeleteMarkers), the audience (watching since
// before, or started after the purge) neither brings the device back nor
// misses it when it subscribes again: the key is new, in the audience of
// what follows only.
func TestAudienceAfterTheMarkersPurge(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	reg, err := devices.Open(ctx, b.JS, devices.Options{MarkersKept: -1}) // every marker old
	if err != nil {
		t.Fatal(err)
	}
	a, err := audience.Open(ctx, b.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	register := func() string {
		t.Helper()
		res, err := reg.Register(ctx, "", "ios", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return res.Device.Key
	}
	ch, stay, leave := ids.NewChannelID(), register(), register()
	appendOp := func() uint64 {
		t.Helper()
		ack, err := b.JS.Publish(ctx, streams.MessagesSubject(ch), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	for _, d := range []string{stay, leave} {
		if _, err := reg.Subscribe(ctx, d, ch, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	during := appendOp()
	if removed, err := reg.Unsubscribe(ctx, leave, ch); err != nil || !removed {
		t.Fatalf("unsubscribe: %v %v", removed, err)
	}
	if n, err := reg.SweepRemovals(ctx, time.Now().Add(schema.RemovalKept+time.Minute)); err != nil || n != 1 {
		t.Fatalf("a sweep past RemovalKept: %d swept, %v; want 1", n, err)
	}
	// The subscription's marker and the per-device index key's.
	if n, err := reg.SweepDeleteMarkers(ctx); err != nil || n != 2 {
		t.Fatalf("marker sweep: %d purged, %v; want 2", n, err)
	}
	kv, err := b.JS.KeyValue(ctx, streams.SubscriptionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.Values() != 1 {
		t.Fatalf("subscriptions bucket after the purge: %v entries, %v; want the one live subscription", st.Values(), err)
	}
	fresh, err := audience.Open(ctx, b.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for name, au := range map[string]*audience.Audience{"watching": a, "fresh": fresh} {
		if err := au.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := au.At(ch, during); !slices.Equal(got, []string{stay}) {
			t.Errorf("%s audience after the purge: %v, want %v", name, got, []string{stay})
		}
	}

	if created, err := reg.Subscribe(ctx, leave, ch, time.Now()); err != nil || !created {
		t.Fatalf("subscribe again: %v %v", created, err)
	}
	again := appendOp()
	for name, au := range map[string]*audience.Audience{"watching": a, "fresh": fresh} {
		if err := au.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := au.At(ch, again); !slices.Equal(got, sorted(stay, leave)) {
			t.Errorf("%s audience after subscribing again: %v, want both", name, got)
		}
		if got := au.At(ch, during); !slices.Equal(got, []string{stay}) {
			t.Errorf("%s audience of the operation before, after subscribing again: %v, want %v", name, got, []string{stay})
		}
	}
	if chans, err := reg.Channels(ctx, leave); err != nil || !slices.Equal(chans, []string{ch}) {
		t.Fatalf("channels of the device subscribed again: %v, %v", chans, err)
	}
}

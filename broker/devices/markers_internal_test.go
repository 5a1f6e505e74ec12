package devices

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/kvview"
	schema "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// markerFixture is a registry connected as ingest is in production (its
// role's permissions), with a device that rotated its token and cycled
// subscriptions: the soak's reproduction, small.
type markerFixture struct {
	b      *brokertest.Broker
	js     jetstream.JetStream
	r      *Registry
	dev    string   // the rotating device
	tokens []string // its tokens, in bind order: the last one is live
	chans  []string // the channels it subscribed to and left, one each
	keep   string   // a channel it stays subscribed to
}

// rotations is how many times the fixture's device rotates its token, and
// how many channels it subscribes to and leaves.
const rotations = 40

func newMarkerFixture(t *testing.T) *markerFixture {
	t.Helper()
	ctx := context.Background()
	b := brokertest.Start(t)
	_, js := b.ConnAs(t, broker.RoleIngest)
	r, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	f := &markerFixture{b: b, js: js, r: r, keep: ids.NewChannelID()}
	now := time.Now()
	res, err := r.Register(ctx, "", "android", now)
	if err != nil {
		t.Fatal(err)
	}
	f.dev = res.Device.Key
	for i := 0; i <= rotations; i++ { // rotations releases: as many markers
		tok := fmt.Sprintf("fcm-token-%d", i)
		if _, err := r.BindRoute(ctx, f.dev, "fcm", tok, "", now); err != nil {
			t.Fatal(err)
		}
		f.tokens = append(f.tokens, tok)
	}
	if _, err := r.Subscribe(ctx, f.dev, f.keep, now); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rotations; i++ {
		ch := ids.NewChannelID()
		if _, err := r.Subscribe(ctx, f.dev, ch, now); err != nil {
			t.Fatal(err)
		}
		if ok, err := r.Unsubscribe(ctx, f.dev, ch); err != nil || !ok {
			t.Fatalf("unsubscribe: %v, %v", ok, err)
		}
		f.chans = append(f.chans, ch)
	}
	// The removals' records, an hour later, are deleted: as many markers.
	if n, err := r.ForgetRemovals(ctx, time.Now().Add(schema.RemovalKept+time.Minute)); err != nil || n != rotations {
		t.Fatalf("forget removals: %d, %v; want %d", n, err, rotations)
	}
	return f
}

// values is how many entries bucket holds (live keys and delete markers).
func (f *markerFixture) values(t *testing.T, bucket string) uint64 {
	t.Helper()
	kv, err := f.b.JS.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Values()
}

// sweepUntil runs SweepDeleteMarkers until it has reported want markers
// purged in all (its positive signal), failing past a deadline.
func sweepUntil(t *testing.T, r *Registry, want int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	got := 0
	for got < want {
		n, err := r.SweepDeleteMarkers(ctx)
		if err != nil {
			t.Fatalf("sweep: %v", err)
		}
		got += n
		if time.Now().After(deadline) {
			t.Fatalf("the sweep purged %d markers, want %d", got, want)
		}
	}
	if got != want {
		t.Fatalf("the sweep purged %d markers, want %d", got, want)
	}
}

// TestSweepPurgesEveryRegistryBucketsMarkers: a token rotated N times, a
// route's token retired, and N channels subscribed and left (their
// removals' records deleted an hour later) leave, once the sweep has
// purged their markers, no more entries in each bucket than its live keys,
// and every live key stays. A marker younger than the age kept stays.
// Before, only the devices bucket's markers were purged: the provider
// tokens, device channels and subscriptions kept one entry per key ever
// deleted, for good (61% of the soak's provider-token bucket), and the
// ingest role could not purge at all.
func TestSweepPurgesEveryRegistryBucketsMarkers(t *testing.T) {
	ctx := context.Background()
	f := newMarkerFixture(t)
	r := f.r
	now := time.Now()
	other, err := r.Register(ctx, "", "ios", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.BindRoute(ctx, other.Device.Key, "apns", "apns-dead", "", now); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.RetireToken(ctx, "apns", "apns-dead", now); err != nil || !ok {
		t.Fatalf("retire: %v, %v", ok, err)
	}
	live := map[string]uint64{
		streams.DevicesBucket:        2, // the two devices
		streams.ProviderTokensBucket: 1, // the rotating device's last token
		streams.DeviceChannelsBucket: 1, // its kept channel
		streams.SubscriptionsBucket:  1, // the same
	}
	markers := map[string]uint64{
		streams.DevicesBucket:        0,
		streams.ProviderTokensBucket: rotations + 1, // the releases and the retirement
		streams.DeviceChannelsBucket: rotations,
		streams.SubscriptionsBucket:  rotations,
	}
	total := 0
	for b, want := range live {
		if got := f.values(t, b); got != want+markers[b] {
			t.Fatalf("%s holds %d entries before the sweep, want %d live keys and %d markers", b, got, want, markers[b])
		}
		total += int(markers[b])
	}

	// Markers younger than the age kept (an hour) stay.
	if n, err := r.SweepDeleteMarkers(ctx); err != nil || n != 0 {
		t.Fatalf("sweep of fresh markers: %d, %v; want none purged", n, err)
	}
	for b, want := range live {
		if got := f.values(t, b); got != want+markers[b] {
			t.Fatalf("%s holds %d entries after a sweep of fresh markers, want them all (%d)", b, got, want+markers[b])
		}
	}

	r.markersKept = time.Millisecond // a short age: the markers are older soon
	sweepUntil(t, r, total)
	for b, want := range live {
		if got := f.values(t, b); got != want {
			t.Errorf("%s holds %d entries after the sweep, want its %d live keys", b, got, want)
		}
	}
	// Nothing live went.
	d, ok, err := r.Device(ctx, f.dev)
	if err != nil || !ok || d.ProviderToken != f.tokens[len(f.tokens)-1] {
		t.Fatalf("device after the sweep: %+v, %v, %v; want its last token", d, ok, err)
	}
	if lost, err := r.claimedByAnother(ctx, schema.TokenKey("fcm", d.ProviderToken), "nobody"); err != nil || !lost {
		t.Fatalf("the live token's index entry after the sweep: %v, %v; want it naming the device", lost, err)
	}
	if chans, err := r.Channels(ctx, f.dev); err != nil || !slices.Equal(chans, []string{f.keep}) {
		t.Fatalf("channels after the sweep: %v, %v; want [%s]", chans, err, f.keep)
	}
	if subs, err := r.Subscribers(ctx, f.keep); err != nil || !slices.Equal(subs, []string{f.dev}) {
		t.Fatalf("subscribers after the sweep: %v, %v", subs, err)
	}
	if _, ok, err := r.Device(ctx, other.Device.Key); err != nil || !ok {
		t.Fatalf("the retired device after the sweep: %v, %v", ok, err)
	}
	// A sweep again has nothing to do.
	if n, err := r.SweepDeleteMarkers(ctx); err != nil || n != 0 {
		t.Fatalf("sweep again: %d, %v; want none", n, err)
	}
}

// recorder is a kvview.Applier that keeps a bucket's live keys.
type recorder struct {
	mu      sync.Mutex
	live    map[string]uint64
	deletes int
}

func (a *recorder) Put(key string, _ []byte, rev uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.live[key] = rev
}

func (a *recorder) Delete(key string, _ uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.live, key)
	a.deletes++
}

func (a *recorder) rev(key string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.live[key]
}

func (a *recorder) deleted() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deletes
}

func (a *recorder) has(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.live[key]
	return ok
}

// TestPurgedKeyCreatedAgain: a key whose marker was purged is new
// everywhere: a token bound again is claimed (and its index entry found
// by a retirement), a channel subscribed again is a new subscription in
// the registry, the per-device index and every view (one watching since
// before the deletion, one started after the purge), and a
// compare-and-swap at the purged marker's revision loses its race as a
// create over a marker that vanished does, which the registry's writers
// retry.
func TestPurgedKeyCreatedAgain(t *testing.T) {
	ctx := context.Background()
	f := newMarkerFixture(t)
	r := f.r
	before := &recorder{live: map[string]uint64{}}
	wBefore, err := kvview.Start(ctx, f.js, streams.SubscriptionsBucket, before, kvview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wBefore.Close()
	devView, err := kvview.OpenMap(ctx, f.js, streams.DevicesBucket, Decode, kvview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer devView.Close()

	ch := f.chans[0]
	sk := schema.SubscriptionKey(ch, f.dev)
	tk := schema.TokenKey("fcm", f.tokens[0])
	subsKV, err := f.b.JS.KeyValue(ctx, streams.SubscriptionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := subsKV.History(ctx, sk)
	if err != nil || len(hist) != 1 || hist[0].Operation() != jetstream.KeyValueDelete {
		t.Fatalf("the left subscription's history: %v, %v; want its delete marker", hist, err)
	}
	markerRev := hist[0].Revision()
	if before.has(sk) {
		t.Fatal("the view holds the deleted subscription")
	}

	r.markersKept = -1 // every marker old
	sweepUntil(t, r, 3*rotations)
	if _, err := subsKV.History(ctx, sk); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the purged key's history: %v; want none", err)
	}
	// A create that read the marker before the purge loses its race.
	if _, err := subsKV.Update(ctx, sk, []byte("{}"), markerRev); !cas.Lost(err) {
		t.Fatalf("an update at the purged marker's revision: %v; want a lost race", err)
	}
	after := &recorder{live: map[string]uint64{}}
	wAfter, err := kvview.Start(ctx, f.js, streams.SubscriptionsBucket, after, kvview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wAfter.Close()
	if n := after.deleted(); n != 0 || after.has(sk) {
		t.Fatalf("a view started after the purge: %d deletions, has the key %v; want neither", n, after.has(sk))
	}

	now := time.Now()
	created, err := r.Subscribe(ctx, f.dev, ch, now)
	if err != nil || !created {
		t.Fatalf("subscribe again: %v, %v; want a new subscription", created, err)
	}
	sub, ok, err := r.Subscription(ctx, f.dev, ch)
	if err != nil || !ok || sub.Removed() || sub.Before != nil {
		t.Fatalf("the subscription made again: %+v, %v, %v; want a new one", sub, ok, err)
	}
	if chans, err := r.Channels(ctx, f.dev); err != nil || !slices.Contains(chans, ch) {
		t.Fatalf("channels: %v, %v; want %s", chans, err, ch)
	}
	for _, w := range []*kvview.Watch{wBefore, wAfter} {
		if err := w.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !before.has(sk) || !after.has(sk) {
		t.Fatalf("the views hold the new subscription: %v (watching before), %v (started after); want both", before.has(sk), after.has(sk))
	}
	if rev := before.rev(sk); rev <= markerRev {
		t.Fatalf("the new subscription's revision %d is not past the purged marker's %d", rev, markerRev)
	}
	if ok, err := r.Unsubscribe(ctx, f.dev, ch); err != nil || !ok {
		t.Fatalf("unsubscribe again: %v, %v", ok, err)
	}
	if chans, err := r.Channels(ctx, f.dev); err != nil || slices.Contains(chans, ch) {
		t.Fatalf("channels after leaving again: %v, %v", chans, err)
	}

	// The first token, its index entry purged, is claimed again.
	d, err := r.BindRoute(ctx, f.dev, "fcm", f.tokens[0], "", now)
	if err != nil || d.ProviderToken != f.tokens[0] {
		t.Fatalf("bind the first token again: %+v, %v", d, err)
	}
	if lost, err := r.claimedByAnother(ctx, tk, "nobody"); err != nil || !lost {
		t.Fatalf("the token's index entry: %v, %v; want it naming the device", lost, err)
	}
	if ok, err := r.RetireTokenOf(ctx, "fcm", f.tokens[0], f.dev, now); err != nil || !ok {
		t.Fatalf("retire the token bound again: %v, %v; want its route retired", ok, err)
	}
	if err := devView.Watch().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := devView.Get(f.dev); !ok || v.HasRoute() {
		t.Fatalf("the devices view after the retirement: %+v, %v", v, ok)
	}
}

// TestSweepKeepsKeysWrittenMeanwhile: a key written again between the
// sweep's listing of its marker and the purge (a channel subscribed again,
// a token bound again) keeps its new value: the purge stops at the
// marker's revision. jetstream's PurgeDeletes purges the key's whole
// subject, and took the new subscription's index key and the new token's
// index entry with it.
func TestSweepKeepsKeysWrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newMarkerFixture(t)
	r := f.r
	ch, tok := f.chans[1], f.tokens[1]
	ik, tk := schema.DeviceChannelKey(f.dev, ch), schema.TokenKey("fcm", tok)
	var hookErr error
	r.beforeMarkerPurge = func(bucket, key string) {
		switch {
		case bucket == streams.DeviceChannelsBucket && key == ik:
			_, hookErr = r.Subscribe(ctx, f.dev, ch, time.Now())
		case bucket == streams.ProviderTokensBucket && key == tk:
			_, hookErr = r.BindRoute(ctx, f.dev, "fcm", tok, "", time.Now())
		}
	}
	r.markersKept = -1
	// The listing had the two keys' markers: all purged but for them (the
	// subscription's own key was written before its bucket's listing,
	// and the token rebind released the last token: a marker listed at
	// the next sweep).
	if n, err := r.SweepDeleteMarkers(ctx); err != nil || n != 3*rotations-1 {
		t.Fatalf("sweep: %d, %v; want %d", n, err, 3*rotations-1)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if chans, err := r.Channels(ctx, f.dev); err != nil || !slices.Contains(chans, ch) {
		t.Fatalf("channels after the sweep: %v, %v; want the one subscribed again, %s", chans, err, ch)
	}
	if sub, ok, err := r.Subscription(ctx, f.dev, ch); err != nil || !ok {
		t.Fatalf("the subscription made again: %+v, %v, %v", sub, ok, err)
	}
	if lost, err := r.claimedByAnother(ctx, tk, "nobody"); err != nil || !lost {
		t.Fatalf("the token bound again: its index entry %v, %v; want it naming the device", lost, err)
	}
	if ok, err := r.RetireTokenOf(ctx, "fcm", tok, f.dev, time.Now()); err != nil || !ok {
		t.Fatalf("retire the token bound again: %v, %v; want its route retired", ok, err)
	}
}

package alerts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

func bucketOf(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), streams.AlertKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func present(t *testing.T, kv jetstream.KeyValue, bk string) bool {
	t.Helper()
	_, err := kv.Get(context.Background(), bk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// subjects is how many subjects the bucket's stream holds: a key removed
// leaves no marker behind.
func subjects(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), "KV_"+streams.AlertKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.NumSubjects
}

// within waits up to bound for cond, polling.
func within(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resolveReq() ops.EventRequest {
	at := wire.Millis(1_800_000_060_000)
	return ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
}

// TestClosedKeysGoOnceKept: an alert that fired and resolved leaves no
// key in the bucket (nor a marker) once Keep has passed since its close,
// removed by the sweep Run runs; an alert still open keeps its key. A late
// resolve after the removal changes nothing and is Absent; a re-fire
// opens a new Event, under another id than the first.
func TestClosedKeysGoOnceKept(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			stream, rs := setupClaims(t, 2, alerts.Options{Keep: 300 * time.Millisecond, SweepEvery: 50 * time.Millisecond}, path.viaKV)
			tr := rs[0].tr
			kv := bucketOf(t, rs[0].js)
			closedKey, openKey := firing("gone", "m").Key, firing("open", "m").Key
			first, aerr := tr.Open(ctx, firing("gone", "m"))
			if aerr != nil || !first.Created {
				t.Fatalf("open: %+v %v", first, aerr)
			}
			if o, aerr := tr.Open(ctx, firing("open", "m")); aerr != nil || !o.Created {
				t.Fatalf("open: %+v %v", o, aerr)
			}
			if o, aerr := tr.Close(ctx, closedKey, resolveReq()); aerr != nil || !o.Updated {
				t.Fatalf("close: %+v %v", o, aerr)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); rs[1].tr.Run(runCtx) }() // another replica sweeps
			t.Cleanup(func() { stop(); <-done })

			within(t, 10*time.Second, "the closed alert's key removed", func() bool { return !present(t, kv, closedKey.BucketKey()) })
			if !present(t, kv, openKey.BucketKey()) {
				t.Fatal("the open alert's key was removed")
			}
			// Left: the open key and the sweep's lease, no marker.
			within(t, 5*time.Second, "two subjects left", func() bool { return subjects(t, rs[0].js) == 2 })

			before := len(opsOf(t, stream))
			if o, aerr := tr.Close(ctx, closedKey, resolveReq()); aerr != nil || !o.Absent {
				t.Fatalf("late resolve after the removal: %+v %v", o, aerr)
			}
			if after := len(opsOf(t, stream)); after != before {
				t.Fatalf("the late resolve appended %d operations", after-before)
			}
			again, aerr := rs[1].tr.Open(ctx, firing("gone", "m"))
			if aerr != nil || !again.Created || again.EventID == first.EventID {
				t.Fatalf("re-fire after the removal: %+v %v (first event %s)", again, aerr, first.EventID)
			}
			// And it is a live key again: its resolve closes the new Event.
			if o, aerr := tr.Close(ctx, closedKey, resolveReq()); aerr != nil || !o.Updated || o.EventID != again.EventID {
				t.Fatalf("resolve of the re-fire: %+v %v", o, aerr)
			}
		})
	}
}

// TestOpenKeysAreNeverSwept: however old its claim, the key of an open
// Event stays; the key of a closed one stays until Keep has passed since
// the close; a claim whose create never came goes once it is older than
// Keep and the claim grace (a key an older version left, or a process
// that died between the two).
func TestOpenKeysAreNeverSwept(t *testing.T) {
	ctx := context.Background()
	clock := newGroupClock()
	clock.ms.Store(time.Now().UnixMilli())
	_, rs := setupWith(t, 1, alerts.Options{Keep: time.Hour, Now: clock.now})
	tr := rs[0].tr
	kv := bucketOf(t, rs[0].js)
	if _, aerr := tr.Open(ctx, firing("open", "m")); aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := tr.Open(ctx, firing("closed", "m")); aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := tr.Close(ctx, firing("closed", "").Key, resolveReq()); aerr != nil {
		t.Fatal(aerr)
	}
	orphan := firing("orphan", "").Key
	if _, err := tr.ClaimOnly(ctx, orphan); err != nil {
		t.Fatal(err)
	}

	clock.advance(30 * time.Minute) // within Keep of the close
	st, err := tr.Sweep(ctx)
	if err != nil || st.Keys != 0 {
		t.Fatalf("sweep within Keep: %+v %v", st, err)
	}
	clock.advance(10 * 365 * 24 * time.Hour)
	st, err = tr.Sweep(ctx)
	if err != nil || st.Keys != 2 {
		t.Fatalf("sweep ten years on: %+v %v, want the closed and the orphan key removed", st, err)
	}
	if !present(t, kv, firing("open", "").Key.BucketKey()) {
		t.Fatal("the open Event's key was removed")
	}
	if present(t, kv, firing("closed", "").Key.BucketKey()) || present(t, kv, orphan.BucketKey()) {
		t.Fatal("a due key is still there")
	}
	// The open alert is still the same Event.
	if o := eventOf(t, tr, "open"); !o.Unchanged {
		t.Fatalf("the open alert after the sweep: %+v", o)
	}
}

// TestEmptiedGroupRecordGoes: a notification that resolves the last
// members of a group removes its record (until 6 December it was
// rewritten empty at every notification, and stayed for good); the group
// firing again starts a new record.
func TestEmptiedGroupRecordGoes(t *testing.T) {
	ctx := context.Background()
	_, rs := setupWith(t, 1, alerts.Options{})
	tr := rs[0].tr
	kv := bucketOf(t, rs[0].js)
	gk := alerts.Key{ChannelID: channel, Source: "test", Value: "g1"}
	notification(t, tr, true, "a", "b")
	if !present(t, kv, alerts.GroupBucketKey(gk)) {
		t.Fatal("no record of the group")
	}
	g := alerts.Group{Key: gk, Complete: true, Gone: goneClose()}
	for _, v := range []string{"a", "b"} {
		if o, aerr := tr.Close(ctx, firing(v, "").Key, resolveReq()); aerr != nil || !o.Updated {
			t.Fatalf("resolve %s: %+v %v", v, o, aerr)
		}
		g.Members = append(g.Members, alerts.Member{Value: v, Resolved: true})
	}
	if _, aerr := tr.SettleGroup(ctx, g); aerr != nil {
		t.Fatal(aerr)
	}
	if present(t, kv, alerts.GroupBucketKey(gk)) {
		t.Fatal("the group's record is still there with no member")
	}
	notification(t, tr, true, "a")
	if !present(t, kv, alerts.GroupBucketKey(gk)) {
		t.Fatal("no record of the group firing again")
	}
}

// TestIdleGroupRecordsGo: a group's record no notification wrote for Keep
// goes with the sweep once each member's Event is closed; one naming an
// open Event stays (the group's next notification closes what it leaves
// out).
func TestIdleGroupRecordsGo(t *testing.T) {
	ctx := context.Background()
	clock := newGroupClock()
	clock.ms.Store(time.Now().UnixMilli())
	_, rs := setupWith(t, 1, alerts.Options{Keep: time.Hour, Now: clock.now})
	tr := rs[0].tr
	kv := bucketOf(t, rs[0].js)
	gk := alerts.Key{ChannelID: channel, Source: "test", Value: "g1"}
	notification(t, tr, true, "a")
	// Two groups left alone: one whose member's Event closed, one whose
	// member is still open.
	gk2 := alerts.Key{ChannelID: channel, Source: "test", Value: "g2"}
	o, aerr := tr.Open(ctx, firing("c", "m"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := tr.SettleGroup(ctx, alerts.Group{Key: gk2, Complete: true, Gone: goneClose(),
		Members: []alerts.Member{{Value: "c", EventID: o.EventID, Severity: "high"}}}); aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := tr.Close(ctx, firing("c", "").Key, resolveReq()); aerr != nil {
		t.Fatal(aerr)
	}
	clock.advance(2 * time.Hour)
	// The record's age is the broker's clock: the sweep's is ten years on.
	clock.advance(10 * 365 * 24 * time.Hour)
	st, err := tr.Sweep(ctx)
	if err != nil || st.Groups != 1 {
		t.Fatalf("sweep: %+v %v, want g2's record removed", st, err)
	}
	if present(t, kv, alerts.GroupBucketKey(gk2)) {
		t.Fatal("g2's record (its member closed) is still there")
	}
	if !present(t, kv, alerts.GroupBucketKey(gk)) {
		t.Fatal("g1's record (its member open) was removed")
	}
}

// TestOlderVersionsKeysAreSwept: what an older version left in the bucket
// (an empty group record; a key claimed under gen 1 whose Event is not in
// the log) goes with the first sweep; a key of the same version whose
// Event is open stays.
func TestOlderVersionsKeysAreSwept(t *testing.T) {
	ctx := context.Background()
	clock := newGroupClock()
	clock.ms.Store(time.Now().UnixMilli())
	_, rs := setupWith(t, 1, alerts.Options{Keep: time.Hour, SweepEvery: -1, Now: clock.now})
	tr := rs[0].tr
	kv := bucketOf(t, rs[0].js)
	gk := alerts.Key{ChannelID: channel, Source: "test", Value: "old"}
	if _, err := kv.Create(ctx, alerts.GroupBucketKey(gk), []byte(`{"members":{}}`)); err != nil {
		t.Fatal(err)
	}
	old := firing("old", "").Key
	if _, err := tr.ClaimOnly(ctx, old); err != nil { // gen 1, as before
		t.Fatal(err)
	}
	st, err := tr.Sweep(ctx)
	if err != nil || st.Groups != 1 || st.Keys != 0 {
		t.Fatalf("first sweep: %+v %v, want the empty record removed", st, err)
	}
	if present(t, kv, alerts.GroupBucketKey(gk)) {
		t.Fatal("the empty record is still there")
	}
	clock.advance(2 * time.Hour)
	st, err = tr.Sweep(ctx)
	if err != nil || st.Keys != 1 {
		t.Fatalf("sweep past Keep: %+v %v, want the gen-1 claim removed", st, err)
	}
	if present(t, kv, old.BucketKey()) {
		t.Fatal("the gen-1 claim is still there")
	}
}

// TestRefireAfterTheKeyWentOpensANewEvent: once a closed Event's key is
// gone (the sweep's removal, or an operator's purge), the alert firing
// again opens a new Event under a new id, through a tracker that has
// nothing cached. (A key opened anew numbers its Events from the time in
// ms: numbered from 1 again, its first create would be taken for a retry
// of the first Event's while the log or the projection holds it, and once
// neither does, would give the new Event that Event's id.)
func TestRefireAfterTheKeyWentOpensANewEvent(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			_, rs := setupClaims(t, 1, alerts.Options{}, path.viaKV)
			tr := rs[0].tr
			kv := bucketOf(t, rs[0].js)
			key := firing("k", "").Key
			first, aerr := tr.Open(ctx, firing("k", "m"))
			if aerr != nil || !first.Created {
				t.Fatalf("open: %+v %v", first, aerr)
			}
			if o, aerr := tr.Close(ctx, key, resolveReq()); aerr != nil || !o.Updated {
				t.Fatalf("close: %+v %v", o, aerr)
			}
			if err := kv.Purge(ctx, key.BucketKey()); err != nil {
				t.Fatal(err)
			}
			// Another replica (or this one after a restart): nothing cached.
			var app alerts.Appender = rs[0].w
			if path.viaKV {
				app = appendOnly{rs[0].w}
			}
			fresh, err := alerts.New(ctx, rs[0].js, app, alerts.Options{})
			if err != nil {
				t.Fatal(err)
			}
			again, aerr := fresh.Open(ctx, firing("k", "m"))
			if aerr != nil || !again.Created || again.EventID == first.EventID {
				t.Fatalf("re-fire: %+v %v (first %s)", again, aerr, first.EventID)
			}
		})
	}
}

// TestSweepAsTheIngestRole: the gateway's ingest connects to its broker
// as the ingest role, not as the admin the other tests use: the removal
// of a key and of an emptied group record (a purge of the bucket's
// subject) is among what that role may do. (The first version's purge was
// refused there: every emptied group answered 503.)
func TestSweepAsTheIngestRole(t *testing.T) {
	ctx := context.Background()
	b := brokertest.Start(t)
	_, js := b.ConnAs(t, broker.RoleIngest)
	w, err := oplog.New(ctx, js, oplog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	tr, err := alerts.New(ctx, js, w, alerts.Options{Keep: 200 * time.Millisecond, SweepEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	kv := bucketOf(t, js)
	gk := alerts.Key{ChannelID: channel, Source: "test", Value: "g1"}
	notification(t, tr, true, "a")
	if o, aerr := tr.Close(ctx, firing("a", "").Key, resolveReq()); aerr != nil || !o.Updated {
		t.Fatalf("resolve: %+v %v", o, aerr)
	}
	if _, aerr := tr.SettleGroup(ctx, alerts.Group{Key: gk, Complete: true, Gone: goneClose(),
		Members: []alerts.Member{{Value: "a", Resolved: true}}}); aerr != nil {
		t.Fatalf("the notification that empties the group: %v", aerr)
	}
	if present(t, kv, alerts.GroupBucketKey(gk)) {
		t.Fatal("the emptied record is still there")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	within(t, 10*time.Second, "the closed alert's key removed", func() bool { return !present(t, kv, firing("a", "").Key.BucketKey()) })
}

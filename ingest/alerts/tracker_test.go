package alerts_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// replica is one ingest process's tracker and writer on a shared broker.
type replica struct {
	tr *alerts.Tracker
	w  *oplog.Writer
	js jetstream.JetStream
}

func setup(t *testing.T, n int) (jetstream.Stream, []replica) {
	return setupWith(t, n, alerts.Options{})
}

func setupWith(t *testing.T, n int, opts alerts.Options) (jetstream.Stream, []replica) {
	return setupClaims(t, n, opts, false)
}

// claimPaths are the two ways a key's claim reaches its bucket: through
// the writer's pipeline (an Appender that is an AsidePublisher, as the
// gateway's), or through nats.go's key-value API (one that is not).
var claimPaths = []struct {
	name  string
	viaKV bool
}{{"pipelined", false}, {"key-value API", true}}

// appendOnly hides the writer's PublishAside: the tracker claims through
// the key-value API.
type appendOnly struct{ w *oplog.Writer }

func (a appendOnly) Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	return a.w.Append(ctx, v)
}

// EventStatus lets the tracker's sweep read the writer's events.
func (a appendOnly) EventStatus(ctx context.Context, channelID, eventID string) (oplog.EventStatus, error) {
	return a.w.EventStatus(ctx, channelID, eventID)
}

func setupClaims(t testing.TB, n int, opts alerts.Options, viaKV bool) (jetstream.Stream, []replica) {
	t.Helper()
	b := brokertest.Start(t)
	ctx := context.Background()
	var out []replica
	var stream jetstream.Stream
	for range n {
		_, js := b.Conn(t)
		w, err := oplog.New(ctx, js, oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		var app alerts.Appender = w
		if viaKV {
			app = appendOnly{w}
		}
		tr, err := alerts.New(ctx, js, app, opts)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, replica{tr: tr, w: w, js: js})
		if stream == nil {
			stream, _ = js.Stream(ctx, streams.Ops)
		}
	}
	return stream, out
}

var channel = ids.NewChannelID()

func firing(value, message string) alerts.Report {
	at := wire.Millis(1_800_000_000_000)
	return alerts.Report{
		Key: alerts.Key{ChannelID: channel, Source: "test", Value: value},
		Event: ops.EventRequest{Title: ptr("disk full"), Status: ptr("firing"), Message: ptr(message),
			Severity: ptr("high"), EventTime: &at},
		ContentHash: "h:" + message,
	}
}

func ptr[T any](v T) *T { return &v }

// ops returns the operation names appended to the stream, in order.
func opsOf(t *testing.T, s jetstream.Stream) []string {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		var env ops.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(env.Op)+":"+env.EntityID)
	}
	return out
}

// TestOpenRepeatUpdateClose: a key's first report opens an Event, an
// unchanged repeat appends nothing, a changed one updates, a resolve closes,
// a second resolve is Absent, and the next report opens a new Event.
func TestOpenRepeatUpdateClose(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) { openRepeatUpdateClose(t, path.viaKV) })
	}
}

func openRepeatUpdateClose(t *testing.T, viaKV bool) {
	s, rs := setupClaims(t, 1, alerts.Options{}, viaKV)
	tr := rs[0].tr
	ctx := context.Background()

	first, aerr := tr.Open(ctx, firing("k1", "90%"))
	if aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	again, aerr := tr.Open(ctx, firing("k1", "90%"))
	if aerr != nil || !again.Unchanged || again.EventID != first.EventID {
		t.Fatalf("repeat: %+v %v", again, aerr)
	}
	changed, aerr := tr.Open(ctx, firing("k1", "95%"))
	if aerr != nil || !changed.Updated || changed.EventID != first.EventID {
		t.Fatalf("change: %+v %v", changed, aerr)
	}
	at := wire.Millis(1_800_000_060_000)
	resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
	closed, aerr := tr.Close(ctx, firing("k1", "").Key, resolve)
	if aerr != nil || !closed.Updated {
		t.Fatalf("close: %+v %v", closed, aerr)
	}
	if again, aerr := tr.Close(ctx, firing("k1", "").Key, resolve); aerr != nil || !again.Absent {
		t.Fatalf("second close: %+v %v", again, aerr)
	}
	if unknown, aerr := tr.Close(ctx, firing("nope", "").Key, resolve); aerr != nil || !unknown.Absent {
		t.Fatalf("unknown close: %+v %v", unknown, aerr)
	}
	reopened, aerr := tr.Open(ctx, firing("k1", "90%"))
	if aerr != nil || !reopened.Created || reopened.EventID == first.EventID {
		t.Fatalf("reopen: %+v %v", reopened, aerr)
	}
	want := []string{"event.create:" + first.EventID, "event.update:" + first.EventID, "event.close:" + first.EventID, "event.create:" + reopened.EventID}
	if got := opsOf(t, s); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("log %v, want %v", got, want)
	}
}

// TestReplicasRaceOnOneKey: two replicas opening the same new key at once
// make one Event; every report lands on it.
func TestReplicasRaceOnOneKey(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) { replicasRaceOnOneKey(t, path.viaKV) })
	}
}

func replicasRaceOnOneKey(t *testing.T, viaKV bool) {
	s, rs := setupClaims(t, 2, alerts.Options{}, viaKV)
	ctx := context.Background()
	var wg sync.WaitGroup
	eventIDs := make(chan string, 16)
	for i := range 16 {
		wg.Go(func() {
			out, aerr := rs[i%2].tr.Open(ctx, firing("race", "m"+string(rune('a'+i))))
			if aerr != nil {
				t.Errorf("open %d: %v", i, aerr)
				return
			}
			eventIDs <- out.EventID
		})
	}
	wg.Wait()
	close(eventIDs)
	seen := map[string]bool{}
	for id := range eventIDs {
		seen[id] = true
	}
	creates := 0
	for _, op := range opsOf(t, s) {
		if op[:len("event.create")] == "event.create" {
			creates++
		}
	}
	if len(seen) != 1 || creates != 1 {
		t.Fatalf("%d event ids, %d creates; want 1 and 1", len(seen), creates)
	}
}

// TestCrashBetweenClaimAndCreate: a key claimed in the bucket whose create
// never reached the log (the process died in between) gets its Event from
// the next report, on any replica, under the claimed id.
func TestCrashBetweenClaimAndCreate(t *testing.T) {
	s, rs := setup(t, 2)
	ctx := context.Background()
	claimed, err := rs[0].tr.ClaimOnly(ctx, firing("crash", "x").Key)
	if err != nil {
		t.Fatal(err)
	}
	out, aerr := rs[1].tr.Open(ctx, firing("crash", "y"))
	if aerr != nil || out.EventID != claimed || !out.Created {
		t.Fatalf("after the lost create: %+v %v (claimed %s)", out, aerr, claimed)
	}
	if got := opsOf(t, s); len(got) != 1 || got[0] != "event.create:"+claimed {
		t.Fatalf("log %v", got)
	}
}

// TestResolveWhileCreating: a resolve that finds a key claimed a moment ago
// but its Event not yet in the log answers "retry" (never "nothing to
// do", which would leave the Event open forever once the create lands);
// once the claim is old, a missing Event means a new one.
func TestResolveWhileCreating(t *testing.T) {
	var mu sync.Mutex
	clock := time.UnixMilli(1_800_000_000_000)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	s, rs := setupWith(t, 1, alerts.Options{Now: now, ClaimGrace: 15 * time.Second})
	tr := rs[0].tr
	ctx := context.Background()
	key := firing("slow", "").Key
	claimed, err := tr.ClaimOnly(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	at := wire.Millis(1_800_000_060_000)
	resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
	if out, aerr := tr.Close(ctx, key, resolve); aerr == nil || aerr.Code != "append_unavailable" || aerr.RetryAfter == 0 {
		t.Fatalf("resolve during the create: %+v %v", out, aerr)
	}
	// The creator's append lands; the retried resolve closes the Event.
	if out, aerr := tr.Open(ctx, firing("slow", "x")); aerr != nil || out.EventID != claimed || !out.Created {
		t.Fatalf("create: %+v %v", out, aerr)
	}
	if out, aerr := tr.Close(ctx, key, resolve); aerr != nil || !out.Updated {
		t.Fatalf("retried resolve: %+v %v", out, aerr)
	}

	// An old claim with no Event (it aged out of the log, or its create
	// never came): a resolve has nothing to do, a report opens a new Event.
	old := firing("aged", "").Key
	oldID, err := tr.ClaimOnly(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	advance(time.Minute)
	if out, aerr := tr.Close(ctx, old, resolve); aerr != nil || !out.Absent {
		t.Fatalf("resolve of an old claim: %+v %v", out, aerr)
	}
	out, aerr := tr.Open(ctx, firing("aged", "again"))
	if aerr != nil || !out.Created || out.EventID == oldID {
		t.Fatalf("report after an old claim: %+v %v (old id %s)", out, aerr, oldID)
	}
	if got := opsOf(t, s); len(got) != 3 || got[2] != "event.create:"+out.EventID {
		t.Fatalf("log %v", got)
	}
}

// TestOpenedOnAnotherReplica: a replica that has never seen a key (it
// claims before it reads) finds the Event another replica opened, and
// updates it: one create, the same event id.
func TestOpenedOnAnotherReplica(t *testing.T) {
	s, rs := setup(t, 2)
	ctx := context.Background()
	first, aerr := rs[0].tr.Open(ctx, firing("disk", "disk 91% full"))
	if aerr != nil || !first.Created {
		t.Fatalf("open on replica 1: %+v %v", first, aerr)
	}
	second, aerr := rs[1].tr.Open(ctx, firing("disk", "disk 97% full"))
	if aerr != nil {
		t.Fatalf("report on replica 2: %v", aerr)
	}
	if second.Created || !second.Updated || second.EventID != first.EventID {
		t.Fatalf("report on replica 2: %+v, want an update of %s", second, first.EventID)
	}
	if got := opsOf(t, s); len(got) != 2 || got[0][:len("event.create")] != "event.create" || got[1][:len("event.update")] != "event.update" {
		t.Fatalf("operations %v, want a create and an update", got)
	}
}

// TestRefusedReportLeavesNoClaim: a report refused by validation (here,
// an operation over ops.MaxContentBytes) writes nothing: no operation and
// no claimed key, so its resolve is a plain "nothing to do" at once, not
// "being created; retry" for the claim's grace.
func TestRefusedReportLeavesNoClaim(t *testing.T) {
	s, rs := setupWith(t, 1, alerts.Options{ClaimGrace: time.Hour})
	tr := rs[0].tr
	ctx := context.Background()
	big := firing("big", "m")
	big.Event.Attrs = jsontext.Value(`{"a":"` + strings.Repeat("x", ops.MaxContentBytes) + `"}`)
	if out, aerr := tr.Open(ctx, big); aerr == nil || aerr.Code != apierr.OperationTooLarge {
		t.Fatalf("oversized report: %+v %v", out, aerr)
	}
	at := wire.Millis(1_800_000_060_000)
	resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
	if out, aerr := tr.Close(ctx, big.Key, resolve); aerr != nil || !out.Absent {
		t.Fatalf("resolve after a refused report: %+v %v, want Absent", out, aerr)
	}
	if got := opsOf(t, s); len(got) != 0 {
		t.Fatalf("log %v", got)
	}
}

// TestKeyDeletedFromTheBucket: a key an operator deleted from the bucket
// (its entry replaced by the deletion's marker) is claimed again by the
// next report, on a replica that has not seen it: the pipelined claim
// expects no revision at all and loses to the marker, and the key-value
// API's create writes over it. The key's old Event is closed, so the
// report opens a new one.
func TestKeyDeletedFromTheBucket(t *testing.T) {
	s, rs := setup(t, 2)
	ctx := context.Background()
	key := firing("deleted", "").Key
	first, aerr := rs[0].tr.Open(ctx, firing("deleted", "x"))
	if aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	at := wire.Millis(1_800_000_060_000)
	resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
	if out, aerr := rs[0].tr.Close(ctx, key, resolve); aerr != nil || !out.Updated {
		t.Fatalf("resolve: %+v %v", out, aerr)
	}
	kv, err := rs[1].js.KeyValue(ctx, streams.AlertKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for k := range keys.Keys() {
		if err := kv.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != 1 {
		t.Fatalf("%d keys in the bucket, want the one claimed", deleted)
	}
	again, aerr := rs[1].tr.Open(ctx, firing("deleted", "y"))
	if aerr != nil || !again.Created || again.EventID == first.EventID {
		t.Fatalf("report after the deletion: %+v %v, want a new Event (the old one, %s, is closed)", again, aerr, first.EventID)
	}
	want := []string{"event.create:" + first.EventID, "event.close:" + first.EventID, "event.create:" + again.EventID}
	if got := opsOf(t, s); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("log %v, want %v", got, want)
	}
}

// TestTriggerOfAnAcknowledgedEventOnAnotherReplica: an Event acknowledged
// through one replica stays acknowledged when a report with
// WhenAcknowledged reaches another replica that holds the key's entry in
// its memory from before the acknowledge: the held report is appended as a
// background update, an identical one not at all; after the Event closes,
// the report opens a new Event.
func TestTriggerOfAnAcknowledgedEventOnAnotherReplica(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) {
			s, rs := setupClaims(t, 2, alerts.Options{}, path.viaKV)
			ctx := context.Background()
			a, b := rs[0].tr, rs[1].tr
			trigger := pdTrigger
			first, aerr := a.Open(ctx, trigger("90%"))
			if aerr != nil || !first.Created {
				t.Fatalf("open: %+v %v", first, aerr)
			}
			if o, aerr := b.Open(ctx, trigger("90%")); aerr != nil || !o.Unchanged {
				t.Fatalf("repeat on b: %+v %v", o, aerr) // b now holds the entry in memory
			}
			at := wire.Millis(1_800_000_060_000)
			ack := ops.EventRequest{Status: ptr("acknowledged"), Message: ptr("Acknowledged"), Severity: ptr("high"), EventTime: &at}
			if o, aerr := a.Acknowledge(ctx, trigger("").Key, ack, "ack"); aerr != nil || !o.Updated {
				t.Fatalf("acknowledge: %+v %v", o, aerr)
			}
			held, aerr := b.Open(ctx, trigger("95%"))
			if aerr != nil || !held.Updated || held.EventID != first.EventID {
				t.Fatalf("trigger on b: %+v %v", held, aerr)
			}
			if o, aerr := b.Open(ctx, trigger("95%")); aerr != nil || !o.Unchanged {
				t.Fatalf("the same trigger again: %+v %v", o, aerr)
			}
			if op, p := appended(t, s, held.Seq); op != ops.EventUpdate || p.Status != "acknowledged" || !p.Refresh {
				t.Fatalf("held trigger appended %s %+v, want a background update keeping the acknowledgement", op, p)
			}
			// The tool sends its acknowledge again: no alert again either.
			reack, aerr := a.Acknowledge(ctx, trigger("").Key, ack, "ack")
			if aerr != nil || !reack.Updated {
				t.Fatalf("acknowledge again: %+v %v", reack, aerr)
			}
			if op, p := appended(t, s, reack.Seq); op != ops.EventUpdate || p.Status != "acknowledged" || !p.Refresh {
				t.Fatalf("a re-sent acknowledge appended %s %+v, want a background update", op, p)
			}

			resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
			if o, aerr := a.Close(ctx, trigger("").Key, resolve); aerr != nil || !o.Updated {
				t.Fatalf("close: %+v %v", o, aerr)
			}
			next, aerr := b.Open(ctx, trigger("95%"))
			if aerr != nil || !next.Created || next.EventID == first.EventID {
				t.Fatalf("trigger after the close: %+v %v", next, aerr)
			}
			again, aerr := b.Open(ctx, trigger("99%"))
			if aerr != nil || !again.Updated || again.EventID != next.EventID {
				t.Fatalf("a trigger of the new Event: %+v %v", again, aerr)
			}
			if op, p := appended(t, s, again.Seq); op != ops.EventUpdate || p.Status != "firing" || p.Refresh {
				t.Fatalf("a trigger of the new Event appended %s %+v: it is not acknowledged", op, p)
			}
		})
	}
}

// appended decodes the event operation at seq.
func appended(t *testing.T, s jetstream.Stream, seq uint64) (ops.Name, ops.EventPayload) {
	t.Helper()
	m, err := s.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	var env ops.Envelope
	var p ops.EventPayload
	if err := json.Unmarshal(m.Data, &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return env.Op, p
}

// occurrence is firing("k", message) of the occurrence that began at
// since (ms), with the close of an earlier one.
func occurrence(since int64, message string) alerts.Report {
	r := firing("k", message)
	at := wire.Millis(since)
	r.Event.StartedAt, r.Since = &at, since
	r.Superseded = &ops.EventRequest{Title: r.Event.Title, Status: ptr("resolved"), Message: ptr(message), Severity: r.Event.Severity,
		EventTime: &at, EndedAt: &at}
	return r
}

// TestLaterOccurrenceSupersedesTheOpenEvent: a report of an occurrence
// that began after the open Event's, with no resolve between (cut by the
// sender's max_alerts, or a receiver that sends none), closes that Event
// at the new start and opens a new one, on either replica, once; until 4
// December it was an unchanged repeat of the open Event, and nobody was
// alerted of the new incident. A late resolve of the earlier occurrence
// leaves the new Event open.
func TestLaterOccurrenceSupersedesTheOpenEvent(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) {
			s, rs := setupClaims(t, 2, alerts.Options{}, path.viaKV)
			ctx := context.Background()
			const t1, t2 = 1_800_000_000_000, 1_800_003_600_000
			first, aerr := rs[0].tr.Open(ctx, occurrence(t1, "down"))
			if aerr != nil || !first.Created {
				t.Fatalf("open: %+v %v", first, aerr)
			}
			if again, aerr := rs[1].tr.Open(ctx, occurrence(t1, "down")); aerr != nil || !again.Unchanged || again.EventID != first.EventID {
				t.Fatalf("resend: %+v %v", again, aerr)
			}
			// The next occurrence reaches both replicas at once.
			outs := make([]alerts.Outcome, 2)
			errs := make([]*apierr.Error, 2)
			var wg sync.WaitGroup
			for i, r := range rs {
				wg.Go(func() { outs[i], errs[i] = r.tr.Open(ctx, occurrence(t2, "down")) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil || outs[0].EventID != outs[1].EventID || outs[0].EventID == first.EventID ||
				outs[0].Created == outs[1].Created {
				t.Fatalf("the later occurrence on two replicas: %+v %v, %+v %v", outs[0], errs[0], outs[1], errs[1])
			}
			second := outs[0].EventID
			want := []string{"event.create:" + first.EventID, "event.close:" + first.EventID, "event.create:" + second}
			if got := opsOf(t, s); !slices.Equal(got, want) {
				t.Fatalf("log %v, want %v", got, want)
			}
			if op, p := appended(t, s, 2); op != ops.EventClose || p.EndedAt == nil || int64(*p.EndedAt) != t2 || p.Status != "resolved" {
				t.Fatalf("the close: %s %+v", op, p)
			}
			// The same occurrence dated by the other server of an HA pair,
			// a few seconds later: no new Event.
			if same, aerr := rs[0].tr.Open(ctx, occurrence(t2+20_000, "down")); aerr != nil || !same.Unchanged || same.EventID != second {
				t.Fatalf("the second occurrence a little later: %+v %v", same, aerr)
			}
			resolved := func(end int64) ops.EventRequest {
				at := wire.Millis(end)
				return ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at, EndedAt: &at}
			}
			if late, aerr := rs[1].tr.Close(ctx, firing("k", "").Key, resolved(t1+600_000)); aerr != nil || !late.Absent {
				t.Fatalf("a late resolve of the first occurrence: %+v %v", late, aerr)
			}
			if closed, aerr := rs[0].tr.Close(ctx, firing("k", "").Key, resolved(t2+60_000)); aerr != nil || !closed.Updated || closed.EventID != second {
				t.Fatalf("the resolve of the second: %+v %v", closed, aerr)
			}
		})
	}
}

// TestEntryWithoutSinceIsSuperseded: an Event opened before entries kept
// their occurrence's start (its entry has none) is superseded by an
// occurrence that began after its claim, not by a resend of the one that
// began before it.
func TestEntryWithoutSinceIsSuperseded(t *testing.T) {
	const claimed = 1_800_000_000_000
	_, rs := setupWith(t, 1, alerts.Options{Now: func() time.Time { return time.UnixMilli(claimed) }})
	ctx := context.Background()
	old := occurrence(claimed-3_600_000, "down")
	old.Since, old.Superseded = 0, nil // as a report before the change
	first, aerr := rs[0].tr.Open(ctx, old)
	if aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	if again, aerr := rs[0].tr.Open(ctx, occurrence(claimed-3_600_000, "down")); aerr != nil || !again.Unchanged || again.EventID != first.EventID {
		t.Fatalf("a resend of the occurrence it was opened for: %+v %v", again, aerr)
	}
	later, aerr := rs[0].tr.Open(ctx, occurrence(claimed+300_000, "down"))
	if aerr != nil || !later.Created || later.EventID == first.EventID {
		t.Fatalf("an occurrence begun after the claim: %+v %v", later, aerr)
	}
}

// pdTrigger is a PagerDuty-style trigger of key pd1: held as a background
// update keeping the acknowledgement while its Event is acknowledged.
func pdTrigger(message string) alerts.Report {
	r := firing("pd1", message)
	held := r.Event
	held.Status, held.Message = ptr("acknowledged"), ptr("Acknowledged")
	r.WhenAcknowledged, r.WhenAcknowledgedHash = &held, "held:"+message
	return r
}

var pdAck = ops.EventRequest{Status: ptr("acknowledged"), Message: ptr("Acknowledged"), Severity: ptr("high"),
	EventTime: ptr(wire.Millis(1_800_000_060_000))}

// wantAcknowledged fails the test unless the operation at seq is an event
// update naming the Event acknowledged, a background one (held, re-sent)
// or one the devices are told of, as background says.
func wantAcknowledged(t *testing.T, s jetstream.Stream, seq uint64, background bool, what string) {
	t.Helper()
	op, p := appended(t, s, seq)
	if op != ops.EventUpdate || p.Status != "acknowledged" || p.Refresh != background {
		t.Fatalf("%s appended %s %+v; want an update naming the Event acknowledged, background %v", what, op, p, background)
	}
}

// TestTriggerDuringAnAcknowledgeEndsAcknowledged: a trigger that reaches
// another replica while an acknowledge is being written, between its two
// writes (the Event's update, then the key's entry), finds no record and
// is appended as news; the acknowledge, once recorded, is appended again
// as a background update, so the Event ends acknowledged, not firing. A
// trigger after that is held.
func TestTriggerDuringAnAcknowledgeEndsAcknowledged(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) {
			s, rs := setupClaims(t, 2, alerts.Options{}, path.viaKV)
			ctx := context.Background()
			a, b := rs[0].tr, rs[1].tr
			first, aerr := a.Open(ctx, pdTrigger("90%"))
			if aerr != nil || !first.Created {
				t.Fatalf("open: %+v %v", first, aerr)
			}
			var during alerts.Outcome
			var duringErr *apierr.Error
			a.SetBetweenAckWrites(t, func() { during, duringErr = b.Open(ctx, pdTrigger("95%")) })
			acked, aerr := a.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack")
			if aerr != nil || !acked.Updated {
				t.Fatalf("acknowledge: %+v %v", acked, aerr)
			}
			if duringErr != nil || !during.Updated || during.EventID != first.EventID || during.Seq <= acked.Seq {
				t.Fatalf("trigger during the acknowledge: %+v %v (acknowledge at %d)", during, duringErr, acked.Seq)
			}
			if op, p := appended(t, s, acked.Seq); op != ops.EventUpdate || p.Status != "acknowledged" || p.Refresh {
				t.Fatalf("the acknowledge appended %s %+v, want an update the devices are told of", op, p)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			last := info.State.LastSeq
			if op, p := appended(t, s, last); last <= during.Seq || op != ops.EventUpdate || p.Status != "acknowledged" || !p.Refresh {
				t.Fatalf("the Event ends with %s %+v at %d (the trigger at %d), want the acknowledge again as a background update", op, p, last, during.Seq)
			}
			held, aerr := b.Open(ctx, pdTrigger("99%"))
			if aerr != nil || !held.Updated {
				t.Fatalf("trigger after the acknowledge: %+v %v", held, aerr)
			}
			wantAcknowledged(t, s, held.Seq, true, "a trigger after the acknowledge")
		})
	}
}

// failingUpdates is the writer, with the failIn-th event update from now
// (1: the next) refused as the broker's timeout is.
type failingUpdates struct {
	*oplog.Writer
	failIn atomic.Int32
}

// withFailingUpdates is a tracker of r's broker whose writer is r's
// with failingUpdates.
func withFailingUpdates(t *testing.T, r replica) (*alerts.Tracker, *failingUpdates) {
	t.Helper()
	app := &failingUpdates{Writer: r.w}
	tr, err := alerts.New(context.Background(), r.js, app, alerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tr, app
}

func (f *failingUpdates) Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	if v.Op == ops.EventUpdate && f.failIn.Add(-1) == 0 {
		return oplog.Result{}, &apierr.Error{Code: apierr.AppendUnavailable, RetryAfter: 1}
	}
	return f.Writer.Append(ctx, v)
}

// TestAcknowledgeRetriedAfterItsUpdateFailed: an acknowledge whose update
// the broker did not take answers retry and records nothing, so a trigger
// in between alerts as before any acknowledge (should the tool never
// retry, its alerts are not silenced); the tool's retry appends the
// acknowledge as news, not as a re-sent one's background update. A
// re-sent acknowledge after a held trigger is background.
func TestAcknowledgeRetriedAfterItsUpdateFailed(t *testing.T) {
	s, rs := setup(t, 1)
	ctx := context.Background()
	tr, app := withFailingUpdates(t, rs[0])
	first, aerr := tr.Open(ctx, pdTrigger("90%"))
	if aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	app.failIn.Store(1)
	if o, aerr := tr.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack"); aerr == nil || aerr.Code != apierr.AppendUnavailable {
		t.Fatalf("acknowledge with its update refused: %+v %v, want append_unavailable", o, aerr)
	}
	news, aerr := tr.Open(ctx, pdTrigger("95%"))
	if aerr != nil || !news.Updated {
		t.Fatalf("trigger after the failed acknowledge: %+v %v", news, aerr)
	}
	if _, p := appended(t, s, news.Seq); p.Status != "firing" || p.Refresh {
		t.Fatalf("a trigger after the failed acknowledge appended %+v, want it news (nothing was acknowledged)", p)
	}
	retried, aerr := tr.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack")
	if aerr != nil || !retried.Updated {
		t.Fatalf("the retried acknowledge: %+v %v", retried, aerr)
	}
	wantAcknowledged(t, s, retried.Seq, false, "the retried acknowledge")
	held, aerr := tr.Open(ctx, pdTrigger("99%"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	wantAcknowledged(t, s, held.Seq, true, "a trigger after the acknowledge")
	resent, aerr := tr.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack")
	if aerr != nil || !resent.Updated {
		t.Fatalf("a re-sent acknowledge: %+v %v", resent, aerr)
	}
	wantAcknowledged(t, s, resent.Seq, true, "a re-sent acknowledge")
}

// TestTriggerReadBeforeAnAcknowledgeEndsAcknowledged: a trigger that reads
// its key on one replica before an acknowledge through another marks it,
// and is appended after the acknowledge, leaves the Event acknowledged: it
// is followed by its held form, a background update.
func TestTriggerReadBeforeAnAcknowledgeEndsAcknowledged(t *testing.T) {
	s, rs := setup(t, 2)
	ctx := context.Background()
	a, b := rs[0].tr, rs[1].tr
	first, aerr := a.Open(ctx, pdTrigger("90%"))
	if aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	var acked alerts.Outcome
	var once sync.Once
	b.SetBeforeUpdate(t, func() {
		once.Do(func() {
			if acked, aerr = a.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack"); aerr != nil || !acked.Updated {
				t.Errorf("acknowledge: %+v %v", acked, aerr)
			}
		})
	})
	out, aerr := b.Open(ctx, pdTrigger("95%"))
	if aerr != nil || !out.Updated || out.EventID != first.EventID {
		t.Fatalf("trigger: %+v %v", out, aerr)
	}
	if out.Seq <= acked.Seq {
		t.Fatalf("the trigger's outcome is at %d, before the acknowledge's %d", out.Seq, acked.Seq)
	}
	if op, p := appended(t, s, out.Seq); op != ops.EventUpdate || p.Status != "acknowledged" || !p.Refresh || p.Message != "Acknowledged" {
		t.Fatalf("the trigger ended with %s %+v, want its held form keeping the acknowledgement", op, p)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last := info.State.LastSeq; last != out.Seq {
		t.Fatalf("the log's last operation is %d, want the held trigger's %d", last, out.Seq)
	}
}

// TestHeldFormNotAppendedAnswersRetry: a trigger put right after an
// acknowledge through another replica (TestTriggerReadBeforeAnAcknowledge
// EndsAcknowledged) whose held form the broker does not take answers
// retry, not success, and its retry is held: the Event ends acknowledged.
func TestHeldFormNotAppendedAnswersRetry(t *testing.T) {
	s, rs := setup(t, 2)
	ctx := context.Background()
	a := rs[0].tr
	b, app := withFailingUpdates(t, rs[1])
	if first, aerr := a.Open(ctx, pdTrigger("90%")); aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	var once sync.Once
	b.SetBeforeUpdate(t, func() {
		once.Do(func() {
			if acked, aerr := a.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack"); aerr != nil || !acked.Updated {
				t.Errorf("acknowledge: %+v %v", acked, aerr)
			}
			app.failIn.Store(2) // the trigger's update goes through, its held form not
		})
	})
	if out, aerr := b.Open(ctx, pdTrigger("95%")); aerr == nil || aerr.Code != apierr.AppendUnavailable {
		t.Fatalf("trigger whose held form was refused: %+v %v, want append_unavailable", out, aerr)
	}
	retried, aerr := b.Open(ctx, pdTrigger("95%"))
	if aerr != nil || !retried.Updated {
		t.Fatalf("the retried trigger: %+v %v", retried, aerr)
	}
	wantAcknowledged(t, s, retried.Seq, true, "the retried trigger")
}

// TestAcknowledgeResentThroughAStaleReplica: an acknowledge re-sent
// through a replica that holds the key's entry in its memory from before
// the first acknowledge (through another replica) is a background update:
// whether it is a re-sent one is read on the leader.
func TestAcknowledgeResentThroughAStaleReplica(t *testing.T) {
	s, rs := setup(t, 2)
	ctx := context.Background()
	a, b := rs[0].tr, rs[1].tr
	if first, aerr := a.Open(ctx, pdTrigger("90%")); aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	if o, aerr := b.Open(ctx, pdTrigger("90%")); aerr != nil || !o.Unchanged {
		t.Fatalf("repeat on b: %+v %v", o, aerr) // b now holds the entry, not acknowledged
	}
	if o, aerr := a.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack"); aerr != nil || !o.Updated {
		t.Fatalf("acknowledge: %+v %v", o, aerr)
	}
	if o, aerr := a.Open(ctx, pdTrigger("95%")); aerr != nil || !o.Updated {
		t.Fatalf("held trigger: %+v %v", o, aerr)
	}
	resent, aerr := b.Acknowledge(ctx, pdTrigger("").Key, pdAck, "ack")
	if aerr != nil || !resent.Updated {
		t.Fatalf("the acknowledge re-sent through b: %+v %v", resent, aerr)
	}
	wantAcknowledged(t, s, resent.Seq, true, "the acknowledge re-sent through b")
}

// TestCloseEndedLeavesALaterOccurrenceOpen: an end (CloseEnded, a
// Dynatrace problem report whose endTime has passed) closes the key's
// open Event; sent again after the problem came back, it leaves the new
// occurrence's Event open, claimed after that end; an end dated within the
// same-occurrence slack before the claim (the sender's clock is not ours)
// still closes it.
func TestCloseEndedLeavesALaterOccurrenceOpen(t *testing.T) {
	var mu sync.Mutex
	clock := time.UnixMilli(1_800_000_000_000)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	s, rs := setupWith(t, 1, alerts.Options{Now: now})
	tr, ctx := rs[0].tr, context.Background()
	key := firing("problem", "").Key
	endedAt := func(at time.Time) ops.EventRequest {
		ms := wire.Millis(at.UnixMilli())
		return ops.EventRequest{Status: ptr("closed"), Message: ptr("down"), Severity: ptr("high"), EventTime: &ms, EndedAt: &ms}
	}

	first, aerr := tr.Open(ctx, firing("problem", "down"))
	if aerr != nil || !first.Created {
		t.Fatalf("open: %+v %v", first, aerr)
	}
	advance(5 * time.Minute)
	end := endedAt(now())
	if closed, aerr := tr.CloseEnded(ctx, key, end); aerr != nil || !closed.Updated || closed.EventID != first.EventID {
		t.Fatalf("the end: %+v %v", closed, aerr)
	}
	advance(10 * time.Minute)
	second, aerr := tr.Open(ctx, firing("problem", "down"))
	if aerr != nil || !second.Created || second.EventID == first.EventID {
		t.Fatalf("the next occurrence: %+v %v", second, aerr)
	}
	if stale, aerr := tr.CloseEnded(ctx, key, end); aerr != nil || !stale.Absent {
		t.Fatalf("the first end, sent again: %+v %v; want Absent, the later occurrence left open", stale, aerr)
	}
	if skewed, aerr := tr.CloseEnded(ctx, key, endedAt(now().Add(-30*time.Second))); aerr != nil || !skewed.Updated || skewed.EventID != second.EventID {
		t.Fatalf("an end 30 s before the claim: %+v %v; want the open Event closed", skewed, aerr)
	}
	want := []string{"event.create:" + first.EventID, "event.close:" + first.EventID, "event.create:" + second.EventID, "event.close:" + second.EventID}
	if got := opsOf(t, s); !slices.Equal(got, want) {
		t.Fatalf("log %v, want %v", got, want)
	}
}

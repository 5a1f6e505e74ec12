package alerts_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// groupClock is the trackers' clock in the group tests.
type groupClock struct{ ms atomic.Int64 }

func newGroupClock() *groupClock {
	c := &groupClock{}
	c.ms.Store(1_800_000_000_000)
	return c
}

func (c *groupClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *groupClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// notification reports values firing through tr, as a tool's notification
// of group "g1" does, then settles the group; it returns the values whose
// Events the settle closed (Absent ones left out) and their event ids.
func notification(t *testing.T, tr *alerts.Tracker, complete bool, values ...string) map[string]string {
	t.Helper()
	gone, aerr := settle(tr, complete, values...)
	if aerr != nil {
		t.Fatalf("settle %v: %v", values, aerr)
	}
	closed := map[string]string{}
	for _, g := range gone {
		if !g.Absent {
			closed[g.Value] = g.EventID
		}
	}
	return closed
}

func settle(tr *alerts.Tracker, complete bool, values ...string) ([]alerts.GoneOutcome, *apierr.Error) {
	ctx := context.Background()
	g := alerts.Group{Key: alerts.Key{ChannelID: channel, Source: "test", Value: "g1"}, Complete: complete, Gone: goneClose()}
	for _, v := range values {
		o, aerr := tr.Open(ctx, firing(v, "m"))
		if aerr != nil {
			return nil, aerr
		}
		g.Members = append(g.Members, alerts.Member{Value: v, EventID: o.EventID, Severity: "high"})
	}
	return tr.SettleGroup(ctx, g)
}

func goneClose() ops.EventRequest {
	at := wire.Millis(1_800_000_100_000)
	return ops.EventRequest{Status: ptr("resolved"), Message: ptr("left its group"), Severity: ptr("normal"), EventTime: &at, EndedAt: &at}
}

// eventOf is the id of the Event the key value names, opening nothing:
// an unchanged report of it.
func eventOf(t *testing.T, tr *alerts.Tracker, value string) alerts.Outcome {
	t.Helper()
	o, aerr := tr.Open(context.Background(), firing(value, "m"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	return o
}

func lastSeq(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestGroupClosesTheEventOfAnAlertItNoLongerNames: a group of alerts a
// and b notified, then notified with a alone: b's resolve never came (cut
// by max_alerts, not sent, or b silenced), so b's Event is closed, with
// the gone close and b's own severity, once b has gone unnamed for the
// absent grace; a notification within the grace (the other server of a
// high-availability pair, behind) closes nothing. Before group records b
// stayed open until it fired again. A truncated notification closes
// nothing; a resolved member leaves the record and is not closed again.
func TestGroupClosesTheEventOfAnAlertItNoLongerNames(t *testing.T) {
	clock := newGroupClock()
	s, rs := setupWith(t, 1, alerts.Options{Now: clock.now, AbsentAfter: time.Minute})
	tr := rs[0].tr
	if closed := notification(t, tr, true, "a", "b", "c"); len(closed) != 0 {
		t.Fatalf("first notification closed %v", closed)
	}
	b := eventOf(t, tr, "b").EventID

	clock.advance(30 * time.Second)
	if closed := notification(t, tr, true, "a", "c"); len(closed) != 0 {
		t.Fatalf("within the grace, closed %v", closed)
	}
	clock.advance(2 * time.Minute)
	if closed := notification(t, tr, false, "a"); len(closed) != 0 {
		t.Fatalf("a truncated notification closed %v", closed)
	}
	closed := notification(t, tr, true, "a", "c")
	if len(closed) != 1 || closed["b"] != b {
		t.Fatalf("closed %v, want b's event %s", closed, b)
	}
	op, p := appended(t, s, lastSeq(t, s))
	if op != ops.EventClose || p.Status != "resolved" || p.Message != "left its group" || p.Severity != "high" {
		t.Fatalf("the last operation: %s %+v", op, p)
	}
	if o := eventOf(t, tr, "a"); !o.Unchanged {
		t.Fatalf("a, still named: %+v", o)
	}

	// b fires again: a new Event, closed again once it leaves.
	clock.advance(2 * time.Minute)
	notification(t, tr, true, "a", "b", "c")
	b2 := eventOf(t, tr, "b").EventID
	if b2 == b {
		t.Fatal("b fired again into its closed Event")
	}
	// c resolved (its own close; named firing first in the same
	// notification, the last says), then left out: the record no longer
	// names it, so it is not even looked at.
	ctx := context.Background()
	c := eventOf(t, tr, "c").EventID
	if _, aerr := tr.Close(ctx, firing("c", "m").Key, goneClose()); aerr != nil {
		t.Fatal(aerr)
	}
	a := eventOf(t, tr, "a").EventID
	g := alerts.Group{Key: alerts.Key{ChannelID: channel, Source: "test", Value: "g1"}, Complete: true, Gone: goneClose(),
		Members: []alerts.Member{{Value: "a", EventID: a, Severity: "high"}, {Value: "c", EventID: c, Severity: "high"},
			{Value: "b", EventID: b2, Severity: "high"}, {Value: "c", Resolved: true}}}
	if gone, aerr := tr.SettleGroup(ctx, g); aerr != nil || len(gone) != 0 {
		t.Fatalf("the resolve's notification: %v %v", gone, aerr)
	}
	clock.advance(2 * time.Minute)
	before := lastSeq(t, s)
	gone, aerr := settle(tr, true, "a")
	if aerr != nil || len(gone) != 1 || gone[0].Value != "b" || gone[0].EventID != b2 || gone[0].Absent {
		t.Fatalf("left out b and c: %+v %v, want only b's second event %s closed", gone, aerr, b2)
	}
	if n := lastSeq(t, s) - before; n != 1 {
		t.Fatalf("%d operations appended, want b's close alone", n)
	}
}

// TestGroupDecidesOnTheLeadersRecord: replica 1 holds in memory a record
// in which b was named long ago; since, replica 0 named b again (its same
// Event, still firing). A complete notification without b through
// replica 1 (the other server of a high-availability pair, a moment
// behind) must not close b's Event: what is gone is decided on the
// leader's record, where b was named a moment ago, not on memory.
func TestGroupDecidesOnTheLeadersRecord(t *testing.T) {
	clock := newGroupClock()
	_, rs := setupWith(t, 2, alerts.Options{Now: clock.now})
	notification(t, rs[0].tr, true, "a", "b")
	notification(t, rs[1].tr, true, "a", "b")
	b := eventOf(t, rs[0].tr, "b").EventID
	clock.advance(2 * time.Minute)
	notification(t, rs[0].tr, true, "a", "b")
	if gone, aerr := settle(rs[1].tr, true, "a"); aerr != nil || len(gone) != 0 {
		t.Fatalf("replica 1 without b: %+v %v", gone, aerr)
	}
	if o := eventOf(t, rs[0].tr, "b"); !o.Unchanged || o.EventID != b {
		t.Fatalf("b's event: %+v, want %s open", o, b)
	}
}

// TestGroupTakesAnAlertsLastWord: a notification that names x resolved,
// then firing (its Event open again), records x as firing, as the
// payload's reports left it; the next complete notification without x
// closes its Event.
func TestGroupTakesAnAlertsLastWord(t *testing.T) {
	clock := newGroupClock()
	_, rs := setupWith(t, 1, alerts.Options{Now: clock.now})
	tr, ctx := rs[0].tr, context.Background()
	x, aerr := tr.Open(ctx, firing("x", "m"))
	if aerr != nil {
		t.Fatal(aerr)
	}
	g := alerts.Group{Key: alerts.Key{ChannelID: channel, Source: "test", Value: "g1"}, Complete: true, Gone: goneClose(),
		Members: []alerts.Member{{Value: "x", Resolved: true}, {Value: "x", EventID: x.EventID, Severity: "high"}}}
	if gone, aerr := tr.SettleGroup(ctx, g); aerr != nil || len(gone) != 0 {
		t.Fatalf("x resolved then firing: %+v %v", gone, aerr)
	}
	clock.advance(2 * time.Minute)
	if closed := notification(t, tr, true, "a"); len(closed) != 1 || closed["x"] != x.EventID {
		t.Fatalf("without x: closed %v, want x's event %s", closed, x.EventID)
	}
}

// TestGroupClosesOnlyTheEventItNamed: the record names b's Event of long
// ago; b's key has since moved on to a new Event (its resolve and a new
// firing through another group's notifications, or another request
// between its report and its group's record). A complete notification
// without b closes the Event the record named, which is closed already,
// and leaves the new one open.
func TestGroupClosesOnlyTheEventItNamed(t *testing.T) {
	clock := newGroupClock()
	_, rs := setupWith(t, 1, alerts.Options{Now: clock.now})
	tr, ctx := rs[0].tr, context.Background()
	notification(t, tr, true, "a", "b")
	clock.advance(2 * time.Minute)
	if _, aerr := tr.Close(ctx, firing("b", "m").Key, goneClose()); aerr != nil {
		t.Fatal(aerr)
	}
	b2, aerr := tr.Open(ctx, firing("b", "m"))
	if aerr != nil || !b2.Created {
		t.Fatalf("b fires again: %+v %v", b2, aerr)
	}
	if gone, aerr := settle(tr, true, "a"); aerr != nil || len(gone) != 1 || !gone[0].Absent {
		t.Fatalf("without b: %+v %v, want b absent", gone, aerr)
	}
	if o := eventOf(t, tr, "b"); !o.Unchanged || o.EventID != b2.EventID {
		t.Fatalf("b's new event: %+v, want %s open", o, b2.EventID)
	}
}

// failingCloses fails the next failIn-th close.
type failingCloses struct {
	*oplog.Writer
	failIn atomic.Int32
}

func (f *failingCloses) Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error) {
	if v.Op == ops.EventClose && f.failIn.Add(-1) == 0 {
		return oplog.Result{}, &apierr.Error{Code: apierr.AppendUnavailable, RetryAfter: 1}
	}
	return f.Writer.Append(ctx, v)
}

// TestGroupCloseFailedIsClosedByTheRetry: a gone member whose close the
// broker did not take answers retry and stays in the record, so the
// tool's retry of the notification closes it.
func TestGroupCloseFailedIsClosedByTheRetry(t *testing.T) {
	clock := newGroupClock()
	_, rs := setupWith(t, 1, alerts.Options{})
	app := &failingCloses{Writer: rs[0].w}
	tr, err := alerts.New(context.Background(), rs[0].js, app, alerts.Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	notification(t, tr, true, "a", "b")
	clock.advance(2 * time.Minute)
	app.failIn.Store(1)
	if _, aerr := settle(tr, true, "a"); aerr == nil || aerr.Code != apierr.AppendUnavailable {
		t.Fatalf("settle with its close refused: %v", aerr)
	}
	if closed := notification(t, tr, true, "a"); len(closed) != 1 || closed["b"] == "" {
		t.Fatalf("the retry closed %v, want b", closed)
	}
}

// TestGroupRecordRaceThroughTwoReplicas: replica 1 settles a group from a
// record it read before replica 0 added c to it. Its write loses the
// compare-and-swap, it reads the record again on the leader, and keeps c
// (named within the grace); the next complete notification without c,
// past the grace, closes it. A write over the record without the check
// would drop c from it, and its Event would stay open for good.
func TestGroupRecordRaceThroughTwoReplicas(t *testing.T) {
	for _, path := range claimPaths {
		t.Run(path.name, func(t *testing.T) {
			clock := newGroupClock()
			_, rs := setupClaims(t, 2, alerts.Options{Now: clock.now}, path.viaKV)
			notification(t, rs[0].tr, true, "a", "b")
			notification(t, rs[1].tr, true, "a", "b") // reads the record: now in its memory
			clock.advance(2 * time.Minute)
			notification(t, rs[0].tr, true, "a", "b", "c")
			if closed := notification(t, rs[1].tr, true, "a", "b"); len(closed) != 0 {
				t.Fatalf("closed %v though c was named a moment ago", closed)
			}
			c := eventOf(t, rs[0].tr, "c").EventID
			clock.advance(2 * time.Minute)
			closed := notification(t, rs[1].tr, true, "a", "b")
			if want := map[string]string{"c": c}; len(closed) != 1 || closed["c"] != c {
				t.Fatalf("closed %v, want %v", closed, want)
			}
			if o := eventOf(t, rs[0].tr, "c"); !o.Created || o.EventID == c {
				t.Fatalf("c reported again after its close: %+v", o)
			}
			for _, v := range []string{"a", "b"} {
				if o := eventOf(t, rs[1].tr, v); !o.Unchanged {
					t.Fatalf("%s, named all along: %+v", v, o)
				}
			}
		})
	}
}

// TestGroupRecordsInMemoryAreBounded: the group records a tracker keeps in
// memory stay within CachedGroupMembers; an evicted group's record is
// read from the bucket again, and still closes what left it.
func TestGroupRecordsInMemoryAreBounded(t *testing.T) {
	clock := newGroupClock()
	_, rs := setupWith(t, 1, alerts.Options{Now: clock.now, CachedGroupMembers: 5})
	tr, ctx := rs[0].tr, context.Background()
	group := func(name string, values ...string) alerts.Group {
		g := alerts.Group{Key: alerts.Key{ChannelID: channel, Source: "test", Value: name}, Complete: true, Gone: goneClose()}
		for _, v := range values {
			g.Members = append(g.Members, alerts.Member{Value: v, Severity: "high"})
		}
		return g
	}
	// openAndSettle opens an Event for each member of g, then settles g.
	openAndSettle := func(g alerts.Group) {
		t.Helper()
		for i, m := range g.Members {
			o, aerr := tr.Open(ctx, firing(m.Value, "m"))
			if aerr != nil {
				t.Fatal(aerr)
			}
			g.Members[i].EventID = o.EventID
		}
		if _, aerr := tr.SettleGroup(ctx, g); aerr != nil {
			t.Fatal(aerr)
		}
	}
	for _, g := range []alerts.Group{group("g1", "a", "b", "c"), group("g2", "d", "e", "f"), group("g3", "x")} {
		openAndSettle(g)
		if n, w := tr.GroupsInMemory(); w > 5 || n == 0 {
			t.Fatalf("after %s: %d records of weight %d in memory, want at most 5", g.Key.Value, n, w)
		}
	}
	// A member counts by its name's length too (a fingerprint may be
	// 1 KiB): g4's three long names weigh 3 × (1 + 7), kept alone.
	long := func(c string) string { return strings.Repeat(c, 1000) }
	openAndSettle(group("g4", long("p"), long("q"), long("r")))
	if n, w := tr.GroupsInMemory(); n != 1 || w != 24 {
		t.Fatalf("after g4: %d records of weight %d in memory, want g4 alone, weight 24", n, w)
	}
	clock.advance(2 * time.Minute)
	g1 := group("g1", "a", "b")
	for i, m := range g1.Members {
		g1.Members[i].EventID = eventOf(t, tr, m.Value).EventID
	}
	gone, aerr := tr.SettleGroup(ctx, g1)
	if aerr != nil || len(gone) != 1 || gone[0].Value != "c" || gone[0].Absent {
		t.Fatalf("g1 without c: %+v %v", gone, aerr)
	}
}

package alerts_test

import (
	"context"
	"sync"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/broker"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// replica is one ingest process's tracker and writer on a shared broker.
type replica struct {
	tr *alerts.Tracker
	w  *oplog.Writer
}

func setup(t *testing.T, n int) (jetstream.Stream, []replica) {
	t.Helper()
	b, err := broker.Start(broker.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	ctx := context.Background()
	var out []replica
	var stream jetstream.Stream
	for range n {
		nc, err := b.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		if err := streams.Ensure(ctx, js, streams.DefaultOptions()); err != nil {
			t.Fatal(err)
		}
		w, err := oplog.New(ctx, js, oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := alerts.New(ctx, js, w, alerts.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, replica{tr: tr, w: w})
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
	s, rs := setup(t, 1)
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
	s, rs := setup(t, 2)
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

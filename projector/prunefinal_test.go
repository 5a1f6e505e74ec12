package projector_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestPrunedProjectionEqualsARebuildOfTheTrimmedLog: events closed and
// Things deleted whose operations all left the log are pruned from the
// projection, which then equals, byte for byte, a rebuild of the trimmed
// log (the equality a rebuild keeps with a live projection extends to the
// prune; entities still live when their operations left the log are kept
// by a rebuild only when it has the projection it replaces to carry them
// from: TestACarriedOverRebuildEqualsTheLiveProjection; the rebuild here is
// a new replica, and no such entity is in the log).
// The retry of a pruned event's and Thing's create, appended again, is
// folded as a new entity by the replica that pruned them, by one that
// never prunes and by the rebuild alike.
func TestPrunedProjectionEqualsARebuildOfTheTrimmedLog(t *testing.T) {
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = 3*time.Second, time.Second
	br := brokertest.Start(t, brokertest.Streams(o))
	nc, js := br.NC, br.JS
	pruning := start(t, nc, projector.Config{InMemory: true, PruneInterval: 20 * time.Millisecond})
	unpruned := start(t, nc, projector.Config{InMemory: true, PruneInterval: time.Hour})
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	op, at := opLog(t, js, ch)
	for i := range 5 {
		ev, th := fmt.Sprintf("old-ev%d", i), fmt.Sprintf("old-th%d", i)
		op(ops.ThingCreate, th, ops.ThingPayload{ThingID: th, Title: "old", ObservedAt: *at, Attrs: []byte(`{"type":"HOST"}`)})
		op(ops.EventCreate, ev, ops.EventPayload{EventID: ev, Title: "old", Status: "firing", Message: "m", Severity: "high", EventTime: *at, ThingID: th})
		op(ops.EventUpdate, ev, ops.EventPayload{EventID: ev, Status: "firing", Message: "m2", Severity: "high", EventTime: *at, Attrs: []byte(`{"n":1}`)})
		op(ops.EventClose, ev, ops.EventPayload{EventID: ev, Status: "resolved", Message: "ok", Severity: "high", EventTime: *at})
		op(ops.ThingDelete, th, ops.ThingPayload{ThingID: th, ObservedAt: *at})
	}
	last := op(ops.MessageCreate, "old-msg", ops.MessagePayload{MessageID: "old-msg", Title: "bye", Severity: "low", OccurredAt: *at})
	waitApplied(t, pruning, last)
	waitApplied(t, unpruned, last)

	// The retention takes every operation so far out of the log.
	waitLogStartsAfter(t, js, last)
	for i := range 5 {
		for _, x := range []struct {
			kind ops.Kind
			id   string
		}{{ops.KindEvent, fmt.Sprintf("old-ev%d", i)}, {ops.KindThing, fmt.Sprintf("old-th%d", i)}} {
			waitGone(t, pruning, x.kind, ch, x.id)
		}
	}
	// The unpruned replica still holds them: the retries below fold over them.
	if snap, err := unpruned.Store().Snapshot(ops.KindEvent, ch, "old-ev0"); err != nil || snap == nil {
		t.Fatalf("the replica that does not prune lost the closed event: %s %v", snap, err)
	}

	// The log goes on, with the retried creates of a pruned event and Thing.
	op(ops.ThingCreate, "old-th0", ops.ThingPayload{ThingID: "old-th0", Title: "again", ObservedAt: *at})
	op(ops.EventCreate, "old-ev0", ops.EventPayload{EventID: "old-ev0", Title: "again", Status: "firing", Message: "m", Severity: "low", EventTime: *at})
	last = workload(t, js, rand.New(rand.NewPCG(11, 12)), 200) // folded well within the retention
	rebuilt := start(t, nc, projector.Config{InMemory: true, PruneInterval: time.Hour})
	for _, p := range []*projector.Projector{pruning, unpruned, rebuilt} {
		waitApplied(t, p, last)
	}
	want := dump(t, rebuilt.Store())
	if got := dump(t, pruning.Store()); !bytes.Equal(got, want) {
		t.Fatalf("the pruned projection differs from a rebuild of the trimmed log at %s", dumpDifference(got, want))
	}
	for _, x := range []struct {
		kind ops.Kind
		id   string
	}{{ops.KindEvent, "old-ev0"}, {ops.KindThing, "old-th0"}} {
		a, err := unpruned.Store().Snapshot(x.kind, ch, x.id)
		if err != nil {
			t.Fatal(err)
		}
		b, err := rebuilt.Store().Snapshot(x.kind, ch, x.id)
		if err != nil {
			t.Fatal(err)
		}
		if b == nil || !bytes.Equal(a, b) {
			t.Errorf("%s started anew, on the replica that had not pruned it:\n%s\nrebuilt:\n%s", x.id, a, b)
		}
	}
}

// waitGone waits until p's projection has no snapshot of the entity.
func waitGone(t *testing.T, p *projector.Projector, kind ops.Kind, ch, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		snap, err := p.Store().Snapshot(kind, ch, id)
		if err != nil {
			t.Fatal(err)
		}
		if snap == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s was not pruned: %s", kind, id, snap)
		}
	}
}

// dumpDifference says where two dumps part.
func dumpDifference(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return fmt.Sprintf("line %d:\n  %.300s\nvs\n  %.300s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(la), len(lb))
}

// TestACarriedOverRebuildEqualsTheLiveProjection: a projection rebuilt
// from a log that has lost operations to its retention, with the
// projection it replaces to carry from (PUSHGO_REBUILD), holds the same
// bytes as the live projection that was never rebuilt: the live entities
// whose operations have all aged out (an active, an archived and a typed
// Thing with relationships, ONGOING events linked to them, one with a
// deadline) are carried over with every index key, the closed events and
// deleted Things are pruned from both. A new replica (no projection to
// carry from) lacks those live entities, as any fold of the trimmed log.
// Before, the rebuild lacked them too.
func TestACarriedOverRebuildEqualsTheLiveProjection(t *testing.T) {
	o := streams.DefaultOptions()
	o.Retention, o.DedupWindow = 3*time.Second, time.Second
	br := brokertest.Start(t, brokertest.Streams(o))
	nc, js := br.NC, br.JS
	dir := t.TempDir()
	live := start(t, nc, projector.Config{Dir: dir, PruneInterval: 20 * time.Millisecond})
	const ch = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	op, at := opLog(t, js, ch)
	type entity struct {
		kind ops.Kind
		id   string
	}
	var aged, final []entity
	for i := range 3 {
		th, ev, gone, closed := fmt.Sprintf("old-th%d", i), fmt.Sprintf("old-ev%d", i), fmt.Sprintf("gone-th%d", i), fmt.Sprintf("closed-ev%d", i)
		op(ops.ThingCreate, th, ops.ThingPayload{ThingID: th, Title: fmt.Sprintf("host %d", i), ObservedAt: *at,
			Attrs: []byte(fmt.Sprintf(`{"type":"HOST","relationships":{"runsOn":"old-th%d"},"n":%d}`, (i+1)%3, i))})
		op(ops.ThingUpdate, th, ops.ThingPayload{ThingID: th, ObservedAt: *at, Attrs: []byte(`{"load":0.5}`)})
		if i == 1 {
			op(ops.ThingArchive, th, ops.ThingPayload{ThingID: th, ObservedAt: *at})
		}
		payload := ops.EventPayload{EventID: ev, Title: "disk", Status: "firing", Message: "m", Severity: "high", EventTime: *at, ThingID: th}
		if i == 2 {
			deadline := *at + 3_600_000
			payload.Deadline = &deadline
		}
		op(ops.EventCreate, ev, payload)
		op(ops.EventUpdate, ev, ops.EventPayload{EventID: ev, Status: "firing", Message: "m2", Severity: "high", EventTime: *at, Attrs: []byte(`{"n":1}`)})
		op(ops.ThingCreate, gone, ops.ThingPayload{ThingID: gone, Title: "old", ObservedAt: *at, Attrs: []byte(`{"type":"HOST"}`)})
		op(ops.EventCreate, closed, ops.EventPayload{EventID: closed, Title: "old", Status: "firing", Message: "m", Severity: "high", EventTime: *at, ThingID: gone})
		op(ops.EventClose, closed, ops.EventPayload{EventID: closed, Status: "resolved", Message: "ok", Severity: "high", EventTime: *at})
		op(ops.ThingDelete, gone, ops.ThingPayload{ThingID: gone, ObservedAt: *at})
		aged = append(aged, entity{ops.KindThing, th}, entity{ops.KindEvent, ev})
		final = append(final, entity{ops.KindThing, gone}, entity{ops.KindEvent, closed})
	}
	last := op(ops.MessageCreate, "old-msg", ops.MessagePayload{MessageID: "old-msg", Title: "bye", Severity: "low", OccurredAt: *at})
	waitApplied(t, live, last)
	waitLogStartsAfter(t, js, last)
	for _, x := range final {
		waitGone(t, live, x.kind, ch, x.id)
	}
	last = workload(t, js, rand.New(rand.NewPCG(13, 14)), 200) // folded well within the retention
	waitApplied(t, live, last)

	// The projection, copied while its projector is stopped, is rebuilt
	// (PUSHGO_REBUILD) while the original goes on.
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "projection")
	if err := os.CopyFS(copied, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	live = start(t, nc, projector.Config{Dir: dir, PruneInterval: 20 * time.Millisecond})
	rebuilt := start(t, nc, projector.Config{Dir: copied, Rebuild: true, PruneInterval: time.Hour})
	replica := start(t, nc, projector.Config{InMemory: true, PruneInterval: time.Hour})
	for _, p := range []*projector.Projector{live, rebuilt, replica} {
		waitApplied(t, p, last)
	}
	want := dump(t, live.Store())
	if got := dump(t, rebuilt.Store()); !bytes.Equal(got, want) {
		t.Fatalf("the rebuild that carried the old projection over differs from the live projection at %s", dumpDifference(got, want))
	}
	for _, x := range aged {
		if snap, err := rebuilt.Store().Snapshot(x.kind, ch, x.id); err != nil || snap == nil {
			t.Fatalf("the rebuild lost %s %s: %v", x.kind, x.id, err)
		}
		if snap, err := replica.Store().Snapshot(x.kind, ch, x.id); err != nil || snap != nil {
			t.Fatalf("a new replica holds %s %s, whose operations all left the log: %s %v", x.kind, x.id, snap, err)
		}
	}
	if _, err := os.Stat(copied + ".aside"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the projection set aside is still there after the rebuild: %v", err)
	}
}

// opLog returns op, which appends an operation of channel ch to the log,
// each accepted (at, in ms) a second after the one before.
func opLog(t *testing.T, js jetstream.JetStream, ch string) (op func(name ops.Name, id string, payload any) uint64, at *int64) {
	at = new(int64)
	*at = 1713750000000
	return func(name ops.Name, id string, payload any) uint64 {
		t.Helper()
		*at += 1000
		env := ops.Envelope{V: 1, Op: name, ChannelID: ch, EntityID: id, OpID: fmt.Sprintf("op-%d", *at), AcceptedAt: *at}
		return publish(t, js, streams.OpSubject(ch, name.Kind(), id), envelope(t, env, payload))
	}, at
}

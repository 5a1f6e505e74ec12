package projector_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestPrunedProjectionEqualsARebuildOfTheTrimmedLog: events closed and
// Things deleted whose operations all left the log are pruned from the
// projection, which then equals, byte for byte, a rebuild of the trimmed
// log (the equality a rebuild keeps with a live projection extends to the
// prune; entities still live when their operations left the log are the
// exception by design: a live projection keeps them, a rebuild cannot).
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
	at := int64(1713750000000)
	op := func(name ops.Name, id string, payload any) uint64 {
		t.Helper()
		at += 1000
		env := ops.Envelope{V: 1, Op: name, ChannelID: ch, EntityID: id, OpID: fmt.Sprintf("op-%d", at), AcceptedAt: at}
		return publish(t, js, streams.OpSubject(ch, name.Kind(), id), envelope(t, env, payload))
	}
	for i := range 5 {
		ev, th := fmt.Sprintf("old-ev%d", i), fmt.Sprintf("old-th%d", i)
		op(ops.ThingCreate, th, ops.ThingPayload{ThingID: th, Title: "old", ObservedAt: at, Attrs: []byte(`{"type":"HOST"}`)})
		op(ops.EventCreate, ev, ops.EventPayload{EventID: ev, Title: "old", Status: "firing", Message: "m", Severity: "high", EventTime: at, ThingID: th})
		op(ops.EventUpdate, ev, ops.EventPayload{EventID: ev, Status: "firing", Message: "m2", Severity: "high", EventTime: at, Attrs: []byte(`{"n":1}`)})
		op(ops.EventClose, ev, ops.EventPayload{EventID: ev, Status: "resolved", Message: "ok", Severity: "high", EventTime: at})
		op(ops.ThingDelete, th, ops.ThingPayload{ThingID: th, ObservedAt: at})
	}
	last := op(ops.MessageCreate, "old-msg", ops.MessagePayload{MessageID: "old-msg", Title: "bye", Severity: "low", OccurredAt: at})
	waitApplied(t, pruning, last)
	waitApplied(t, unpruned, last)

	// The retention takes every operation so far out of the log.
	s, err := js.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.FirstSeq > last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log still starts at %d, want after %d", info.State.FirstSeq, last)
		}
	}
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
	op(ops.ThingCreate, "old-th0", ops.ThingPayload{ThingID: "old-th0", Title: "again", ObservedAt: at})
	op(ops.EventCreate, "old-ev0", ops.EventPayload{EventID: "old-ev0", Title: "again", Status: "firing", Message: "m", Severity: "low", EventTime: at})
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

package projector_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

func setup(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	b := brokertest.Start(t)
	return b.NC, b.JS
}

func start(t *testing.T, nc *nats.Conn, cfg projector.Config) *projector.Projector {
	t.Helper()
	p, err := projector.Start(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// workload appends n random but lifecycle-respecting operations over a few
// channels, the way ingest would, and returns the last sequence.
func workload(t *testing.T, js jetstream.JetStream, rng *rand.Rand, n int) uint64 {
	t.Helper()
	channels := []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "7VNDECTMTAYVFHY2G194E2AY8Z"}
	type ent struct {
		kind   ops.Kind
		ch, id string
		ended  bool
	}
	var ents []*ent
	var last uint64
	for i := 0; i < n; i++ {
		ch := channels[rng.IntN(len(channels))]
		var env ops.Envelope
		var payload any
		r := rng.IntN(10)
		now := int64(1713750000000 + i*1000)
		attrs := []byte(fmt.Sprintf(`{"v":%d,"n":{"a":%d,"b":null},"gone":null,"s":"x%d"}`, i, rng.IntN(5), i%3))
		switch {
		case r < 2 || len(ents) == 0: // create
			if rng.IntN(2) == 0 {
				e := &ent{kind: ops.KindEvent, ch: ch, id: fmt.Sprintf("ev%04d", i)}
				ents = append(ents, e)
				st := now
				env = ops.Envelope{Op: ops.EventCreate, EntityID: e.id}
				payload = ops.EventPayload{EventID: e.id, Title: "t", Status: "open", Message: "m", Severity: "high", EventTime: now, StartedAt: &st, Attrs: []byte(attrs), Tags: []string{"a", "b"}}
			} else {
				e := &ent{kind: ops.KindThing, ch: ch, id: fmt.Sprintf("th%04d", i)}
				ents = append(ents, e)
				env = ops.Envelope{Op: ops.ThingCreate, EntityID: e.id}
				x := "ext"
				payload = ops.ThingPayload{ThingID: e.id, Title: "thing", ObservedAt: now, CreatedAt: &now, Attrs: []byte(attrs), ExternalIDs: map[string]*string{"k": &x, "z": &x}}
			}
		case r < 4:
			ch = channels[rng.IntN(len(channels))]
			env = ops.Envelope{Op: ops.MessageCreate, EntityID: fmt.Sprintf("msg%04d", i)}
			payload = ops.MessagePayload{MessageID: env.EntityID, Title: "hello", Severity: "low", OccurredAt: now}
		default:
			e := ents[rng.IntN(len(ents))]
			if e.ended {
				i--
				continue
			}
			ch = e.ch
			if e.kind == ops.KindEvent {
				op := ops.EventUpdate
				if rng.IntN(5) == 0 {
					op, e.ended = ops.EventClose, true
				}
				env = ops.Envelope{Op: op, EntityID: e.id}
				payload = ops.EventPayload{EventID: e.id, Status: "s", Message: fmt.Sprint(i), Severity: "normal", EventTime: now, Attrs: []byte(attrs)}
			} else {
				op := []ops.Name{ops.ThingUpdate, ops.ThingUpdate, ops.ThingArchive, ops.ThingDelete}[rng.IntN(4)]
				e.ended = op == ops.ThingDelete
				env = ops.Envelope{Op: op, EntityID: e.id}
				payload = ops.ThingPayload{ThingID: e.id, ObservedAt: now, Attrs: []byte(attrs), ExternalIDs: map[string]*string{"k": nil}}
			}
		}
		env.V, env.ChannelID, env.OpID, env.AcceptedAt = 1, ch, fmt.Sprintf("op%05d", i), now+7
		env.Payload, _ = json.Marshal(payload, json.Deterministic(true))
		data, _ := json.Marshal(env)
		ack, err := js.Publish(context.Background(), streams.OpSubject(ch, env.Op.Kind(), env.EntityID), data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	return last
}

func dump(t *testing.T, s *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Dump(func(k, v []byte) error {
		fmt.Fprintf(&buf, "%q=%s\n", k, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func waitApplied(t *testing.T, p *projector.Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitApplied(ctx, seq); err != nil {
		t.Fatalf("applied %d, want %d: %v", p.Applied(), seq, err)
	}
}

// TestRebuildIsByteIdentical: a projection folded live, while the workload
// runs, equals one rebuilt from sequence 1 afterwards, byte for byte; and
// a projector restarted on its own store resumes to the same state.
func TestRebuildIsByteIdentical(t *testing.T) {
	nc, js := setup(t)
	dir := t.TempDir()
	live := start(t, nc, projector.Config{Dir: dir})
	rng := rand.New(rand.NewPCG(1, 2))
	workload(t, js, rng, 1500)
	// Restart the live projector mid-workload: it resumes from its store.
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	live = start(t, nc, projector.Config{Dir: dir})
	last := workload(t, js, rng, 1500)
	rebuilt := start(t, nc, projector.Config{InMemory: true})
	waitApplied(t, live, last)
	waitApplied(t, rebuilt, last)
	a, b := dump(t, live.Store()), dump(t, rebuilt.Store())
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("live and rebuilt projections differ (%d vs %d bytes)", len(a), len(b))
	}
	// The explicit rebuild of the live directory yields the same again.
	_ = live.Close()
	again := start(t, nc, projector.Config{Dir: dir, Rebuild: true})
	waitApplied(t, again, last)
	if !bytes.Equal(dump(t, again.Store()), a) {
		t.Fatal("Rebuild of the directory differs")
	}
}

// TestTwoReplicasServeReads: two replicas in one queue group both answer
// reads, and each answer is the same whichever replica gives it.
func TestTwoReplicasServeReads(t *testing.T) {
	nc, js := setup(t)
	p1 := start(t, nc, projector.Config{InMemory: true, Serve: true})
	p2 := start(t, nc, projector.Config{InMemory: true, Serve: true})
	last := workload(t, js, rand.New(rand.NewPCG(3, 4)), 400)
	waitApplied(t, p1, last)
	waitApplied(t, p2, last)
	if !bytes.Equal(dump(t, p1.Store()), dump(t, p2.Store())) {
		t.Fatal("replicas hold different state")
	}
	req, _ := json.Marshal(reads.Request{Route: reads.ChannelHistory, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Limit: 50, MinSeq: last})
	var first []byte
	for i := 0; i < 100; i++ {
		m, err := nc.Request(reads.Subject(reads.ChannelHistory), req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = m.Data
		} else if !bytes.Equal(first, m.Data) {
			t.Fatalf("answers differ:\n%s\n%s", first, m.Data)
		}
	}
	if p1.ServedReads() == 0 || p2.ServedReads() == 0 {
		t.Fatalf("reads served: %d and %d; both replicas must answer", p1.ServedReads(), p2.ServedReads())
	}
}

// TestReadWaitsForBarrier: a read whose barrier is ahead of the fold waits
// for it, and answers projection_lagging when the bound passes.
func TestReadWaitsForBarrier(t *testing.T) {
	nc, js := setup(t)
	p := start(t, nc, projector.Config{InMemory: true, Serve: true, ReadWait: 300 * time.Millisecond})
	last := workload(t, js, rand.New(rand.NewPCG(5, 6)), 50)
	ask := func(minSeq uint64) reads.Response {
		req, _ := json.Marshal(reads.Request{Route: reads.ChannelThings, ChannelID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", MinSeq: minSeq})
		m, err := nc.Request(reads.Subject(reads.ChannelThings), req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r reads.Response
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ask(last); r.ErrorCode != "" {
		t.Fatalf("read at the barrier: %s %s", r.ErrorCode, r.Error)
	}
	if p.Applied() < last {
		t.Fatalf("answered before applying %d (applied %d)", last, p.Applied())
	}
	if r := ask(last + 1000); r.ErrorCode != "projection_lagging" {
		t.Fatalf("read beyond the log: %+v", r)
	}
}

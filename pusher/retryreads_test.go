package pusher

import (
	"context"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/consume"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// settledMsg is a retry task as the send loop hands it over, recording how
// it is settled. Only the methods retryOne and the lane use are defined.
type settledMsg struct {
	jetstream.Msg
	subject string
	data    []byte
	md      *jetstream.MsgMetadata

	mu       sync.Mutex
	settled  []string
	progress int
}

func (m *settledMsg) Subject() string                           { return m.subject }
func (m *settledMsg) Data() []byte                              { return m.data }
func (m *settledMsg) Metadata() (*jetstream.MsgMetadata, error) { return m.md, nil }
func (m *settledMsg) InProgress() error                         { m.mu.Lock(); m.progress++; m.mu.Unlock(); return nil }
func (m *settledMsg) Ack() error                                { return m.settle("ack") }
func (m *settledMsg) Nak() error                                { return m.settle("nak") }
func (m *settledMsg) NakWithDelay(time.Duration) error          { return m.settle("nak with delay") }
func (m *settledMsg) Term() error                               { return m.settle("term") }
func (m *settledMsg) settle(how string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settled = append(m.settled, how)
	return nil
}

// retryPusher is a pusher with what retryOne and its lanes use, over js:
// no partition, no provider (the tests' tasks end before a send).
func retryPusher(t *testing.T, js jetstream.JetStream) *Pusher {
	t.Helper()
	s, err := js.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pusher{cfg: Config{Lanes: 4}, log: slog.New(slog.DiscardHandler), js: js, ops: newOpCache(leaderread.New(js, s), 16),
		metrics: newMetrics(), now: time.Now, sendLoop: &consume.Loop{}, laneSeed: maphash.MakeSeed()}
	for range p.cfg.Lanes {
		p.lanes = append(p.lanes, newLane())
	}
	return p
}

// heldTask is task as the send loop hands it to p's lanes: its first
// delivery, held.
func heldTask(t *testing.T, p *Pusher, task delivery.Task) *settledMsg {
	t.Helper()
	data, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	m := &settledMsg{subject: streams.DeliverySubject(task.ChannelID, task.DeviceKey), data: data, md: &jetstream.MsgMetadata{NumDelivered: 1}}
	p.held.hold(m)
	return m
}

// TestRetryWhoseReadsFailIsNotAnAttempt: a retry task whose reads fail
// while the pusher's connection is up (here its operation's stream is
// gone, as a stream without a leader answers nothing) is not handed back to
// the broker, whose redelivery would count as one more attempt of the
// task's budget: it stays held in this replica and goes back to its
// device's lane after retryReadFirstWait, and waits twice as long after
// each further failure, up to retryReadMaxWait. Until 4 December, evening,
// it was nak'd: a bucket without a leader for 40 s spent most of a task's
// eight sends, and its next refusal by the provider failed it ("retry
// budget spent").
func TestRetryWhoseReadsFailIsNotAnAttempt(t *testing.T) {
	_, js := brokertest.Start(t).Conn(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := retryPusher(t, js)
	m := heldTask(t, p, delivery.Task{ID: delivery.ID(7, "dev-1"), Seq: 7, ChannelID: "c", DeviceKey: "dev-1", PriorAttempts: 1})
	if err := js.DeleteStream(ctx, streams.Ops); err != nil { // every read of the retry fails
		t.Fatal(err)
	}

	began := time.Now()
	p.retryOne(ctx, m)
	l := p.laneOf(m)
	select {
	case <-l.wake:
		got, _ := l.pop()
		if got != m {
			t.Fatalf("the lane got %v, want the task", got)
		}
		if waited := time.Since(began); waited < retryReadFirstWait {
			t.Errorf("back in its lane after %s, want at least %s", waited, retryReadFirstWait)
		}
	case <-time.After(retryReadFirstWait + 10*time.Second):
		t.Fatal("the task did not come back to its lane")
	}
	m.mu.Lock()
	settled := m.settled
	m.mu.Unlock()
	if len(settled) != 0 {
		t.Fatalf("the task was settled (%v): its redelivery would count as an attempt", settled)
	}
	p.held.mu.Lock()
	_, held := p.held.m[m]
	p.held.mu.Unlock()
	if !held {
		t.Fatal("the task is no longer held: keepAlive would let its ack wait pass")
	}

	var waits []time.Duration
	for range 6 {
		waits = append(waits, p.held.failedRead(m))
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, retryReadMaxWait, retryReadMaxWait}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits after the 2nd to 7th failures %v, want %v", waits, want)
		}
	}
	p.held.release(m)
	if w := p.held.failedRead(m); w != retryReadFirstWait {
		t.Errorf("a task settled and taken again waits %s after its first failure, want %s", w, retryReadFirstWait)
	}
}

// TestRetryWhoseReadsFailWhileDisconnectedIsLetGo: when the reads failed
// because the pusher's own connection is down, the broker does not hear
// that the task is in progress and hands it out again after its ack wait,
// perhaps to another replica: the task is let go here, neither settled nor
// kept, so it is not sent twice once the connection is back.
func TestRetryWhoseReadsFailWhileDisconnectedIsLetGo(t *testing.T) {
	nc, js := brokertest.Start(t).Conn(t)
	p := retryPusher(t, js)
	m := heldTask(t, p, delivery.Task{ID: delivery.ID(7, "dev-1"), Seq: 7, ChannelID: "c", DeviceKey: "dev-1", PriorAttempts: 1})
	nc.Close()

	p.retryOne(context.Background(), m)
	p.laneWG.Wait() // nothing parked: this returns at once
	p.held.mu.Lock()
	_, held := p.held.m[m]
	p.held.mu.Unlock()
	if held || queued(p.laneOf(m)) || len(m.settled) != 0 {
		t.Fatalf("held %v, in its lane %v, settled %v: want the task let go", held, queued(p.laneOf(m)), m.settled)
	}
}

// TestRetryOfAnUnreadableOperationFails: a retry task whose operation is
// in the log but is not an envelope (a poisoned entry) ends failed, with
// its receipt, rather than waiting for ever for a read that cannot work.
func TestRetryOfAnUnreadableOperationFails(t *testing.T) {
	_, js := brokertest.Start(t).Conn(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ack, err := js.Publish(ctx, streams.OpSubject("c", "message", "poisoned"), []byte("not an envelope"))
	if err != nil {
		t.Fatal(err)
	}
	p := retryPusher(t, js)
	task := delivery.Task{ID: delivery.ID(ack.Sequence, "dev-1"), Seq: ack.Sequence, ChannelID: "c", DeviceKey: "dev-1", PriorAttempts: 1}
	m := heldTask(t, p, task)
	p.retryOne(ctx, m)
	p.laneWG.Wait() // the outcome receipt is stored, then the task acked

	if !slices.Equal(m.settled, []string{"ack"}) {
		t.Fatalf("the task was settled %v, want acked once", m.settled)
	}
	rs, err := js.Stream(ctx, streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	last, err := rs.GetLastMsgForSubject(ctx, streams.ReceiptSubject("c"))
	if err != nil {
		t.Fatalf("no outcome receipt: %v", err)
	}
	var r delivery.Receipt
	if err := json.Unmarshal(last.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != delivery.KindOutcome || r.Outcome != delivery.Failed || r.DeliveryID != task.ID {
		t.Fatalf("receipt %+v, want the task's failed outcome", r)
	}
}

// queued reports whether l holds a task.
func queued(l *lane) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) != 0
}

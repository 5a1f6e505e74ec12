package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// resetLoss is a partition on a real broker whose first delivery after
// its takeover's reset was lost: the test fetched it and never handed it
// to the partition.
type resetLoss struct {
	pt   *partition
	s    jetstream.Stream
	next func() (jetstream.Msg, *jetstream.MsgMetadata) // the next delivery
	seq  uint64                                         // the operation's stream sequence
}

// resetLossFailover is the consumer's ack wait in these tests.
const resetLossFailover = time.Second

func startResetLoss(ctx context.Context, t *testing.T) *resetLoss {
	t.Helper()
	b := brokertest.Start(t)
	_, js := b.Conn(t)
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pusher{cfg: Config{Failover: resetLossFailover, PartitionWindow: 16, Partitions: 1}, js: js, opsStream: s,
		metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	cfg := p.partitionConsumer(0, 0)
	cfg.PinnedTTL = time.Minute // the pin stays: no takeover rescues the partition
	cons, err := s.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &resetLoss{pt: &partition{p: p, n: 0, name: cons.CachedInfo().Name, intake: make(chan intakeItem, 4)}, s: s}

	channelID := ids.NewChannelID()
	entityID := fmt.Sprintf("%032x", 1)
	data, err := json.Marshal(ops.Envelope{V: ops.EnvelopeVersion, Op: ops.MessageCreate, ChannelID: channelID,
		OpID: "op-1", EntityID: entityID, Payload: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, streams.OpSubject(channelID, ops.KindMessage, entityID), data)
	if err != nil {
		t.Fatal(err)
	}
	r.seq = ack.Sequence
	r.next = func() (jetstream.Msg, *jetstream.MsgMetadata) {
		t.Helper()
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*resetLossFailover), jetstream.FetchPriorityGroup(PriorityGroup))
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				md, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				return m, md
			}
		}
		t.Fatal("no delivery within the test's time")
		return nil, nil
	}

	// The first delivery makes the partition take over: it resets.
	m, _ := r.next()
	r.pt.take(ctx, m)
	if !r.pt.resetting {
		t.Fatal("the first delivery did not make the partition reset its consumer")
	}
	// The first delivery after the reset is lost.
	if _, md := r.next(); md.Sequence.Consumer != 1 || md.Sequence.Stream != r.seq {
		t.Fatalf("first delivery after the reset: consumer sequence %d, stream %d; want 1, %d", md.Sequence.Consumer, md.Sequence.Stream, r.seq)
	}
	return r
}

// TestFirstDeliveryAfterAResetLost: a partition that takes over resets its
// consumer and waits for the delivery with consumer sequence 1; if that one
// never reaches it (here the test drops it, as a pull the client library
// gave up would), the broker's redelivery after the ack wait carries a
// higher sequence, like everything after it. The partition resets again
// once it has waited longer than the ack wait, and takes the operation.
// Before, it held every message from then on until another replica took
// the partition over: a partition's devices got nothing.
func TestFirstDeliveryAfterAResetLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startResetLoss(ctx, t)
	// Every later delivery is handed to the partition until it takes the
	// operation.
	resets := 0
	for {
		m, md := r.next()
		before := r.pt.resetAt
		r.pt.take(ctx, m)
		if r.pt.resetAt != before {
			if md.Sequence.Consumer == 1 {
				t.Fatalf("reset again at the first delivery after a reset (%+v)", md.Sequence)
			}
			resets++
		}
		select {
		case it := <-r.pt.intake:
			if it.seq != r.seq {
				t.Fatalf("took sequence %d, want %d", it.seq, r.seq)
			}
			if resets != 1 {
				t.Fatalf("took the operation after %d more resets, want 1", resets)
			}
			return
		default:
		}
	}
}

// TestNoResetAgainWithoutThePin: a partition waiting for its first
// delivery after a reset that is no longer pinned to this replica (it
// stalled past the failover time, and reads what was delivered before)
// does not reset the consumer again: that would restart the delivery
// sequences under the replica the broker pinned next.
func TestNoResetAgainWithoutThePin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startResetLoss(ctx, t)
	m, md := r.next() // the redelivery, after the ack wait
	if md.Sequence.Consumer == 1 {
		t.Fatalf("the redelivery has consumer sequence 1 (%+v)", md.Sequence)
	}
	if err := r.s.UnpinConsumer(ctx, r.pt.name, PriorityGroup); err != nil {
		t.Fatal(err)
	}
	before := r.pt.resetAt
	r.pt.take(ctx, m)
	if r.pt.resetAt != before || !r.pt.resetting {
		t.Fatal("a partition no longer pinned to this replica reset the consumer again")
	}
	info, err := r.s.Consumer(ctx, r.pt.name)
	if err != nil {
		t.Fatal(err)
	}
	if d := info.CachedInfo().Delivered.Consumer; d < md.Sequence.Consumer {
		t.Fatalf("the consumer's delivery sequence went back to %d (a reset) after %d", d, md.Sequence.Consumer)
	}
}

// TestNoFloorRepairWithoutThePin: a partition repairing its floor that is
// no longer pinned (it stalled past the failover time, and reads what was
// delivered before, under its old pin) does not reset the consumer: that
// would restart the delivery sequences under the replica the broker
// pinned next.
// Its pinned twin repairs: the check keeps no owner from its repair.
func TestNoFloorRepairWithoutThePin(t *testing.T) {
	t.Run("pinned", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r := startResetLoss(ctx, t)
		m, _ := r.next()
		r.pt.repairing = true
		before := r.pt.resetAt
		r.pt.take(ctx, m)
		if r.pt.resetAt == before || r.pt.repairing {
			t.Fatal("a partition still pinned to this replica did not repair its floor")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startResetLoss(ctx, t)
	m, md := r.next() // a redelivery, under this replica's pin
	if err := r.s.UnpinConsumer(ctx, r.pt.name, PriorityGroup); err != nil {
		t.Fatal(err)
	}
	r.pt.repairing = true // as checkFloor leaves it on a redelivery its floor passed
	before := r.pt.resetAt
	r.pt.take(ctx, m)
	if r.pt.resetAt != before || !r.pt.repairing {
		t.Fatal("a partition no longer pinned to this replica reset the consumer to repair its floor")
	}
	info, err := r.s.Consumer(ctx, r.pt.name)
	if err != nil {
		t.Fatal(err)
	}
	if d := info.CachedInfo().Delivered.Consumer; d < md.Sequence.Consumer {
		t.Fatalf("the consumer's delivery sequence went back to %d (a reset) after %d", d, md.Sequence.Consumer)
	}
}

// TestResetGivesUpBeforeThePinLapses: a reset the broker does not answer
// (a replicated consumer whose leader lost its quorum answers once its
// proposal commits, if ever) gives up within half the failover time, so
// the partition's loop pulls again before its pin lapses; it used to wait
// 10 s, past a failover time of 6.
func TestResetGivesUpBeforeThePinLapses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := brokertest.Start(t)
	nc, _ := b.Conn(t)
	// The JetStream API under a prefix where a subscriber takes every
	// request and answers none.
	if _, err := nc.Subscribe("silent.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.NewWithAPIPrefix(nc, "silent")
	if err != nil {
		t.Fatal(err)
	}
	const failover = 4 * time.Second
	p := &Pusher{cfg: Config{Failover: failover, PartitionWindow: 16, Partitions: 1}, js: js,
		metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	pt := &partition{p: p, n: 0, name: PartitionConsumerPrefix + "0", intake: make(chan intakeItem, 4)}
	began := time.Now()
	if err := pt.reset(ctx); err == nil {
		t.Fatal("a reset nobody answered succeeded")
	}
	if waited := time.Since(began); waited >= failover {
		t.Fatalf("the unanswered reset held the loop %s, past the pin's lifetime (%s)", waited, failover)
	}
}

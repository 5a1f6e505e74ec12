package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestFirstDeliveryAfterAResetLost: a partition that takes over resets its
// consumer and waits for the delivery with consumer sequence 1; if that one
// never reaches it (here the test drops it, as a pull the client library
// gave up would), the broker's redelivery after the ack wait carries a
// higher sequence, like everything after it. The partition resets again
// once it has waited longer than the ack wait, and takes the operation.
// Before, it held every message from then on until another replica took
// the partition over: a partition's devices got nothing.
func TestFirstDeliveryAfterAResetLost(t *testing.T) {
	b := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, js := b.Conn(t)
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	const failover = time.Second // the consumer's ack wait
	p := &Pusher{cfg: Config{Failover: failover, PartitionWindow: 16, Partitions: 1}, js: js, opsStream: s,
		metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	cfg := p.partitionConsumer(0, 0)
	cfg.PinnedTTL = time.Minute // the pin stays: no takeover rescues the partition
	cons, err := s.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pt := &partition{p: p, n: 0, name: cons.CachedInfo().Name, intake: make(chan intakeItem, 4)}

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
	next := func() (jetstream.Msg, *jetstream.MsgMetadata) {
		t.Helper()
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*failover), jetstream.FetchPriorityGroup(PriorityGroup))
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
	m, _ := next()
	pt.take(ctx, m)
	if !pt.resetting {
		t.Fatal("the first delivery did not make the partition reset its consumer")
	}
	// The first delivery after the reset is lost.
	if _, md := next(); md.Sequence.Consumer != 1 || md.Sequence.Stream != ack.Sequence {
		t.Fatalf("first delivery after the reset: consumer sequence %d, stream %d; want 1, %d", md.Sequence.Consumer, md.Sequence.Stream, ack.Sequence)
	}
	// Every later delivery is handed to the partition until it takes the
	// operation.
	resets := 0
	for {
		m, md := next()
		before := pt.resetAt
		pt.take(ctx, m)
		if pt.resetAt != before {
			if md.Sequence.Consumer == 1 {
				t.Fatalf("reset again at the first delivery after a reset (%+v)", md.Sequence)
			}
			resets++
		}
		select {
		case it := <-pt.intake:
			if it.seq != ack.Sequence {
				t.Fatalf("took sequence %d, want %d", it.seq, ack.Sequence)
			}
			if resets != 1 {
				t.Fatalf("took the operation after %d more resets, want 1", resets)
			}
			return
		default:
		}
	}
}

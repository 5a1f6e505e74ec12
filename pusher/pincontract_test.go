package pusher

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
)

// TestBrokerPinContract holds the broker to what partition ownership
// relies on (partition.go), on the broker the gateway ships:
//   - the pinned client keeps its pin while its pull requests keep coming,
//     with nothing delivered (its window is full), and another client of the
//     group gets nothing meanwhile: one replica at a time sends a partition;
//   - once the pinned client stops pulling, another client of the group is
//     pinned under a new id and gets the unacknowledged operation: a dead
//     replica's partition moves to a living one;
//   - a reset to a sequence moves the ack floor to just before it and
//     delivers that sequence to the pinned client, keeping the pin, on a
//     consumer made by start sequence, and is refused for one made with
//     DeliverNew (as the partition consumers are made today): what a
//     one-node owner that takes its operations from the in-process feed
//     and keeps the pin with one message held would build on
//     (docs/performance-log.md, 3 December, late afternoon).
func TestBrokerPinContract(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := brokertest.Start(t)
	_, js := b.Conn(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PINCONTRACT", Subjects: []string{"pincontract.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := js.Publish(ctx, "pincontract.op", []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	const ttl = 2 * time.Second
	pinned := jetstream.ConsumerConfig{Durable: "held", DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 1,
		AckPolicy: jetstream.AckAllPolicy, AckWait: ttl, MaxAckPending: 1,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{PriorityGroup}, PinnedTTL: ttl}
	if _, err := s.CreateConsumer(ctx, pinned); err != nil {
		t.Fatal(err)
	}

	type delivery struct {
		seq uint64
		pin string
	}
	pull := func(t *testing.T) (<-chan delivery, func()) {
		_, js := b.Conn(t)
		c, err := js.Consumer(ctx, s.CachedInfo().Config.Name, pinned.Durable)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan delivery, 16)
		cc, err := c.Consume(func(m jetstream.Msg) {
			md, err := m.Metadata()
			if err != nil {
				t.Error(err)
				return
			}
			got <- delivery{seq: md.Sequence.Stream, pin: m.Headers().Get("Nats-Pin-Id")}
		}, jetstream.PullPriorityGroup(PriorityGroup), jetstream.PullExpiry(time.Second), jetstream.PullMaxMessages(16))
		if err != nil {
			t.Fatal(err)
		}
		return got, cc.Stop
	}
	next := func(t *testing.T, who string, ch <-chan delivery) delivery {
		t.Helper()
		select {
		case d := <-ch:
			return d
		case <-ctx.Done():
			t.Fatalf("%s: no delivery", who)
			return delivery{}
		}
	}
	state := func(t *testing.T) *jetstream.ConsumerInfo {
		t.Helper()
		c, err := s.Consumer(ctx, pinned.Durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	pinOf := func(info *jetstream.ConsumerInfo) string {
		if len(info.PriorityGroups) == 0 {
			return ""
		}
		return info.PriorityGroups[0].PinnedClientID
	}

	a, stopA := pull(t)
	first := next(t, "A", a)
	if first.seq != 1 || first.pin == "" {
		t.Fatalf("A's first delivery: %+v", first)
	}
	bCh, stopB := pull(t)
	defer stopB()
	// Past twice the pin's TTL, with A pulling (its pull requests expire
	// every second) and B pulling too: the pin is still A's, and nothing
	// more was delivered to anyone (the window of one is full).
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		info := state(t)
		if pinOf(info) != first.pin || info.Delivered.Stream != 1 {
			t.Fatalf("while A held message 1: pinned %q (A's %q), delivered up to %d", pinOf(info), first.pin, info.Delivered.Stream)
		}
		select {
		case d := <-bCh:
			t.Fatalf("B got %+v while A held the pin", d)
		case d := <-a:
			if d.seq != 1 {
				t.Fatalf("A got %+v while holding message 1", d)
			}
			// Message 1 again after the ack wait: A still holds it.
		case <-time.After(ttl / 4):
		}
	}

	// A reset to a sequence: the ack floor moves to just before it, and
	// the pinned client gets it under the same pin.
	if r, err := js.ResetConsumerToSequence(ctx, s.CachedInfo().Config.Name, pinned.Durable, 8); err != nil || r.ResetSeq != 8 {
		t.Fatalf("reset to 8: %+v, %v", r, err)
	}
	for {
		d := next(t, "A", a)
		if d.seq == 1 {
			continue // a redelivery sent before the reset
		}
		if d.seq != 8 || d.pin != first.pin {
			t.Fatalf("A after the reset to 8: %+v (its pin %q)", d, first.pin)
		}
		break
	}
	if info := state(t); info.AckFloor.Stream != 7 || pinOf(info) != first.pin {
		t.Fatalf("after the reset: ack floor %d, pinned %q", info.AckFloor.Stream, pinOf(info))
	}

	// A stops: B is pinned under a new id and gets the message A held.
	stopA()
	took := next(t, "B", bCh)
	if took.seq != 8 || took.pin == "" || took.pin == first.pin {
		t.Fatalf("B's takeover: %+v (A's pin %q)", took, first.pin)
	}

	// A consumer made with DeliverNew, as the partition consumers are made
	// today, cannot be reset to a sequence.
	fresh := pinned
	fresh.Durable, fresh.DeliverPolicy, fresh.OptStartSeq = "new", jetstream.DeliverNewPolicy, 0
	if _, err := s.CreateConsumer(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := js.ResetConsumerToSequence(ctx, s.CachedInfo().Config.Name, fresh.Durable, 5); err == nil {
		t.Error("a DeliverNew consumer was reset to a sequence: the partition consumers could be checkpointed by reset as they are")
	}
}

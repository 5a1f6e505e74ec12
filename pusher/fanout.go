package pusher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// FanoutConsumer is the durable consumer of PUSHGO_OPS shared by every
// pusher replica: each operation is expanded by one of them.
const FanoutConsumer = "pushgo-fanout"

// fanout expands operations into delivery tasks until ctx ends. It handles
// one operation at a time, so within a replica the tasks of one device are
// queued in log order (event create, update, close arrive in order).
//
// The consumer is created with DeliverNew: operations appended before the
// pusher first ran are history, and history never raises a push.
func (p *Pusher) fanout(ctx context.Context) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, streams.Ops, jetstream.ConsumerConfig{
		Durable:       FanoutConsumer,
		Description:   "PushGo pusher: expands operations into delivery tasks",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 64,
	})
	if err != nil {
		return fmt.Errorf("fan-out consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("fan-out messages: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("fan-out next: %w", err)
		}
		if err := p.expand(ctx, m); err != nil {
			// Nothing is lost: the operation is redelivered and its tasks,
			// deduplicated by delivery id, are not doubled.
			if ctx.Err() == nil {
				p.log.Warn("pusher: expand failed; will retry", "err", err)
			}
			_ = m.NakWithDelay(time.Second)
			continue
		}
		_ = m.Ack()
	}
}

// expand publishes one task per subscribed device, then the expanded
// receipt. It returns only when the broker has acknowledged all of them.
func (p *Pusher) expand(ctx context.Context, m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		return err
	}
	var env ops.Envelope
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		// A malformed operation can never be delivered; say so and move on.
		p.log.Error("pusher: malformed operation", "seq", md.Sequence.Stream, "err", err)
		return nil
	}
	p.ops.put(md.Sequence.Stream, &env)
	devicesOf, err := p.devices.SubscribersAt(ctx, env.ChannelID, env.AcceptedAt)
	if err != nil {
		return fmt.Errorf("subscribers of %s: %w", env.ChannelID, err)
	}
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, len(devicesOf))
	for _, dev := range devicesOf {
		t := delivery.Task{
			ID: delivery.ID(md.Sequence.Stream, dev), Seq: md.Sequence.Stream, ChannelID: env.ChannelID,
			OpID: env.OpID, Op: env.Op, EntityID: env.EntityID, DeviceKey: dev, AcceptedAt: env.AcceptedAt,
		}
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		msg := nats.NewMsg(streams.DeliverySubject(env.ChannelID, dev))
		msg.Data = b
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(t.ID))
		if err != nil {
			return fmt.Errorf("publish task %s: %w", t.ID, err)
		}
		futures = append(futures, f)
	}
	if err := awaitAll(ctx, futures); err != nil {
		return err
	}
	p.metrics.fanoutSeconds.Observe(time.Since(start).Seconds())
	p.metrics.tasks.Add(float64(len(futures)))
	return p.receipt(ctx, delivery.Receipt{
		Kind: delivery.KindExpanded, ChannelID: env.ChannelID, OpID: env.OpID, Seq: md.Sequence.Stream,
		EntityType: env.Op.Kind(), EntityID: env.EntityID, AcceptedAt: env.AcceptedAt, At: p.now().UnixMilli(), Tasks: len(futures),
	}, true)
}

func awaitAll(ctx context.Context, fs []jetstream.PubAckFuture) error {
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish task: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// receipt publishes r; with wait it returns once the broker has it.
func (p *Pusher) receipt(ctx context.Context, r delivery.Receipt, wait bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(streams.ReceiptSubject(r.ChannelID))
	msg.Data = b
	if wait {
		_, err = p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(r.MsgID()))
		return err
	}
	_, err = p.js.PublishMsgAsync(msg, jetstream.WithMsgID(r.MsgID()))
	return err
}

package pusher

import (
	"context"
	"fmt"
	"time"

	"github.com/pushgo/gateway/broker/consume"

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

// fanoutConsumer is the fan-out's consumer configuration. It starts at
// DeliverNew: operations appended before the pusher first ran are history,
// and history never raises a push.
func fanoutConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       FanoutConsumer,
		Description:   "PushGo pusher: expands operations into delivery tasks",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1024,
	}
}

// resumeFanout recreates a fan-out consumer that went missing (deleted by
// an operator, lost with a node) after the last operation this replica
// settled, so nothing appended while it was gone is skipped; operations
// expanded twice add no second task (tasks are deduplicated by delivery
// id).
func resumeFanout(lastAcked uint64) jetstream.ConsumerConfig {
	c := fanoutConsumer()
	if lastAcked > 0 {
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, lastAcked+1
	}
	return c
}

// fanout expands operations into delivery tasks until ctx ends. Within a
// replica the operations are expanded one after the other, so one device's
// tasks are queued in log order (event create, update, close arrive in
// order); the broker's acknowledgements are awaited in a pipeline, so the
// next operation is expanded while the last one's tasks are being stored.
func (p *Pusher) fanout(ctx context.Context) error {
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		for x := range p.inflight {
			p.settle(ctx, x)
		}
	}()
	defer func() { close(p.inflight); <-settled }()
	return p.fanoutLoop.Run(ctx)
}

// expandOne is the fan-out loop's handler: it expands m and passes it to
// the pipeline that settles it once the broker holds its tasks.
func (p *Pusher) expandOne(ctx context.Context, m jetstream.Msg) consume.Decision {
	x, err := p.expand(ctx, m)
	switch {
	case err != nil:
		p.log.Warn("pusher: expand failed; will retry", "err", err)
		return consume.Nak(time.Second)
	case x == nil:
		return consume.Term // malformed: can never be delivered
	}
	p.inflight <- x
	return consume.Held
}

// routesRevision is the devices bucket's last revision, or why it is
// unknown.
type routesRevision struct {
	rev uint64
	err error
}

// routesRevision asks the devices bucket's last revision.
func (p *Pusher) routesRevision(ctx context.Context) routesRevision {
	info, err := p.devicesStream.Info(ctx)
	if err != nil {
		return routesRevision{err: fmt.Errorf("devices bucket revision: %w", err)}
	}
	return routesRevision{rev: info.State.LastSeq}
}

// expansion is one operation whose tasks and receipt are published and
// whose acknowledgements are awaited.
type expansion struct {
	m       jetstream.Msg
	futures []jetstream.PubAckFuture
	start   time.Time
}

// expand publishes one task per device subscribed before the operation was
// appended, then its expanded receipt, without waiting for the broker.
// It returns nil for a malformed operation, which can never be delivered.
func (p *Pusher) expand(ctx context.Context, m jetstream.Msg) (*expansion, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	var env ops.Envelope
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		// A malformed operation can never be delivered; say so and move on.
		p.log.Error("pusher: malformed operation", "seq", md.Sequence.Stream, "err", err)
		return nil, nil
	}
	p.ops.put(md.Sequence.Stream, &env)
	// The operation is in the log, so every subscription made before it is
	// in the bucket: wait until the audience holds them all.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Every route bound before the operation is in the devices bucket too:
	// its senders push to the routes as of the bucket's revision now. For a
	// channel with subscribers it is asked beside the audience's sync, so
	// the two round trips overlap; a channel with none (most operations of
	// a busy sender) costs no second round trip.
	var routes chan routesRevision
	if p.audience.Has(env.ChannelID) {
		routes = make(chan routesRevision, 1)
		go func() { routes <- p.routesRevision(sctx) }()
	}
	if err := p.audience.Sync(sctx); err != nil {
		return nil, err
	}
	audience := p.audience.At(env.ChannelID, md.Sequence.Stream)
	var rr routesRevision
	switch {
	case routes != nil:
		rr = <-routes
	case len(audience) > 0: // subscribed while the audience synced
		rr = p.routesRevision(sctx)
	}
	if rr.err != nil {
		return nil, rr.err
	}
	routesRev := rr.rev
	x := &expansion{m: m, futures: make([]jetstream.PubAckFuture, 0, len(audience)+1), start: time.Now()}
	for _, dev := range audience {
		t := delivery.Task{
			ID: delivery.ID(md.Sequence.Stream, dev), Seq: md.Sequence.Stream, ChannelID: env.ChannelID,
			OpID: env.OpID, Op: env.Op, EntityID: env.EntityID, DeviceKey: dev, AcceptedAt: env.AcceptedAt, RoutesRev: routesRev,
		}
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		msg := nats.NewMsg(streams.DeliverySubject(env.ChannelID, dev))
		msg.Data = b
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(t.ID))
		if err != nil {
			return nil, fmt.Errorf("publish task %s: %w", t.ID, err)
		}
		x.futures = append(x.futures, f)
	}
	r := delivery.Receipt{
		Kind: delivery.KindExpanded, ChannelID: env.ChannelID, OpID: env.OpID, Seq: md.Sequence.Stream,
		EntityType: env.Op.Kind(), EntityID: env.EntityID, AcceptedAt: env.AcceptedAt, At: p.now().UnixMilli(), Tasks: len(audience),
	}
	f, err := p.receiptAsync(r)
	if err != nil {
		return nil, fmt.Errorf("publish receipt: %w", err)
	}
	x.futures = append(x.futures, f)
	p.metrics.tasks.Add(float64(len(audience)))
	return x, nil
}

// settle acks an operation once the broker holds all its tasks and its
// receipt; if any publish failed it naks it, and the redelivered operation
// adds no second task (the tasks are deduplicated by delivery id).
func (p *Pusher) settle(ctx context.Context, x *expansion) {
	if err := awaitAll(ctx, x.futures); err != nil {
		if ctx.Err() == nil {
			p.log.Warn("pusher: expansion not stored; will retry", "err", err)
		}
		p.fanoutLoop.Settle(x.m, consume.Nak(time.Second))
		return
	}
	p.metrics.fanoutSeconds.Observe(time.Since(x.start).Seconds())
	p.fanoutLoop.Settle(x.m, consume.Ack)
}

func awaitAll(ctx context.Context, fs []jetstream.PubAckFuture) error {
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// receiptAsync publishes r and returns the broker's future answer.
func (p *Pusher) receiptAsync(r delivery.Receipt) (jetstream.PubAckFuture, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(streams.ReceiptSubject(r.ChannelID))
	msg.Data = b
	return p.js.PublishMsgAsync(msg, jetstream.WithMsgID(r.MsgID()))
}

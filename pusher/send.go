package pusher

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	"github.com/pushgo/gateway/schemas/streams"

	"github.com/pushgo/gateway/broker/consume"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
)

// SendConsumer is the durable work-queue consumer of PUSHGO_DELIVERIES,
// the retry queue, shared by every pusher replica: a delivery a partition
// could not finish at its first attempt (a 429, a 5xx, a timeout) is a
// task there, tried again with back-off until it ends.
const SendConsumer = "pushgo-sender"

// sendConsumer is the sender workers' consumer configuration.
func (p *Pusher) sendConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       SendConsumer,
		Description:   "PushGo pusher: retries deliveries to APNs and FCM",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.cfg.RetryAckWait,
		MaxAckPending: p.cfg.MaxInFlight,
	}
}

// send takes retry tasks and hands each to the lane of its device until
// ctx ends. A lane is one goroutine: one device's tasks are sent one after
// the other in the order they were queued, while thousands of devices are
// sent to at once across lanes.
func (p *Pusher) send(ctx context.Context) error {
	p.lanes = make([]*lane, p.cfg.Lanes)
	done := make(chan struct{})
	for i := range p.lanes {
		l := newLane()
		p.lanes[i] = l
		p.laneWG.Go(func() {
			for {
				select {
				case <-done:
					// Hand queued tasks back now rather than after the
					// ack wait.
					p.handBack(l)
					return
				default:
				}
				// Counted before the check, so that drain, which sets
				// draining and then waits for the count, sees every
				// task a lane starts.
				p.retrying.Add(1)
				if p.draining.Load() {
					// Stopping: a task queued stays for Close to hand
					// back, untried.
					p.retrying.Add(-1)
				} else if m, ok := l.pop(); ok {
					if ctx.Err() != nil { // stopping: hand it back, untried
						p.settleTask(m, consume.Nak(0))
						p.retrying.Add(-1)
						continue
					}
					p.retryOne(ctx, m)
					p.retrying.Add(-1)
					continue
				} else {
					p.retrying.Add(-1)
				}
				select {
				case <-l.wake:
				case <-done:
				}
			}
		})
	}
	defer close(done)
	return p.sendLoop.Run(ctx)
}

// handBack hands every task queued in l back to the broker, untried.
func (p *Pusher) handBack(l *lane) {
	for m, ok := l.pop(); ok; m, ok = l.pop() {
		p.settleTask(m, consume.Nak(0))
	}
}

// toLane is the send loop's handler: it queues m on its device's lane,
// which settles it, and returns at once (lane).
func (p *Pusher) toLane(ctx context.Context, m jetstream.Msg) consume.Decision {
	if ctx.Err() != nil {
		return consume.Nak(0) // stopping: hand it back at once
	}
	p.held.hold(m)
	p.laneOf(m).push(m)
	return consume.Held
}

// laneOf is the lane of m's device: the last token of its subject (no
// decoding to route).
func (p *Pusher) laneOf(m jetstream.Msg) *lane {
	subj := m.Subject()
	dev := subj[lastDot(subj)+1:]
	return p.lanes[maphash.String(p.laneSeed, dev)%uint64(len(p.lanes))]
}

// Tries of a retry task whose broker reads failed (the operation, the
// event's latest, the device's subscription or route: the broker or a
// bucket's leader unavailable) are not attempts: the task waits in this
// replica, held, and goes back to its lane after retryReadFirstWait,
// doubling up to retryReadMaxWait. Handed back to the broker instead (a
// nak), each would have counted as a delivery, and the attempt count is
// the task's deliveries: a bucket without a leader for 40 s spent most of
// a task's retry budget, and its next refusal by the provider failed it.
// Each read is bounded by retryReadTimeout, so a lane does not wait long
// on a broker that does not answer. A record that cannot be decoded (the
// operation, the device or its subscription) ends the task failed: reading
// it again would not help.
const (
	retryReadFirstWait = time.Second
	retryReadMaxWait   = 30 * time.Second
	retryReadTimeout   = 2 * time.Second
)

// parkAfterReadFailure keeps m, whose reads failed, held (keepAlive) and
// puts it back in its lane after its back-off; when ctx ends first it is
// handed back to the broker.
//
// Only while this replica's connection stays up: without it keepAlive's
// signals do not reach the broker, which hands the task out again after
// its ack wait, perhaps to another replica, and a copy kept here would be
// sent a second time. So a task whose reads failed while the connection
// was down, or that went down (or reconnected) while it waited, is let go
// unsettled: the broker hands it out again after its ack wait, one
// delivery of its budget for the outage, not one a try.
func (p *Pusher) parkAfterReadFailure(ctx context.Context, m jetstream.Msg) {
	nc := p.js.Conn()
	if !nc.IsConnected() {
		p.held.release(m)
		return
	}
	reconnects := nc.Stats().Reconnects
	wait := p.held.failedRead(m)
	p.laneWG.Go(func() {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
			if !nc.IsConnected() || nc.Stats().Reconnects != reconnects {
				p.held.release(m)
				return
			}
			if ctx.Err() == nil {
				p.laneOf(m).push(m) // queued as the lanes end: Close hands it back
				return
			}
		case <-ctx.Done():
		}
		p.settleTask(m, consume.Nak(0))
	})
}

// unreadable reports whether err says a record read for a retry (its
// operation, the device or its subscription) is not what it should be.
func unreadable(err error) bool {
	var semantic *json.SemanticError
	var syntactic *jsontext.SyntacticError
	return errors.Is(err, errUnreadableOp) || errors.As(err, &semantic) || errors.As(err, &syntactic)
}

// readBound bounds one of a retry's reads (retryReadTimeout).
func readBound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, retryReadTimeout)
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// retryOne makes the next attempt at a delivery of the retry queue and
// settles its task: ack with an outcome receipt when the outcome is
// final, nak with the policy's delay when it should be tried again.
func (p *Pusher) retryOne(ctx context.Context, m jetstream.Msg) {
	var t delivery.Task
	if err := json.Unmarshal(m.Data(), &t); err != nil {
		p.log.Error("pusher: malformed task", "err", err)
		p.settleTask(m, consume.Term)
		return
	}
	md, err := m.Metadata()
	if err != nil {
		p.settleTask(m, consume.Nak(0))
		return
	}
	// Queued by a partition with its back-off (a provider's Retry-After):
	// the first delivery only waits it out, without spending an attempt,
	// even when it comes at or after NotBefore (a backlog in the queue,
	// every pusher down a while, clocks): it is handed back at once, and
	// the attempt count below, which subtracts that delivery, stays exact.
	// Sent instead, every count after it was one short, and a task was
	// tried once more than its budget, its receipt one attempt short.
	// The cost is one immediate redelivery of a task already late. Also
	// on a later delivery: a task handed back unsent (a pusher stopping
	// with it buffered) is not sent before its time either; such a
	// delivery, counted by the broker but not subtracted here, costs one
	// attempt of the budget, as any stop does (never one too few).
	if wait := time.Until(time.UnixMilli(t.NotBefore)); t.NotBefore > 0 && (md.NumDelivered == 1 || wait > 0) {
		p.settleTask(m, consume.Nak(max(wait, 0)))
		return
	}
	attempt := t.PriorAttempts + int(md.NumDelivered)
	if t.NotBefore > 0 {
		attempt-- // the first delivery only waited
	}
	// The task may have waited in its lane: restart its ack wait now.
	_ = m.InProgress()
	// final records the outcome, and acks the task only once the broker
	// has stored the receipt (off the lane, so the device's next push need
	// not wait): a task is never settled without its outcome.
	final := func(o delivery.Outcome, provider, reason string) {
		p.metrics.outcomes.WithLabelValues(providerLabel(provider), string(o)).Inc()
		r := delivery.Receipt{
			Kind: delivery.KindOutcome, ChannelID: t.ChannelID, OpID: t.OpID, Seq: t.Seq, EntityType: t.Op.Kind(),
			EntityID: t.EntityID, AcceptedAt: t.AcceptedAt, At: p.now().UnixMilli(), DeliveryID: t.ID,
			DeviceKey: t.DeviceKey, Provider: provider, Outcome: o, Reason: reason, Attempts: attempt,
		}
		p.retrying.Add(1) // within retryOne's: drain waits for the receipt too
		p.laneWG.Go(func() {
			defer p.retrying.Add(-1)
			p.storeOutcome(ctx, m, r)
		})
	}

	// failed ends a try whose read failed: the task fails when the record
	// is unreadable, and waits here (parkAfterReadFailure) when the broker
	// did not answer.
	failed := func(what string, err error) {
		if unreadable(err) {
			final(delivery.Failed, "", what+": "+err.Error())
			return
		}
		p.log.Warn("pusher: retry's read failed; trying again", "read", what, "delivery", delivery.RedactID(t.ID), "err", err)
		p.parkAfterReadFailure(ctx, m)
	}
	rctx, cancel := readBound(ctx)
	env, err := p.ops.get(rctx, t.Seq)
	cancel()
	if err != nil {
		failed("the operation", err)
		return
	}
	if env == nil { // aged out of the log before it could be sent
		final(delivery.Expired, "", "operation no longer in the log")
		return
	}
	rctx, cancel = readBound(ctx)
	later, err := p.laterOfEvent(rctx, env, t.Seq)
	cancel()
	if err != nil {
		failed("the event's latest operation", err)
		return
	}
	if later > 0 {
		final(delivery.Expired, "", fmt.Sprintf("superseded by the event's later operation %d", later))
		return
	}
	// A retry may come minutes after its push was first tried: a device
	// that left the channel since (or left and joined again, which makes
	// the operation its history: the fan-out's rule, audience.At) is not
	// pushed. Read on the leader, as the route is: an unsubscribe through
	// any ingest replica counts.
	rctx, cancel = readBound(ctx)
	sub, subscribed, err := p.devices.Subscription(rctx, t.DeviceKey, t.ChannelID)
	cancel()
	if err != nil {
		failed("the device's subscription", err)
		return
	}
	if !subscribed || sub.AfterSeq >= t.Seq {
		final(delivery.Expired, "", "the device left the channel")
		return
	}
	// The route as the leader holds it, as the subscription: the device
	// may have been unbound, or its token rebound to another device, since
	// the push was first tried (the in-memory view may not hold that yet).
	rctx, cancel = readBound(ctx)
	dev, ok, err := p.devices.Device(rctx, t.DeviceKey)
	cancel()
	if err != nil {
		failed("the device's route", err)
		return
	}
	r, err := p.attempt(ctx, env, t.Seq, t.DeviceKey, dev, ok, nil)
	switch {
	case errors.Is(err, errStopping) || ctx.Err() != nil:
		// This attempt says nothing about the device. Hand the task back
		// at once (the broker counts the delivery: a stop costs a task
		// one attempt of its budget).
		p.settleTask(m, consume.Nak(0))
		return
	case err != nil:
		// Not sent (the push's inbox item was not stored, the token not
		// retired): not an attempt either.
		p.log.Warn("pusher: retry not done", "seq", t.Seq, "err", err)
		p.parkAfterReadFailure(ctx, m)
		return
	case r.Outcome == handedToRetry:
		if wait, again := p.cfg.Policy.Next(attempt, r.Res); again {
			p.metrics.retries.WithLabelValues(r.Provider).Inc()
			p.settleTask(m, consume.Nak(wait))
			return
		}
		final(delivery.Failed, r.Provider, "retry budget spent: "+r.Reason)
		return
	}
	final(r.Outcome, r.Provider, r.Reason)
}

// storeOutcome stores the outcome receipt r of the retry task m, then
// acks m. While the broker refuses the receipt (its stream full or
// unavailable), storeJSON tries again with back-off and the task stays
// held (kept alive, heldTasks), so the delivery is not made again: the
// task handed back, as before, was sent to the device again every second
// for as long as the receipt could not be stored. Stopping leaves the
// task unsettled, redelivered after its ack wait: at most one more push,
// as for any delivery in flight when a pusher stops. The receipt's
// message id makes a receipt stored twice (its first answer lost) count
// once.
func (p *Pusher) storeOutcome(ctx context.Context, m jetstream.Msg, r delivery.Receipt) {
	if err := p.storeJSON(ctx, streams.ReceiptSubject(r.ChannelID), r.MsgID(), r, "outcome receipt", p.metrics.receiptRetries); err != nil {
		p.held.release(m)
		return
	}
	p.settleTask(m, consume.Ack)
}

// laterOfEvent returns the sequence of a later operation of the event
// env (at seq) changed, or 0: for an operation of another kind too. A
// retried push of an event goes after the device's later pushes (a 429 or
// 5xx does not hold them back), and the app shows an event as its last
// push said: sent after the event's close, a retried create would show it
// open again. Each push of an event carries its whole state (status,
// message, severity), so a later one supersedes it and the retry is
// dropped. A Thing's push carries the change of its attrs, which a later
// push does not repeat: it is sent.
func (p *Pusher) laterOfEvent(ctx context.Context, env *ops.Envelope, seq uint64) (uint64, error) {
	if env.Op.Kind() != ops.KindEvent {
		return 0, nil
	}
	last, err := p.ops.stream.LastForSubject(ctx, streams.OpSubject(env.ChannelID, ops.KindEvent, env.EntityID))
	if err != nil {
		return 0, err
	}
	if last.Sequence > seq {
		return last.Sequence, nil
	}
	return 0, nil
}

// quietThings reports whether channelID asked for quiet thing updates
// (QuietThingUpdates) and is not exempted from it (ThingUpdateAlerts).
func (p *Pusher) quietThings(channelID string) bool {
	listed := func(list []string) bool {
		return slices.ContainsFunc(list, func(c string) bool { return c == "*" || c == channelID })
	}
	return listed(p.cfg.QuietThingUpdates) && !slices.Contains(p.cfg.ThingUpdateAlerts, channelID)
}

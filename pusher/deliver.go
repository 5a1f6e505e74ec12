package pusher

import (
	"context"
	"errors"
	"time"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// handedToRetry is the outcome an operation's partition records for a
// delivery it handed to the retry queue; the retry queue reports its end.
const handedToRetry delivery.Outcome = ""

// deliver is a worker's part in an operation's partition: one attempt at
// sending op to device. A final outcome is counted in the operation's
// summary; a 429, a 5xx or a timeout hands the delivery to the retry queue
// (PUSHGO_DELIVERIES) with the back-off the policy chose, so a failing
// device never holds up the operation or the devices after it.
func (p *Pusher) deliver(ctx context.Context, op *opRun, device string) {
	defer p.window.release(1)
	if op.ep.cancelled.Load() {
		op.abandon() // the partition moved on; its new epoch sends it
		return
	}
	dev, ok, _ := p.routes.Get(device)
	r, err := p.attempt(ctx, op.env, op.seq, device, dev, ok, op.tmpl)
	switch {
	case errors.Is(err, errStopping) || ctx.Err() != nil:
		op.abandon()
		return
	case err != nil:
		p.log.Warn("pusher: delivery not done; queued for retry", "seq", op.seq, "err", err)
		p.toRetry(ctx, op, device, 0, time.Second)
		return
	case r.Outcome == handedToRetry:
		if wait, again := p.cfg.Policy.Next(1, r.Res); again {
			p.metrics.retries.WithLabelValues(r.Provider).Inc()
			p.toRetry(ctx, op, device, 1, wait)
			return
		}
		r.Outcome, r.Reason = delivery.Failed, "retry budget spent: "+r.Reason
	}
	p.metrics.outcomes.WithLabelValues(providerLabel(r.Provider), string(r.Outcome)).Inc()
	op.ended(r.Outcome, r.Provider, r.Reason, device)
}

// toRetry stores a retry task for (op, device), to be sent no sooner than
// wait from now, trying until the broker has it or the pusher stops (then
// the operation is not recorded and its partition's next owner redoes it).
func (p *Pusher) toRetry(ctx context.Context, op *opRun, device string, prior int, wait time.Duration) {
	t := delivery.Task{
		ID: delivery.ID(op.seq, device), Seq: op.seq, ChannelID: op.env.ChannelID, OpID: op.env.OpID, Op: op.env.Op,
		EntityID: op.env.EntityID, DeviceKey: device, AcceptedAt: op.env.AcceptedAt, PriorAttempts: prior,
		NotBefore: p.now().Add(wait).UnixMilli(),
	}
	if p.storeJSON(ctx, streams.DeliverySubject(t.ChannelID, device), t.ID, t, "retry task") != nil {
		op.abandon()
		return
	}
	op.ended(handedToRetry, "", "", device)
}

func providerLabel(p string) string {
	if p == "" {
		return "none"
	}
	return p
}

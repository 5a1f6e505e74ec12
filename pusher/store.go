package pusher

import (
	"context"
	"errors"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/schemas/delivery"
)

// storeJSON publishes v, as JSON, on subject with the message id msgID,
// and tries again with back-off until the broker has stored it: what a
// partition hands on (a retry task, a batch of summaries) must be stored
// before the operations it stands for may be acknowledged. It returns an
// error only when v does not encode or ctx ends first; then the
// operations are not acknowledged and their partition's next owner redoes
// them. what names the record in the log line of a failed attempt, and
// retried, when set, counts those attempts.
func (p *Pusher) storeJSON(ctx context.Context, subject, msgID string, v any, what string, retried ...prometheus.Counter) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = b
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.js.PublishMsg(pctx, msg, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return err // no attempt will be taken
		}
		p.log.Warn("pusher: "+what+" not stored; trying again", "msg_id", delivery.LogMsgID(msgID), "err", err)
		for _, c := range retried {
			c.Inc()
		}
		if err := cas.Backoff(ctx, attempt, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

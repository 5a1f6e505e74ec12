package pusher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/schemas/delivery"
	schemadevices "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ops"
)

// attemptResult is what one attempt at a delivery came to.
type attemptResult struct {
	// Outcome is final, or "" when the provider asked for another try
	// (Res says when).
	Outcome  delivery.Outcome
	Provider string
	Reason   string
	Res      sender.Result
}

// errStopping: the pusher stopped during the send, which says nothing
// about the device.
var errStopping = errors.New("pusher: stopping")

// attempt makes one attempt at delivering env (at seq) to the device key
// whose route is dev (ok false: the device has none). It returns an error
// only when it could not do its part (the inbox or the token retirement
// was not stored, or the pusher is stopping): the delivery is then tried
// again later.
func (p *Pusher) attempt(ctx context.Context, env *ops.Envelope, seq uint64, key string, dev schemadevices.Device, ok bool) (attemptResult, error) {
	if !ok || !dev.HasRoute() {
		return attemptResult{Outcome: delivery.NoRoute, Reason: "device has no push route"}, nil
	}
	prov := payload.Provider(dev.ChannelType)
	var opts []payload.Option
	if p.quietThings(env.ChannelID) {
		opts = append(opts, payload.QuietThingUpdates())
	}
	if p.cfg.PublicBaseURL != "" {
		opts = append(opts, payload.BaseURL(p.cfg.PublicBaseURL))
	}
	n, err := payload.Build(*env, seq, key, prov, dev.ProviderToken, p.now(), opts...)
	switch {
	case errors.Is(err, payload.ErrExpired):
		return attemptResult{Outcome: delivery.Expired, Provider: string(prov), Reason: "ttl passed"}, nil
	case err != nil:
		return attemptResult{Outcome: delivery.Failed, Provider: string(prov), Reason: "build: " + err.Error()}, nil
	}
	n.Platform = dev.Platform
	if n.Oversized {
		if err := p.inbox.put(ctx, key, seq, n.Full); err != nil {
			return attemptResult{}, err
		}
	}
	s := p.senders[prov]
	if s == nil {
		s = sender.Unconfigured(string(prov), "provider "+string(prov)+" is not configured")
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	start := time.Now()
	res := s.Send(sctx, n)
	cancel()
	if ctx.Err() != nil {
		return attemptResult{}, errStopping
	}
	p.metrics.providerSeconds.WithLabelValues(string(prov)).Observe(time.Since(start).Seconds())
	r := attemptResult{Provider: string(prov), Res: res}
	switch res.Outcome {
	case sender.Sent:
		p.metrics.acceptToProvider.Observe(float64(p.now().UnixMilli()-env.AcceptedAt) / 1000)
		r.Outcome, r.Reason = delivery.Sent, res.ProviderID
	case sender.RetireToken:
		if _, err := p.devices.RetireToken(ctx, dev.ChannelType, dev.ProviderToken, p.now()); err != nil {
			return attemptResult{}, fmt.Errorf("retire token of %s: %w", key, err)
		}
		p.metrics.retired.WithLabelValues(string(prov)).Inc()
		r.Outcome, r.Reason = delivery.Retired, res.Reason
	case sender.Retry:
		r.Reason = res.Reason
	default:
		r.Outcome, r.Reason = delivery.Failed, res.Reason
	}
	return r, nil
}

package pusher

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// whose route is dev (ok false: the device has none), cutting the
// notification from the operation's templates when it has them (nil: the
// retry queue, which builds per device). It returns an error
// only when it could not do its part (the inbox or the token retirement
// was not stored, or the pusher is stopping): the delivery is then tried
// again later.
func (p *Pusher) attempt(ctx context.Context, env *ops.Envelope, seq uint64, key string, dev schemadevices.Device, ok bool, tmpl *templates) (attemptResult, error) {
	if !ok || !dev.HasRoute() {
		return attemptResult{Outcome: delivery.NoRoute, Reason: "device has no push route"}, nil
	}
	prov := payload.Provider(dev.ChannelType)
	now := p.now()
	var n payload.Notification
	cut, err := false, error(nil)
	if t := tmpl.get(p, env, seq, prov, now); t != nil {
		n, cut, err = t.For(key, dev.ProviderToken, dev.Platform, now)
	}
	if !cut {
		n, err = payload.Build(*env, seq, key, prov, dev.ProviderToken, now, p.buildOptions(env.ChannelID)...)
	}
	switch {
	case errors.Is(err, payload.ErrExpired):
		return attemptResult{Outcome: delivery.Expired, Provider: string(prov), Reason: "ttl passed"}, nil
	case err != nil:
		return attemptResult{Outcome: delivery.Failed, Provider: string(prov), Reason: "build: " + err.Error()}, nil
	}
	n.Platform = dev.Platform
	// The push's item goes to the device's inbox (see inbox). An oversized
	// push's before the send: its wake-up makes the app fetch the item at
	// once. Any other's beside the send, its answer read off the worker
	// (inbox.runAnswers): waiting for the broker before each send put its
	// write in front of every push, and waiting after it held the device's
	// next push (make bench's 500 ops/s row: p99 408 and 485 ms, and 91
	// and 255 ms, against 25 ms without the inbox).
	item, err := payload.InboxItem(n)
	if err != nil {
		return attemptResult{Outcome: delivery.Failed, Provider: string(prov), Reason: "inbox item: " + err.Error()}, nil
	}
	if n.Oversized {
		err = p.inbox.put(ctx, key, seq, item)
	} else {
		err = p.inbox.putAsync(ctx, key, seq, item)
	}
	if err != nil {
		if ctx.Err() != nil {
			return attemptResult{}, errStopping
		}
		return attemptResult{}, err
	}
	if n.InboxOnly {
		// In the inbox for the device's next pull; a push would alert.
		return attemptResult{Outcome: delivery.Sent, Provider: string(prov), Reason: "inbox only: a background update is not pushed to this app"}, nil
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
		// From this device only: a token bound to another device since
		// the send (the app registered it again there) is alive there.
		if _, err := p.devices.RetireTokenOf(ctx, dev.ChannelType, dev.ProviderToken, key, p.now()); err != nil {
			return attemptResult{}, fmt.Errorf("retire token of %s: %w", schemadevices.KeyRef(key), err)
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

// buildOptions are the payload options of channelID's pushes.
func (p *Pusher) buildOptions(channelID string) []payload.Option {
	var opts []payload.Option
	if p.quietThings(channelID) {
		opts = append(opts, payload.QuietThingUpdates())
	}
	if p.cfg.PublicBaseURL != "" {
		opts = append(opts, payload.BaseURL(p.cfg.PublicBaseURL))
	}
	return opts
}

// templates are an operation's notification templates, built at its
// first device and shared by the others: only APNs has one (the FCM SDK
// encodes the data map itself). A sync.Once, not a mutex: every worker
// sending the operation asks for it.
type templates struct {
	once sync.Once
	apns *payload.Template // nil: none could be built
}

// get returns the template of prov, nil if there is none (ts nil, another
// provider, or the build failed: the caller builds per device and meets
// the error there).
func (ts *templates) get(p *Pusher, env *ops.Envelope, seq uint64, prov payload.Provider, now time.Time) *payload.Template {
	if ts == nil || prov != payload.APNs {
		return nil
	}
	ts.once.Do(func() {
		ts.apns, _ = payload.NewTemplate(*env, seq, prov, now, p.buildOptions(env.ChannelID)...)
	})
	return ts.apns
}

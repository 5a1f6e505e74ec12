package pusher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/pusher/audience"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/schemas/streams"
)

// Config configures a Pusher. Zero fields take the documented defaults.
type Config struct {
	// Senders by provider. A provider without a sender is reported at
	// start, and its deliveries fail visibly with a not_configured receipt.
	Senders map[payload.Provider]sender.Sender
	// Policy is the per-device retry policy (default sender.DefaultPolicy).
	Policy sender.Policy
	// Lanes is the number of concurrent sends: one device's tasks go
	// through one lane, in order. Default 512.
	Lanes int
	// MaxInFlight bounds the tasks taken and not yet settled. Default 20,000.
	MaxInFlight int
	// SendTimeout bounds one provider call, SDK retries included.
	// Default 10s.
	SendTimeout time.Duration
	// ThingUpdateAlerts lists the channels whose thing updates are visible
	// alerts rather than background pushes; "*" means every channel.
	ThingUpdateAlerts []string
	// Fanout and Send select the halves this process runs (both by default).
	NoFanout, NoSend bool
	Now              func() time.Time
	Logger           *slog.Logger
}

func (c *Config) defaults() {
	if c.Lanes <= 0 {
		c.Lanes = 512
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 20_000
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Pusher runs the fan-out and the sender workers. The caller MUST call
// Close.
type Pusher struct {
	cfg      Config
	log      *slog.Logger
	js       jetstream.JetStream
	devices  *devices.Registry
	audience *audience.Audience
	senders  map[payload.Provider]sender.Sender
	ops      *opCache
	inbox    inbox
	metrics  *metrics
	now      func() time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup // fan-out and send loops
	lanes  sync.WaitGroup // send lanes
	errMu  sync.Mutex
	err    error

	backlog atomic.Uint64 // tasks pending or in flight, sampled
}

// Start binds the streams and buckets (which streams.Ensure created) and
// starts the loops.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Pusher, error) {
	cfg.defaults()
	// The fan-out of one operation to 10,000 devices publishes 10,000
	// tasks asynchronously: allow that many in flight.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(32_768))
	if err != nil {
		return nil, err
	}
	opsStream, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		return nil, fmt.Errorf("pusher: stream %s: %w", streams.Ops, err)
	}
	reg, err := devices.Open(ctx, js, devices.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("pusher: devices: %w", err)
	}
	kv, err := js.KeyValue(ctx, streams.InboxBucket)
	if err != nil {
		return nil, fmt.Errorf("pusher: inbox: %w", err)
	}
	var aud *audience.Audience
	if !cfg.NoFanout {
		if aud, err = audience.Open(ctx, js, cfg.Logger); err != nil {
			return nil, fmt.Errorf("pusher: audience: %w", err)
		}
	}
	for _, prov := range []payload.Provider{payload.APNs, payload.FCM} {
		if cfg.Senders[prov] == nil {
			cfg.Logger.Warn("pusher: provider not configured; its deliveries will fail with not_configured receipts", "provider", prov)
		}
	}
	p := &Pusher{cfg: cfg, log: cfg.Logger, js: js, devices: reg, audience: aud, senders: cfg.Senders, ops: newOpCache(opsStream, 4096),
		inbox: inbox{kv: kv}, metrics: newMetrics(), now: cfg.Now}
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	run := func(name string, loop func(context.Context) error) {
		p.wg.Go(func() {
			if err := loop(rctx); err != nil && rctx.Err() == nil {
				p.log.Error("pusher: loop stopped", "loop", name, "err", err)
				p.errMu.Lock()
				p.err = errors.Join(p.err, fmt.Errorf("%s: %w", name, err))
				p.errMu.Unlock()
			}
		})
	}
	if !cfg.NoFanout {
		run("fanout", p.fanout)
	}
	if !cfg.NoSend {
		run("send", p.send)
		run("backlog", p.sampleBacklog)
	}
	return p, nil
}

// Err is the error that stopped a loop, or nil.
func (p *Pusher) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// Close stops the loops and waits for in-flight sends. Tasks taken but not
// settled are redelivered to a replica after their ack wait: nothing is lost.
func (p *Pusher) Close() error {
	p.cancel()
	p.wg.Wait()
	p.lanes.Wait()
	if p.audience != nil {
		p.audience.Close()
	}
	p.devices.Close()
	return nil
}

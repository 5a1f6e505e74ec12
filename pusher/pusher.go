package pusher

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/broker/kvview"
	schemadevices "github.com/pushgo/gateway/schemas/devices"

	"golang.org/x/sync/errgroup"

	"github.com/pushgo/gateway/broker/consume"

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
	// QuietThingUpdates lists the channels whose thing updates go as
	// background pushes instead of PushGo's alerts; "*" means every
	// channel. ThingUpdateAlerts lists channels exempted from it (alerts
	// win), so "quiet everywhere but these" can be said.
	QuietThingUpdates []string
	ThingUpdateAlerts []string
	// PublicBaseURL, when set, is sent as base_url in every push: where the
	// Apple app pulls an oversized item from (as PushGo's
	// PUSHGO_PUBLIC_BASE_URL). An absolute http(s) URL.
	PublicBaseURL string
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

// checkBaseURL rejects a public base URL the apps could not use: base_url
// must be an absolute http(s) URL (the Apple app validates it as a server
// URL and ignores it otherwise), short enough to leave a wake-up room.
func checkBaseURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || len(u) > 512 {
		return fmt.Errorf("pusher: public base URL must be an absolute http(s) URL of at most 512 bytes, got %q", u)
	}
	return nil
}

// Pusher runs the fan-out and the sender workers. The caller MUST call
// Close.
type Pusher struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	devices *devices.Registry
	routes  *kvview.Map[schemadevices.Device] // the devices bucket in memory; nil with NoSend
	// devicesStream is the devices bucket's stream, whose last revision an
	// expansion gives its tasks (delivery.Task.RoutesRev).
	devicesStream jetstream.Stream
	audience      *audience.Audience
	senders       map[payload.Provider]sender.Sender
	ops           *opCache
	inbox         inbox
	metrics       *metrics
	now           func() time.Time

	fanoutLoop *consume.Loop        // nil with NoFanout
	sendLoop   *consume.Loop        // nil with NoSend
	inflight   chan *expansion      // expanded operations awaiting their acks
	lanes      []chan jetstream.Msg // one device's tasks go through one lane
	laneSeed   maphash.Seed
	laneWG     sync.WaitGroup // send lanes and receipt waits

	cancel context.CancelFunc
	done   chan struct{} // closed when the loops have ended
	errMu  sync.Mutex
	err    error

	closeOnce sync.Once

	backlog atomic.Uint64 // tasks pending or in flight, sampled
}

// Start binds the streams and buckets (which streams.Ensure created) and
// starts the loops.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Pusher, error) {
	cfg.defaults()
	if err := checkBaseURL(cfg.PublicBaseURL); err != nil {
		return nil, err
	}
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
	devicesStream, err := js.Stream(ctx, "KV_"+streams.DevicesBucket)
	if err != nil {
		return nil, fmt.Errorf("pusher: devices bucket: %w", err)
	}
	reg, err := devices.Open(ctx, js, devices.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("pusher: devices: %w", err)
	}
	kv, err := js.KeyValue(ctx, streams.InboxBucket)
	if err != nil {
		return nil, fmt.Errorf("pusher: inbox: %w", err)
	}
	var routes *kvview.Map[schemadevices.Device]
	if !cfg.NoSend {
		// The senders read each device's push route from memory rather than
		// with one bucket read per push (about 28 µs of a push, measured).
		if routes, err = kvview.OpenMap(ctx, js, streams.DevicesBucket, devices.Decode, kvview.Options{Logger: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("pusher: device routes: %w", err)
		}
	}
	var aud *audience.Audience
	if !cfg.NoFanout {
		if aud, err = audience.Open(ctx, js, cfg.Logger); err != nil {
			if routes != nil {
				routes.Close()
			}
			return nil, fmt.Errorf("pusher: audience: %w", err)
		}
	}
	for _, prov := range []payload.Provider{payload.APNs, payload.FCM} {
		if cfg.Senders[prov] == nil {
			cfg.Logger.Warn("pusher: provider not configured; its deliveries will fail with not_configured receipts", "provider", prov)
		}
	}
	p := &Pusher{cfg: cfg, log: cfg.Logger, js: js, devices: reg, routes: routes, devicesStream: devicesStream, audience: aud, senders: cfg.Senders, ops: newOpCache(opsStream, 4096),
		inbox: inbox{kv: kv}, metrics: newMetrics(), now: cfg.Now}
	p.inflight = make(chan *expansion, 256)
	p.laneSeed = maphash.MakeSeed()
	if !cfg.NoFanout {
		if p.fanoutLoop, err = consume.New(js, consume.Config{Stream: streams.Ops, Consumer: fanoutConsumer(), Resume: resumeFanout,
			Handler: p.expandOne, PullMaxMessages: 256, Logger: cfg.Logger}); err != nil {
			p.closeRegistries()
			return nil, err
		}
	}
	if !cfg.NoSend {
		if p.sendLoop, err = consume.New(js, consume.Config{Stream: streams.Deliveries, Consumer: p.sendConsumer(),
			Handler: p.toLane, PullMaxMessages: min(cfg.MaxInFlight, 2000), Logger: cfg.Logger}); err != nil {
			p.closeRegistries()
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	var g errgroup.Group
	run := func(name string, loop func(context.Context) error) {
		g.Go(func() error {
			err := loop(rctx)
			if err != nil && rctx.Err() == nil {
				p.log.Error("pusher: loop stopped for good", "loop", name, "err", err)
				p.errMu.Lock()
				p.err = errors.Join(p.err, fmt.Errorf("%s: %w", name, err))
				p.errMu.Unlock()
				cancel() // one loop that cannot go on stops the service
				return err
			}
			return nil
		})
	}
	if !cfg.NoFanout {
		run("fanout", p.fanout)
	}
	if !cfg.NoSend {
		run("send", p.send)
		run("backlog", p.sampleBacklog)
	}
	go func() {
		_ = g.Wait()
		close(p.done)
	}()
	return p, nil
}

// Run waits until ctx ends, then stops the pusher (Close) and returns nil;
// or until a loop fails for good, then stops it and returns that error.
// Transient failures (broker reconnecting, a consumer deleted) do not end
// Run: the loops recreate what they need.
func (p *Pusher) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-p.done:
	}
	_ = p.Close()
	return p.Err()
}

// Ready reports nil while every loop of the pusher runs, or names the
// loops that do not (their consumer is being recreated).
func (p *Pusher) Ready() error {
	var errs []error
	for _, l := range []*consume.Loop{p.fanoutLoop, p.sendLoop} {
		if l != nil && !l.Running() {
			errs = append(errs, fmt.Errorf("pusher: consumer %s not running: %v", l.Name(), l.Err()))
		}
	}
	if p.audience != nil {
		if err := p.audience.Err(); err != nil {
			errs = append(errs, fmt.Errorf("pusher: audience: %w", err))
		}
	}
	if p.routes != nil {
		if err := p.routes.Watch().Err(); err != nil {
			errs = append(errs, fmt.Errorf("pusher: device routes: %w", err))
		}
	}
	if err := p.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
	p.closeOnce.Do(func() {
		p.cancel()
		<-p.done
		p.laneWG.Wait()
		p.closeRegistries()
	})
	return nil
}

func (p *Pusher) closeRegistries() {
	if p.audience != nil {
		p.audience.Close()
	}
	if p.routes != nil {
		p.routes.Close()
	}
	p.devices.Close()
}

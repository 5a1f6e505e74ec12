package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/pushgo/gateway/ingest/limits"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/consume"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/ingest/console"
	"github.com/pushgo/gateway/ingest/readfwd"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/pusher"
)

// service is one of the selected services as the supervisor sees it: Run
// blocks until ctx ends (then stops the service and returns nil) or the
// service cannot go on (then returns why); Close stops it when it was
// never run.
type service struct {
	name  string
	run   func(ctx context.Context) error
	close func() error
}

// Gateway is a started pushgo process. Serve runs it; a caller that does
// not call Serve MUST call Close.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	broker   *broker.Embedded // nil with an external broker
	nc       *nats.Conn
	ingest   *ingest.Service
	proj     *projector.Projector
	push     *pusher.Pusher
	services []service // in start order; stopped in reverse
	// releaseSlot frees the projection's directory (projectionDir).
	releaseSlot func() error
	ops         *opsServer
	http        *http.Server
	ln          net.Listener
	served      chan error
	// streamChecks counts the broker streams' checks that found them
	// unchanged (streamwatch.go).
	streamChecks atomic.Int64
}

// Start starts the broker (unless external), the selected services and the
// HTTP listener (/healthz, /readyz and /metrics for every target, and the
// API when the process runs ingest), and returns once all of them accept
// work. On error everything started is stopped again.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log}
	if err := g.start(ctx); err != nil {
		_ = g.Close(context.Background())
		return nil, err
	}
	return g, nil
}

func (g *Gateway) start(ctx context.Context) error {
	cfg, log := g.cfg, g.log
	if err := cfg.checkPortsFree(); err != nil {
		return err
	}
	// The broker, a connection with the target's credentials, and the
	// streams and buckets (brokerconn.go).
	if err := g.connectBroker(ctx); err != nil {
		return err
	}
	role, err := broker.ParseRole(cfg.Target)
	if err != nil {
		return err
	}
	if err := g.watchStreams(ctx, role); err != nil {
		return err
	}
	g.ops = newOpsServer(g.nc, g.embeddedStoreLimit(), g.embeddedDisk(), g.Projector)
	if g.broker != nil {
		// A full disk under the store: measured for /readyz, /metrics and
		// the writes, and JetStream restarted once it has space again
		// (broker.WatchDisk); the process ends when that cannot clear it.
		b := g.broker
		g.services = append(g.services, service{"broker", b.WatchDisk, func() error { return nil }})
	}
	if cfg.Token != "" {
		sum := sha256.Sum256([]byte(cfg.Token))
		g.ops.token = &sum
		throttle := limits.Off()
		throttle.AuthFailuresPerMinute = cfg.Limits.AuthFailuresPerMinute
		g.ops.authFails = limits.New(throttle, limits.Options{})
	}
	// A process that appends the operations and folds them hands them from
	// the one to the other (consume.LocalFeed) rather than have the broker
	// deliver each back to it.
	var localOps *consume.LocalFeed
	if cfg.Runs("projector") && cfg.Runs("ingest") {
		localOps = consume.NewLocalFeed(0)
	}
	if cfg.Runs("projector") {
		dir, release, err := projectionDir(cfg.DataDir, cfg.ProjectionSlots)
		if err != nil {
			return fmt.Errorf("start projector: %w", err)
		}
		g.releaseSlot = release
		g.proj, err = projector.Start(ctx, g.nc, projector.Config{
			Dir: dir, Rebuild: cfg.Rebuild, Serve: true, Logger: log.With("component", "projector"),
			BlockCacheBytes: cfg.ProjectionCache, LocalOps: localOps, SelectionCacheBytes: cfg.selectionCacheBytes(),
		})
		if err != nil {
			return fmt.Errorf("start projector: %w", err)
		}
		g.services = append(g.services, service{"projector", g.proj.Run, g.proj.Close})
		p := g.proj
		if err := g.ops.add("projector", func(context.Context) (map[string]any, error) {
			return map[string]any{"projector_applied": p.Applied(), "projector_lag": p.Lag(),
				"projector_receipts_applied": p.ReceiptsApplied()}, p.Ready()
		}, p.Collectors()...); err != nil {
			return err
		}
	}
	if cfg.Runs("pusher") {
		senders, err := buildSenders(cfg, log.With("component", "pusher"))
		if err != nil {
			return err
		}
		quiet, alerts, err := cfg.thingUpdateChannels()
		if err != nil {
			return err
		}
		g.push, err = pusher.Start(ctx, g.nc, pusher.Config{Senders: senders, ThingUpdateAlerts: alerts,
			QuietThingUpdates: quiet, PublicBaseURL: cfg.PublicBaseURL,
			Partitions: cfg.DeliveryPartitions, NewPartitions: cfg.NewDeliveryPartitions(), Failover: cfg.DeliveryFailover, Logger: log.With("component", "pusher")})
		if err != nil {
			return fmt.Errorf("start pusher: %w", err)
		}
		g.services = append(g.services, service{"pusher", g.push.Run, g.push.Close})
		p := g.push
		if err := g.ops.add("pusher", func(context.Context) (map[string]any, error) { return nil, p.Ready() }, p.Collectors()...); err != nil {
			return err
		}
	}
	if cfg.Runs("ingest") {
		var local readfwd.Local // not a nil *Projector in an interface
		if g.proj != nil {
			local = g.proj
		}
		var appended func(uint64, string, []byte)
		if localOps != nil {
			appended = localOps.Offer
		}
		g.ingest, err = ingest.Start(ctx, g.nc, ingest.Config{
			LocalReads: local, Appended: appended,
			Token: cfg.Token, Streams: cfg.StreamOptions(), AppendTimeout: cfg.AppendTimeout, Disk: g.embeddedDisk(), Logger: log.With("component", "ingest"),
			MaxIntegrationRequests: cfg.MaxIntegrationRequests, MetadataValueMax: cfg.MetadataValueMax, Limits: cfg.Limits,
			MaxStreams: cfg.MaxStreams, MaxStreamsPerChannel: cfg.MaxStreamsPerChannel, MaxStreamsPerClient: cfg.MaxStreamsPerClient,
			AlertmanagerAbsentAfter: absentAfter(cfg.AlertmanagerAbsentAfter), AlertmanagerExpireAfter: cfg.AlertmanagerExpireAfter,
		})
		if err != nil {
			return fmt.Errorf("start ingest: %w", err)
		}
		s := g.ingest
		g.services = append(g.services, service{"ingest", s.Run, func() error { s.Close(); return nil }})
		if err := g.ops.add("ingest", s.Ready, s.Collectors()...); err != nil {
			return err
		}
		// The console is served in front of PUSHGO_TOKEN: its assets hold
		// no data, and on a private gateway the page asks for the token.
		g.ops.next = console.Handler(s.Handler())
	}
	g.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	g.http = &http.Server{
		Handler:           g.ops,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if g.ingest != nil {
		g.http.RegisterOnShutdown(g.ingest.EndStreams)
	}
	g.served = make(chan error, 1)
	go func() { g.served <- g.http.Serve(g.ln) }()
	log.Info("pushgo serving", "http", g.ln.Addr().String(), "target", cfg.Target, "private", cfg.Token != "")
	return nil
}

// Addr is the HTTP listen address actually bound (useful with port 0).
func (g *Gateway) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// Projector is the in-process projector, or nil.
func (g *Gateway) Projector() *projector.Projector { return g.proj }

// NATSURL is the embedded broker's client URL ("" if not listening or external).
func (g *Gateway) NATSURL() string {
	if g.broker == nil {
		return ""
	}
	return g.broker.ClientURL()
}

// Serve supervises the started services until ctx ends or one of them
// cannot go on, then shuts down: the HTTP server first (in-flight requests
// finish within 10 seconds), then the services, the connection and the
// broker. It returns nil after a clean stop, or the error of the service
// (named) or HTTP server that ended the process.
func (g *Gateway) Serve(ctx context.Context) error {
	svcCtx, stopServices := context.WithCancel(context.Background())
	defer stopServices()
	group, groupCtx := errgroup.WithContext(svcCtx)
	for _, s := range g.services {
		group.Go(func() error {
			if err := s.run(groupCtx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	var httpErr error
	select {
	case <-ctx.Done():
	case <-groupCtx.Done(): // a service failed for good
	case httpErr = <-g.served:
		g.served = nil
		httpErr = fmt.Errorf("http serve: %w", httpErr)
	}
	g.log.Info("pushgo shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.shutdownHTTP(sctx)
	if g.ops != nil {
		g.ops.closeChecks() // they ask the services stopped next
	}
	stopServices()
	err = errors.Join(group.Wait(), httpErr, err)
	g.services = nil // stopped by their Run
	return errors.Join(err, g.Close(sctx))
}

func (g *Gateway) shutdownHTTP(ctx context.Context) error {
	if g.http == nil || g.served == nil {
		return nil
	}
	var errs []error
	if err := g.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := <-g.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("http serve: %w", err))
	}
	g.served = nil
	return errors.Join(errs...)
}

// Close stops accepting requests, lets in-flight ones finish within ctx,
// then stops the services (in reverse start order), the connection and
// the broker. It is safe on a partly started gateway and after Serve.
func (g *Gateway) Close(ctx context.Context) error {
	errs := []error{g.shutdownHTTP(ctx)}
	if g.ops != nil {
		g.ops.closeChecks() // they ask the services closed below
	}
	for i := len(g.services) - 1; i >= 0; i-- {
		if err := g.services[i].close(); err != nil {
			errs = append(errs, fmt.Errorf("%s close: %w", g.services[i].name, err))
		}
	}
	g.services = nil
	if g.releaseSlot != nil {
		if err := g.releaseSlot(); err != nil {
			errs = append(errs, fmt.Errorf("projection slot: %w", err))
		}
		g.releaseSlot = nil
	}
	if g.nc != nil {
		g.nc.Close()
		g.nc = nil
	}
	if g.broker != nil {
		g.broker.Shutdown()
		g.broker = nil
	}
	return errors.Join(errs...)
}

// Run starts the gateway and serves until ctx ends or a service fails for
// good.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	g, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return g.Serve(ctx)
}

// absentAfter is the ingest setting of PUSHGO_ALERTMANAGER_ABSENT_AFTER,
// whose 0 means at once (ingest's 0 takes the default).
func absentAfter(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/pushgo/gateway/broker/provision"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/pusher"
)

// Gateway is a running pushgo process. The caller MUST call Close.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	broker *broker.Embedded // nil with an external broker
	nc     *nats.Conn
	ingest *ingest.Service
	proj   *projector.Projector
	push   *pusher.Pusher
	http   *http.Server
	ln     net.Listener
	served chan error
}

// Start starts the broker (unless external), the selected services and the
// HTTP listener, and returns once all of them accept work.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (g *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g = &Gateway{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			g.Close(context.Background())
		}
	}()
	if cfg.NATSURL == "" {
		g.broker, err = broker.Start(broker.Config{
			Dir: filepath.Join(cfg.DataDir, "jetstream"), Listen: cfg.NATSListen, Sync: cfg.Sync,
			MaxStore: cfg.MaxStore, MaxMemory: cfg.MaxMemory, Logger: log.With("component", "nats"),
		})
		if err != nil {
			return nil, fmt.Errorf("start embedded broker: %w", err)
		}
		g.nc, err = g.broker.Connect(nats.MaxReconnects(-1))
		log.Info("embedded broker started", "dir", filepath.Join(cfg.DataDir, "jetstream"), "client_url", g.broker.ClientURL(), "sync", cfg.Sync.String())
	} else {
		g.nc, err = nats.Connect(cfg.NATSURL, nats.Name("pushgo"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to broker: %w", err)
	}
	js, err := jetstream.New(g.nc)
	if err != nil {
		return nil, err
	}
	// Every service can be the first against a fresh broker.
	if err := provision.Ensure(ctx, js, cfg.StreamOptions()); err != nil {
		return nil, err
	}
	if cfg.Runs("projector") {
		g.proj, err = projector.Start(ctx, g.nc, projector.Config{
			Dir: filepath.Join(cfg.DataDir, "projection"), Rebuild: cfg.Rebuild, Serve: true, Logger: log.With("component", "projector"),
		})
		if err != nil {
			return nil, fmt.Errorf("start projector: %w", err)
		}
	}
	if cfg.Runs("pusher") {
		senders, err := buildSenders(cfg, log.With("component", "pusher"))
		if err != nil {
			return nil, err
		}
		g.push, err = pusher.Start(ctx, g.nc, pusher.Config{Senders: senders, ThingUpdateAlerts: splitList(cfg.ThingUpdateAlerts),
			Logger: log.With("component", "pusher")})
		if err != nil {
			return nil, fmt.Errorf("start pusher: %w", err)
		}
	}
	if !cfg.Runs("ingest") {
		log.Info("pushgo running", "target", cfg.Target)
		return g, nil
	}
	g.ingest, err = ingest.Start(ctx, g.nc, ingest.Config{
		Token: cfg.Token, Streams: cfg.StreamOptions(), AppendTimeout: cfg.AppendTimeout, Logger: log.With("component", "ingest"),
		MaxIntegrationRequests: cfg.MaxIntegrationRequests,
	})
	if err != nil {
		return nil, fmt.Errorf("start ingest: %w", err)
	}
	if g.proj != nil {
		if err := g.ingest.HTTP().RegisterMetrics(g.proj.Collectors()...); err != nil {
			return nil, err
		}
	}
	if g.push != nil {
		if err := g.ingest.HTTP().RegisterMetrics(g.push.Collectors()...); err != nil {
			return nil, err
		}
	}
	g.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	g.http = &http.Server{
		Handler:           g.ingest.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	g.served = make(chan error, 1)
	go func() { g.served <- g.http.Serve(g.ln) }()
	log.Info("pushgo serving", "http", g.ln.Addr().String(), "target", cfg.Target, "private", cfg.Token != "")
	return g, nil
}

// Addr is the HTTP listen address actually bound (useful with port 0);
// empty when this process runs no ingest.
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

// Close stops accepting requests, lets in-flight ones finish within ctx,
// then stops the services and the broker, in that order.
func (g *Gateway) Close(ctx context.Context) error {
	var errs []error
	if g.http != nil {
		if err := g.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if err := <-g.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http serve: %w", err))
		}
	}
	if g.ingest != nil {
		g.ingest.Close()
	}
	if g.push != nil {
		_ = g.push.Close()
	}
	if g.proj != nil {
		if err := g.proj.Close(); err != nil {
			errs = append(errs, fmt.Errorf("projector close: %w", err))
		}
	}
	if g.nc != nil {
		g.nc.Close()
	}
	if g.broker != nil {
		g.broker.Shutdown()
	}
	return errors.Join(errs...)
}

// Run starts the gateway and serves until ctx ends, then shuts down
// gracefully within 10 seconds.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	g, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	var served <-chan error = g.served
	if served == nil {
		served = make(chan error) // no HTTP: wait for ctx only
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		g.served <- err // let Close see it
	}
	log.Info("pushgo shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.Close(sctx)
}

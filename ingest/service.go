// Package ingest is the write side of the gateway: the HTTP front, the
// channel registry view and the operation writer, composed into a Service.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/provision"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/broker/storage"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/compat"
	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/inbox"
	"github.com/pushgo/gateway/ingest/integrations"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/ingest/livestream"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/ingest/readfwd"
	"github.com/pushgo/gateway/ingest/timeouts"
	schemadevices "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Config configures the ingest service.
type Config struct {
	// Token is PUSHGO_TOKEN: empty means a public gateway.
	Token string
	// Streams are the stream options ingest ensures at start.
	Streams streams.Options
	// AppendTimeout bounds one append (default 5s).
	AppendTimeout time.Duration
	// AlertmanagerAbsentAfter is alerts.Options.AbsentAfter: 0 takes its
	// default (1 minute), a negative value closes at once.
	AlertmanagerAbsentAfter time.Duration
	// AlertmanagerExpireAfter is integrations.Deps.AlertmanagerExpireAfter
	// (0: never).
	AlertmanagerExpireAfter time.Duration
	// AlertKeysKeep is alerts.Options.Keep: how long the alert key of a
	// closed Event is kept after its close. 0: Streams.Retention
	// (PUSHGO_RETENTION).
	AlertKeysKeep time.Duration
	// AlertKeysSweepEvery is alerts.Options.SweepEvery: how often one
	// ingest replica sweeps the alert keys due. 0: its default; negative:
	// never on this replica.
	AlertKeysSweepEvery time.Duration
	// Appended, when set, is told of every operation appended (see
	// oplog.Options.Appended): the same process's projector takes them
	// from there.
	Appended func(seq uint64, subject string, data []byte)
	// ReadTimeout bounds a forwarded read (default 5s).
	ReadTimeout time.Duration
	// MaxProjectorLag is the fold lag (operations) above which /readyz
	// answers 503. Default 10,000.
	MaxProjectorLag uint64
	// MaxIntegrationRequests bounds the integration requests served at
	// once; over it they are refused as overload. Default 1024.
	MaxIntegrationRequests int
	// DeadlineScan is how often open events past their deadline are looked
	// for and closed with status timed_out. Default 1s; negative disables
	// the scan on this replica.
	DeadlineScan time.Duration
	// MetadataValueMax is the most bytes of one metadata value
	// (PUSHGO_METADATA_VALUE_MAX). Default ops.DefaultMetadataValueMax
	// (PushGo's 512), at most ops.MetadataValueMaxLimit (16 KiB).
	MetadataValueMax int
	// MaxStreams caps the GET /channel/stream streams open at once in this
	// process (PUSHGO_STREAMS_MAX); MaxStreamsPerChannel caps one
	// channel's (PUSHGO_STREAMS_PER_CHANNEL_MAX), MaxStreamsPerClient one
	// client address's (PUSHGO_STREAMS_PER_CLIENT_MAX). Over a cap a
	// stream is refused with 429 too_many_streams. Defaults
	// livestream.DefaultMaxStreams, DefaultMaxPerChannel and
	// DefaultMaxPerClient.
	MaxStreams, MaxStreamsPerChannel, MaxStreamsPerClient int
	// Limits are the abuse limits (PUSHGO_LIMIT_*); zero fields take
	// their defaults, negative ones are off (limits.Off turns every one
	// off).
	Limits limits.Config
	// Argon2 overrides the password hash cost (tests use a cheap one).
	Argon2 registry.Argon2Params
	// LocalReads is the projector of this process, if it runs one: reads
	// are asked there first, without the broker's request and reply (the
	// barrier of a read still comes from the broker). Nil: every read goes
	// over the broker.
	LocalReads readfwd.Local
	// Disk, when set, measures the disk under the embedded broker's store
	// (broker.Embedded.Disk): while it is full, writes are answered 507
	// store_full at once (oplog.Options.Disk). Nil with an external broker.
	Disk   func() storage.Disk
	Logger *slog.Logger
}

// Service is a running ingest. The caller MUST call Close.
type Service struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	registry *registry.Registry
	writer   *oplog.Writer
	devices  *devices.Registry
	tokens   *apitokens.Registry
	reads    *readfwd.Forwarder
	maxLag   uint64
	http     *httpapi.Server
	closer   *timeouts.Closer
	// stopSweep ends the alert keys' sweep (alerts.Tracker.Run), which
	// closes sweepDone once it returned.
	stopSweep func()
	sweepDone chan struct{}
	limits    *limits.Limits
	live      *livestream.Follower
	// integrations serves the monitoring tools' routes (its metrics).
	integrations *integrations.Routes

	closeOnce sync.Once
}

// Start ensures the streams, loads the registry and builds the HTTP front
// over nc, which the caller owns and closes after Close.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	if cfg.MetadataValueMax != 0 {
		if err := ops.CheckMetadataValueMax(cfg.MetadataValueMax); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := provision.Ensure(ctx, js, cfg.Streams); err != nil {
		return nil, err
	}
	devBucket, err := js.KeyValue(ctx, streams.DevicesBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", streams.DevicesBucket, err)
	}
	// A registry call is bounded as an append is, so a broker that is down
	// answers 503 within the append timeout on every route.
	regTimeout := cfg.AppendTimeout
	if regTimeout <= 0 {
		regTimeout = 5 * time.Second // oplog.Options.AppendTimeout's default
	}
	lim := limits.New(cfg.Limits, limits.Options{CountDevices: countDevices(nc, devBucket, regTimeout), Logger: cfg.Logger})
	reg, err := registry.Open(ctx, js, registry.Options{Argon2: cfg.Argon2, MaxConcurrentHashes: lim.Config().Hashes(),
		Gate: lim.Passwords(), Timeout: regTimeout, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	fwd, err := readfwd.New(ctx, nc, cfg.ReadTimeout, cfg.LocalReads, cfg.Logger)
	if err != nil {
		reg.Close()
		return nil, err
	}
	marks := oplog.NewThingMarks()
	fwd.FollowThingWrites(marks)
	w, err := oplog.New(ctx, js, oplog.Options{AppendTimeout: cfg.AppendTimeout, Appended: cfg.Appended, FindOp: fwd.FindOp,
		FindEntity: fwd.FindEntity, ThingMarks: marks, Disk: cfg.Disk, Logger: cfg.Logger})
	if err != nil {
		reg.Close()
		_ = fwd.Close()
		return nil, err
	}
	devs, err := devices.Open(ctx, js, devices.Options{Timeout: regTimeout, Logger: cfg.Logger})
	if err != nil {
		reg.Close()
		w.Close()
		_ = fwd.Close()
		return nil, err
	}
	toks, err := apitokens.Open(ctx, js, apitokens.Options{MaxPerChannel: max(0, lim.Config().TokensPerChannel), Timeout: regTimeout, Logger: cfg.Logger})
	if err != nil {
		reg.Close()
		w.Close()
		_ = fwd.Close()
		return nil, err
	}
	box, err := inbox.Open(ctx, js)
	if err != nil {
		toks.Close()
		devs.Close()
		reg.Close()
		w.Close()
		_ = fwd.Close()
		return nil, err
	}
	keep := cfg.AlertKeysKeep
	if keep <= 0 {
		keep = cfg.Streams.Retention
	}
	tracker, err := alerts.New(ctx, js, w, alerts.Options{Logger: cfg.Logger, AbsentAfter: cfg.AlertmanagerAbsentAfter,
		Keep: keep, SweepEvery: cfg.AlertKeysSweepEvery})
	if err != nil {
		toks.Close()
		devs.Close()
		reg.Close()
		w.Close()
		_ = fwd.Close()
		return nil, err
	}
	if cfg.MaxProjectorLag == 0 {
		cfg.MaxProjectorLag = 10_000
	}
	s := &Service{nc: nc, js: js, log: cfg.Logger, registry: reg, writer: w, devices: devs, tokens: toks, reads: fwd, maxLag: cfg.MaxProjectorLag, limits: lim,
		live: livestream.New(js, livestream.Options{MaxStreams: cfg.MaxStreams, MaxPerChannel: cfg.MaxStreamsPerChannel,
			MaxPerClient: cfg.MaxStreamsPerClient, Logger: cfg.Logger})}
	s.http = httpapi.New(reg, w, httpapi.Options{Token: cfg.Token, Logger: cfg.Logger, Validation: cfg.validation(),
		Reader: fwd, Follower: s.live, Devices: devs, Inbox: box, Tokens: toks, OwnAuth: ownAuth, Limits: lim, Disk: cfg.Disk})
	s.integrations = integrations.Register(s.http.Echo(), integrations.Deps{Tokens: toks, Appender: w, Alerts: tracker, Reader: fwd,
		Channels: reg, MaxInFlight: cfg.MaxIntegrationRequests, Limits: lim, Logger: cfg.Logger,
		AlertmanagerExpireAfter: cfg.AlertmanagerExpireAfter})
	compat.Register(s.http.Echo(), compat.Deps{Channels: reg, Appender: w, Token: cfg.Token, Validation: cfg.validation(),
		MetadataValueMax: cfg.MetadataValueMax, Limits: lim})
	// The alert keys of Events closed PUSHGO_RETENTION ago go (one
	// replica at a time sweeps them), until Close.
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	s.stopSweep = stopSweep
	s.sweepDone = make(chan struct{})
	go func() {
		defer close(s.sweepDone)
		tracker.Run(sweepCtx)
	}()
	if cfg.DeadlineScan >= 0 {
		s.closer = timeouts.Start(fwd, w, timeouts.Options{Interval: cfg.DeadlineScan, Logger: cfg.Logger})
	}
	return s, nil
}

// countDevices counts the devices of bucket (its values; a device the
// idle sweep deleted counts until its delete marker is purged an hour
// later), for the devices cap.
func countDevices(nc *nats.Conn, bucket jetstream.KeyValue, timeout time.Duration) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		// The count is advisory (one that fails lets the registration
		// try): it does not wait for a broker that is away, so the
		// registration's own answer comes within one timeout.
		if !nc.IsConnected() {
			return 0, errors.New("count devices: not connected to the broker")
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		st, err := bucket.Status(ctx)
		if err != nil {
			return 0, fmt.Errorf("count devices: %w", err)
		}
		return int64(st.Values()), nil
	}
}

// ownAuth reports the routes that check PUSHGO_TOKEN themselves: the
// integrations (their integration token) and the ntfy compat routes
// (ntfy's auth parameter).
func ownAuth(route string) bool { return integrations.OwnAuth(route) || compat.OwnAuth(route) }

// validation is the write rules' options this configuration asks for.
func (c Config) validation() []ops.Option {
	if c.MetadataValueMax == 0 {
		return nil
	}
	return []ops.Option{ops.WithMetadataValueMax(c.MetadataValueMax)}
}

// Tokens is the integration token registry, for the integration routes
// that authorize with it.
func (s *Service) Tokens() *apitokens.Registry { return s.tokens }

// Handler serves every HTTP route.
func (s *Service) Handler() http.Handler { return s.http.Handler() }

// HTTP exposes the front so later services can add routes to it.
func (s *Service) HTTP() *httpapi.Server { return s.http }

// Run waits until ctx ends, then stops the service (Close) and returns
// nil. Nothing in ingest fails for good: its watches restart themselves
// and its writes answer 503 while the broker is away.
func (s *Service) Run(ctx context.Context) error {
	// The removals' records of unsubscribes (devices.RemovalKept old) are
	// deleted from here: ingest writes the subscriptions. Those this
	// process wrote are forgotten on time; a sweep of the whole bucket,
	// soon after the start and then every few hours, takes those whose
	// writer stopped.
	forget := time.NewTicker(removalForgetEvery)
	defer forget.Stop()
	sweep := time.NewTimer(removalFirstSweep)
	defer sweep.Stop()
	// Devices left with no route and no channel are deleted from here
	// too (devices.SweepIdleDevices), every hour: what a flood of
	// registrations holds of the devices' cap is three to four hours of it.
	// The same sweep then purges the registry buckets' delete markers an
	// hour old (devices.SweepDeleteMarkers): devices, provider tokens,
	// device channels and subscriptions.
	idle := time.NewTimer(removalFirstSweep)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Close()
			return nil
		case <-forget.C:
			if _, err := s.devices.ForgetRemovals(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("ingest: unsubscribes' records not deleted; trying again later", "err", err)
			}
		case <-sweep.C:
			sweep.Reset(removalSweepEvery)
			if n, err := s.devices.SweepRemovals(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("ingest: unsubscribes' records not swept; trying again later", "err", err)
			} else if n > 0 {
				s.log.Info("ingest: swept unsubscribes' records left by a stopped process", "records", n)
			}
		case <-idle.C:
			idle.Reset(idleSweepEvery)
			if n, err := s.devices.SweepIdleDevices(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("ingest: idle devices not swept; trying again later", "err", err)
			} else if n > 0 {
				s.log.Info("ingest: deleted devices left without a route or a channel", "devices", n,
					"idle_for", schemadevices.IdleKept.String())
			}
			// Then the delete markers an hour old of every registry bucket:
			// those of the devices just deleted go at the next sweep.
			if n, err := s.devices.SweepDeleteMarkers(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("ingest: the registry's delete markers not all purged; trying again later", "purged", n, "err", err)
			} else if n > 0 {
				s.log.Info("ingest: purged the registry's old delete markers", "markers", n)
			}
		}
	}
}

// How often Run forgets the unsubscribes' records this process wrote, and
// sweeps the whole bucket (first soon after the start).
const (
	removalForgetEvery = time.Minute
	removalFirstSweep  = 5 * time.Minute
	removalSweepEvery  = 6 * time.Hour
	idleSweepEvery     = time.Hour
)

// Collectors are ingest's metrics, for the process's /metrics.
func (s *Service) Collectors() []prometheus.Collector {
	return slices.Concat(s.http.Collectors(), s.live.Collectors(), s.limits.Collectors(), s.integrations.Collectors(), s.tokens.Collectors())
}

// Ready is ingest's part of /readyz: the registry watches run, the
// stream answers, and some projector replica's fold runs within the lag
// bound (every replica is asked; readfwd.Forwarder.Status): one replica
// catching up while another is caught up leaves ingest ready, as its reads
// are answered. info carries the applied sequence and lag of the replica
// whose answer counted (the first within the bound, else the least
// behind), and its receipts fold's position when it reports it.
func (s *Service) Ready(ctx context.Context) (map[string]any, error) {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return nil, fmt.Errorf("broker connection %s", st)
	}
	for name, err := range map[string]error{"channel registry": s.registry.Watch().Err(), "token registry": s.tokens.Watch().Err()} {
		if err != nil {
			return nil, fmt.Errorf("ingest: %s: %w", name, err)
		}
	}
	if _, err := s.js.Stream(ctx, streams.Ops); err != nil {
		return nil, errors.New("stream " + streams.Ops + " unavailable")
	}
	st, err := s.reads.Status(ctx, s.maxLag)
	if err != nil {
		return nil, err
	}
	info := map[string]any{"projector_applied": st.Applied, "projector_lag": st.Lag}
	if st.ReceiptsApplied != nil {
		info["projector_receipts_applied"] = *st.ReceiptsApplied
	}
	if st.Error != "" {
		return info, fmt.Errorf("projector stopped: %s", st.Error)
	}
	if st.Lag > s.maxLag {
		return info, fmt.Errorf("projector lag %d above %d", st.Lag, s.maxLag)
	}
	return info, nil
}

// EndStreams ends the open GET /channel/stream responses, each with a
// comment telling its client to reconnect with Last-Event-ID, and refuses
// new ones (503). The HTTP server's shutdown calls it: those requests
// never end by themselves, and the shutdown would wait out its grace
// period for them and end the process with an error.
func (s *Service) EndStreams() { s.live.End() }

// Close stops the registry watchers, the deadline scan and the
// integrations' idle report lanes; later calls do nothing. The NATS
// connection stays open.
func (s *Service) Close() { s.closeOnce.Do(s.close) }

func (s *Service) close() {
	s.stopSweep()
	<-s.sweepDone
	if s.closer != nil {
		s.closer.Close()
	}
	s.live.Close()
	s.integrations.Close()
	s.tokens.Close()
	s.devices.Close()
	s.registry.Close()
	s.writer.Close()
	_ = s.reads.Close()
}

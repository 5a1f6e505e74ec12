// Package httpapi is the public HTTP front of the gateway: the PushGo write
// routes, the channel routes and the operational endpoints. Handlers are
// thin: decode, validate (schemas/ops), authorize, append, answer.
package httpapi

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/broker/storage"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// Channels is the registry as the handlers use it.
type Channels interface {
	Authorize(ctx context.Context, id, password string) (registry.Channel, *apierr.Error)
	Lookup(ctx context.Context, id string) (registry.Channel, bool, error)
	Create(ctx context.Context, name, password string, now time.Time) (registry.Channel, error)
	Rename(ctx context.Context, c registry.Channel, name string) (registry.Channel, error)
}

// Appender appends validated operations.
type Appender interface {
	Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error)
}

// Options configure the HTTP front.
type Options struct {
	// Token, when set, is the gateway-wide bearer token (PUSHGO_TOKEN).
	Token string
	// Reader answers the read routes (spec section 7); nil leaves them out.
	Reader Reader
	// Follower serves GET /channel/stream; nil leaves it out.
	Follower Follower
	// Devices serves the device and subscription routes (spec sections 2
	// and 3); nil leaves them out.
	Devices Devices
	// Inbox serves /v2/messages/pull and ack (with Devices); nil leaves
	// them out.
	Inbox Inbox
	// Tokens serves /channel/token/create, /list and /revoke; nil
	// leaves them out.
	Tokens Tokens
	// OwnAuth reports the routes (by their pattern, as c.Path()) that
	// authenticate themselves with an integration token, which stands in
	// for PUSHGO_TOKEN there: a monitoring tool sends one Authorization
	// header only.
	OwnAuth func(route string) bool
	// Validation adjusts the write routes' rules to the configuration
	// (ops.WithMetadataValueMax).
	Validation []ops.Option
	// Limits are the abuse limits (per-address rates, caps) and name the
	// client address (the TCP peer, or X-Forwarded-For from a trusted
	// proxy); nil applies none.
	Limits *limits.Limits
	// Now is the clock for defaults such as occurred_at. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Disk, when set, measures the disk under the embedded broker's store
	// (oplog.Options.Disk): while it is full a registry write (a channel,
	// a device, a token) is refused 507 store_full before it is tried, and
	// one the broker did not answer is answered so too.
	Disk func() storage.Disk
}

// Server holds the routes. Build it with New.
type Server struct {
	channels Channels
	appender Appender
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	lim      *limits.Limits
	echo     *echo.Echo
}

// New builds the HTTP front.
func New(channels Channels, appender Appender, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Limits == nil {
		opts.Limits = limits.New(limits.Off(), limits.Options{})
	}
	s := &Server{channels: channels, appender: appender, opts: opts, log: opts.Logger, metrics: newMetrics(), lim: opts.Limits}
	e := echo.New()
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(opts.Limits.Config().TrustedProxies)
	e.Use(requestID, clientAddr, observe(s.metrics, s.log))
	if opts.Token != "" {
		e.Use(bearerAuth(opts.Token, opts.OwnAuth, opts.Limits))
	}

	e.POST("/channel/create", s.channelCreate, s.refuseOnFullDisk)
	e.GET("/channel/exists", s.channelExists)
	e.POST("/channel/rename", s.channelRename, s.refuseOnFullDisk)

	e.POST("/event/create", s.eventRoute(ops.EventCreate))
	e.POST("/event/update", s.eventRoute(ops.EventUpdate))
	e.POST("/event/close", s.eventRoute(ops.EventClose))
	// Later PushGo's routes of an event that belongs to a Thing, which both
	// apps post an event's close to when it has one.
	e.POST("/thing/:thing_id/event/create", s.thingEventRoute(ops.EventCreate))
	e.POST("/thing/:thing_id/event/update", s.thingEventRoute(ops.EventUpdate))
	e.POST("/thing/:thing_id/event/close", s.thingEventRoute(ops.EventClose))
	e.POST("/thing/create", s.thingRoute(ops.ThingCreate))
	e.POST("/thing/update", s.thingRoute(ops.ThingUpdate))
	e.POST("/thing/archive", s.thingRoute(ops.ThingArchive))
	e.POST("/thing/delete", s.thingRoute(ops.ThingDelete))
	e.POST("/message", s.messagePost)
	e.GET("/message", s.messageGet)

	s.echo = e
	if opts.Tokens != nil {
		s.routeTokens()
	}
	if opts.Reader != nil {
		s.routeReads()
	}
	if opts.Devices != nil {
		s.routeDevices()
		if opts.Inbox != nil {
			s.routeInbox()
		}
	}

	return s
}

// Collectors are the HTTP front's metrics, for the process's /metrics:
// requests and latency by route, operations by outcome, error answers by
// code.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.requests, s.metrics.duration, s.metrics.appends, s.metrics.errors}
}

// Handler is the http.Handler of every route.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo exposes the router so other modules (the read API) can add routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

// handleError turns router errors and unexpected handler errors into the
// failure envelope.
func (s *Server) handleError(c *echo.Context, err error) {
	if r, uerr := echo.UnwrapResponse(c.Response()); uerr == nil && r.Committed {
		return
	}
	var aerr *apierr.Error
	switch {
	case errors.As(err, &aerr):
	case errors.Is(err, echo.ErrNotFound):
		aerr = apierr.New(apierr.RouteNotFound)
	case errors.Is(err, echo.ErrMethodNotAllowed):
		aerr = apierr.New(apierr.MethodNotAllowed)
	default:
		var sc echo.HTTPStatusCoder
		if errors.As(err, &sc) && sc.StatusCode() == http.StatusRequestEntityTooLarge {
			aerr = apierr.New(apierr.PayloadTooLarge)
		} else {
			// The route's pattern, never the path: a compat route's path
			// holds its channel's password (<channel_id>:<password>).
			s.log.Error("http: unhandled error", "route", cmp.Or(c.Path(), "unmatched"), "method", c.Request().Method, "err", err)
			aerr = apierr.New(apierr.InternalError)
		}
	}
	_ = writeErr(c, aerr)
}

// storeOr is the answer to a registry write that failed with err: 507
// store_full when the broker refused it for lack of storage or the disk
// under its store is full, else unavailable.
func (s *Server) storeOr(err error, unavailable *apierr.Error) *apierr.Error {
	if !storage.Full(err) {
		if aerr := oplog.DiskRefusal(s.opts.Disk); aerr != nil {
			return aerr
		}
	}
	return storage.Or(err, unavailable)
}

// diskFull is the refusal of a registry write while the disk under the
// embedded broker's store is full, else nil.
func (s *Server) diskFull() *apierr.Error { return oplog.DiskRefusal(s.opts.Disk) }

// refuseOnFullDisk answers a registry write route 507 store_full, before
// anything is tried, while the disk under the embedded broker's store is
// full: the broker would not answer the write (JetStream answers none it
// failed to store), and the client would wait out the registry's timeout.
func (s *Server) refuseOnFullDisk(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if aerr := s.diskFull(); aerr != nil {
			return writeErr(c, aerr)
		}
		return next(c)
	}
}

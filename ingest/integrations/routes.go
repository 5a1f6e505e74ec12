// Package integrations accepts the native formats of monitoring tools
// (Dynatrace Events API v2, a cloud event bus, CloudEvents, Alertmanager and
// Grafana, PagerDuty Events v2) and translates each report into ordinary
// Event operations appended through the same writer as /event/*: replay,
// projections and delivery work for them unchanged (spec integrations.md).
//
// One file per tool. Each handler is thin: authenticate the integration
// token, read the body, decode and translate (the tool's rules), decide
// (alert keys, entity selection) and append. A rejection is answered in
// the tool's own error shape where the tool has one (Dynatrace, the event
// bus, PagerDuty); the routes of tools without one (Alertmanager and
// Grafana, CloudEvents) answer as every PushGo route does, through
// httpapi.WriteOK and httpapi.WriteError: the same envelope, PushGo's
// problem object, the language Accept-Language asks for.
package integrations

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// Tokens authorizes integration tokens (an *apitokens.Registry).
type Tokens interface {
	// Authorize checks an Authorization header ("Api-Token <t>" or
	// "Bearer <t>"): 401 invalid_api_token, 403 scope_missing.
	Authorize(ctx context.Context, header, scope string) (apitokens.Token, *apierr.Error)
	// AuthorizeToken checks a bare token (PagerDuty's routing_key).
	AuthorizeToken(ctx context.Context, token, scope string) (apitokens.Token, *apierr.Error)
}

// Appender appends validated operations (an *oplog.Writer).
type Appender interface {
	Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error)
}

// Reader answers reads from the projections (a *readfwd.Forwarder): the
// Dynatrace entity selection and event reads.
type Reader interface {
	Read(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error)
	// ReadConsistent answers after every operation appended before the
	// call is folded.
	ReadConsistent(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error)
}

// Channels looks channels up (the event bus names a channel by id or
// name): an *registry.Registry.
type Channels interface {
	Lookup(ctx context.Context, id string) (registry.Channel, bool, error)
}

// Deps are what the integration routes need. Every field is required
// unless it says otherwise.
type Deps struct {
	Tokens   Tokens
	Appender Appender
	Alerts   *alerts.Tracker
	Reader   Reader
	Channels Channels
	// MaxInFlight bounds the integration requests served at once; over it
	// a request is refused at once as overload (503, or 429 with
	// Retry-After where the tool expects it) instead of queueing without
	// bound behind a slow broker. Default 1024. A request takes its place
	// once its token is known, and one token takes at most its share
	// (limits.Config.IntegrationPerToken).
	MaxInFlight int
	// Limits share the places out per token, bound the time a body may
	// take, bound the bodies read before their token is known (PagerDuty)
	// per client address, and count the refusals. Default: limits'
	// defaults, uncounted.
	Limits *limits.Limits
	// AlertmanagerExpireAfter, when positive, gives the Event of each
	// firing Alertmanager or Grafana alert a deadline this long after the
	// notification that names it: an alert no notification names again
	// in time (its resolve never sent, the group no longer notified) is
	// closed timed_out, as a Dynatrace event past its timeout. 0: never.
	AlertmanagerExpireAfter time.Duration
	// Now is the clock of defaults (receive times). Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// MaxBodyBytes is the body limit of the integration routes: Dynatrace's
// own 1 MiB, not the 32 KiB of the PushGo routes.
const MaxBodyBytes = 1 << 20

// Route patterns. OwnAuth lists them for the PUSHGO_TOKEN middleware.
const (
	RouteDynatrace        = "/api/v2/events/ingest"
	RouteDynatraceEnv     = "/e/:environment/api/v2/events/ingest"
	RouteDynatraceGet     = "/api/v2/events/:correlationId"
	RouteDynatraceEnvGet  = "/e/:environment/api/v2/events/:correlationId"
	RouteEventBus         = "/v1/event-bus/event/recv"
	RouteEventBusNew      = "/v1/event-bus/recv"
	RouteCloudEvents      = "/cloudevents"
	RouteAlertmanager     = "/integrations/alertmanager"
	RoutePagerDutyEnqueue = "/v2/enqueue"
)

var ownAuth = map[string]bool{
	RouteDynatrace: true, RouteDynatraceEnv: true, RouteDynatraceGet: true, RouteDynatraceEnvGet: true,
	RouteEventBus: true, RouteEventBusNew: true, RouteCloudEvents: true, RouteAlertmanager: true, RoutePagerDutyEnqueue: true,
}

// OwnAuth reports whether route (an echo route pattern) authenticates with
// an integration token, which stands in for PUSHGO_TOKEN there.
func OwnAuth(route string) bool { return ownAuth[route] }

// Routes serves the integration routes.
type Routes struct {
	d   Deps
	log *slog.Logger
	// slots are the places of requests whose token is known; preAuth of
	// bodies read before it is (per client address).
	slots, preAuth *limits.Slots
	// large is the budget of bodies over MaxBodyBytes.
	large *limits.Budget
	m     *metrics
	// lanes run a request's reports beside each other (parallel.go).
	lanes *lanes
}

// Register adds every integration route to e.
func Register(e *echo.Echo, d Deps) *Routes {
	if d.MaxInFlight <= 0 {
		d.MaxInFlight = 1024
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Limits == nil {
		d.Limits = limits.New(limits.Config{}, limits.Options{})
	}
	d.Tokens = throttledTokens{Tokens: d.Tokens, lim: d.Limits}
	r := &Routes{d: d, log: d.Logger, slots: d.Limits.IntegrationSlots(d.MaxInFlight), preAuth: d.Limits.UnauthenticatedReads(), large: d.Limits.LargeBodies(), m: newMetrics(), lanes: newLanes(maxLanes, d.Logger)}
	r.routeDynatrace(e)
	r.routeEventBus(e)
	r.routeCloudEvents(e)
	r.routeAlertmanager(e)
	r.routePagerDuty(e)
	return r
}

// Close stops the goroutines the routes keep between requests; requests
// still served after it run their reports on goroutines of their own.
func (r *Routes) Close() { r.lanes.Close() }

// admit takes an in-flight place for token tokenID of channel channelID
// without waiting, once the token is authorized (so requests without a
// valid token never hold one); ok false means overload: every place, or
// the token's or its channel's share, is taken. The caller MUST call
// release when ok.
func (r *Routes) admit(c *echo.Context, channelID, tokenID string) (release func(), ok bool) {
	release, ok = r.slots.TakeIn(channelID, tokenID)
	if !ok {
		closeAfter(c)
	}
	return release, ok
}

// closeAfter makes the answer close the connection: a body left unread
// (refused, cut, too large) is not read to its end first, which a slow
// sender would make last as long as it likes.
func closeAfter(c *echo.Context) { c.Response().Header().Set("Connection", "close") }

// Errors of readBody and readBodyUpTo, besides the transport's.
var (
	// errTooLarge: over MaxBodyBytes (readBodyUpTo's own bound wraps it).
	errTooLarge = errors.New("request body is larger than 1 MiB")
	// errBodyTimeout: the body did not arrive within its deadline
	// (limits.Config.BodyRead).
	errBodyTimeout = errors.New("the body did not arrive in time")
	// errLargeBusy: a body over MaxBodyBytes found the budget of large
	// bodies (limits.Config.LargeBodies) taken: overload, to be retried.
	errLargeBusy = errors.New("too many large request bodies are being handled at once; retry")
)

// encodingRefusal is the status and code of a body refused for its
// Content-Encoding, as on every route of the gateway (limits.DecodeBody):
// 415 unsupported_content_encoding for a coding it does not decode, 400
// invalid_request_body for a body that is not the gzip it says; ok false
// for any other error. The detail is err's text.
func encodingRefusal(err error) (status int, code apierr.Code, ok bool) {
	var unsupported *limits.UnsupportedEncodingError
	var invalid *limits.EncodingError
	switch {
	case errors.As(err, &unsupported):
		return http.StatusUnsupportedMediaType, apierr.UnsupportedContentEncoding, true
	case errors.As(err, &invalid):
		return http.StatusBadRequest, apierr.InvalidRequestBody, true
	}
	return 0, "", false
}

// readBody returns the request body, whatever its Content-Type says (tools
// and curl --data send JSON as form-urlencoded), decoded as its
// Content-Encoding says (gzip, or identity; encodingRefusal), up to
// MaxBodyBytes counted on the bytes read (the decoded bytes of a gzip
// body), so a chunked body cannot get past it, and within the body
// deadline (limits.Config.BodyRead), so a slow sender holds its place for
// a bounded time.
func (r *Routes) readBody(c *echo.Context) ([]byte, error) {
	b, _, err := r.readBodyUpTo(c, "", MaxBodyBytes, "")
	return b, err
}

// readBodyUpTo is readBody with a bound of limit bytes (at least
// MaxBodyBytes; setting names it in the too-large error). A body past
// MaxBodyBytes takes its announced length (or, unannounced, limit once
// its bytes pass MaxBodyBytes) from the large bodies' budget, as channel
// channelID's, and release gives it back: the caller MUST call release
// once the body and what it decoded from it are dropped (after the
// answer). Such a body also gets its deadline per started MiB.
func (r *Routes) readBodyUpTo(c *echo.Context, channelID string, limit int64, setting string) (body []byte, release func(), err error) {
	release = func() {}
	limit = max(limit, MaxBodyBytes)
	tooLarge := errTooLarge
	if limit > MaxBodyBytes {
		tooLarge = fmt.Errorf("request body is larger than %s (%s): %w", limits.FormatSize(int(limit)), setting, errTooLarge)
	}
	req := c.Request()
	if req.ContentLength > limit {
		closeAfter(c)
		return nil, release, tooLarge
	}
	// A gzip body is read as its decoded bytes, whose length it does not
	// announce (so they take the large bodies' budget as they pass
	// MaxBodyBytes), within the deadline of its bytes as sent.
	announced := req.ContentLength
	if err := limits.DecodeBody(c.Response(), req, limit); err != nil {
		closeAfter(c)
		return nil, release, err
	}
	if req.ContentLength > MaxBodyBytes {
		held, ok := r.large.Take(channelID, req.ContentLength)
		if !ok {
			closeAfter(c)
			return nil, release, errLargeBusy
		}
		release = held
	}
	clear := r.d.Limits.BodyDeadline(c.Response(), announced)
	if req.ContentLength < 0 && limit > MaxBodyBytes {
		// Unannounced: the budget and the longer deadline are taken when
		// the body passes MaxBodyBytes.
		req.Body = &growingBody{ReadCloser: req.Body, left: MaxBodyBytes, grow: func() error {
			held, ok := r.large.Take(channelID, limit)
			if !ok {
				return errLargeBusy
			}
			release = held
			clear = r.d.Limits.BodyDeadline(c.Response(), limit)
			return nil
		}}
	}
	b, err := limits.ReadBody(c.Response(), req, limit)
	if err != nil {
		closeAfter(c) // the deadline stays: nothing more is read
	} else {
		clear()
	}
	var maxBytes *http.MaxBytesError
	switch {
	case err == nil:
		return b, release, nil
	case r.d.Limits.BodyTimedOut(err):
		err = errBodyTimeout
	case errors.As(err, &maxBytes):
		err = tooLarge
	}
	return nil, release, err
}

// growingBody is a request body that calls grow once, before it returns
// the byte past its first left bytes (a body of exactly left bytes never
// calls it); grow's error ends the read.
type growingBody struct {
	io.ReadCloser
	left int64
	grow func() error
}

func (g *growingBody) Read(p []byte) (int, error) {
	if g.grow == nil || len(p) == 0 {
		return g.ReadCloser.Read(p)
	}
	if g.left > 0 {
		n, err := g.ReadCloser.Read(p[:min(int64(len(p)), g.left)])
		g.left -= int64(n)
		return n, err
	}
	// At the bound: is there a byte past it?
	n, err := g.ReadCloser.Read(p[:1])
	if n == 0 {
		return 0, err
	}
	if gerr := g.grow(); gerr != nil {
		return 0, gerr
	}
	g.grow = nil
	return n, err
}

// contentHash is the hash of what a report says (ops.Validated.ContentHash):
// the deterministic JSON of v.
func contentHash(v any) string {
	b, err := json.Marshal(v, json.Deterministic(true))
	if err != nil {
		return "" // no hash: the report is always appended
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// writeJSON answers status with v as JSON, with its Content-Length.
func writeJSON(c *echo.Context, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		// Only invalid UTF-8 fails: an error detail quoting what a tool
		// sent (the CloudEvents SDK's do). Answered with U+FFFD in its
		// place rather than as a 500.
		if b, err = json.Marshal(v, jsontext.AllowInvalidUTF8(true)); err != nil {
			return err
		}
	}
	c.Response().Header().Set("Content-Length", strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}

// ptr returns a pointer to v (request fields are pointers).
func ptr[T any](v T) *T { return &v }

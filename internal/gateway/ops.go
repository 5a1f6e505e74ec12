package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/limits"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushgo/gateway/broker/storage"
	"github.com/pushgo/gateway/ingest/httpapi/apidoc"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/apierr"
)

// readiness is one service's part of /readyz: nil when it can do its
// work, else why not (naming what is down). info, when not nil, adds
// details to the answer (the projector's applied sequence and lag).
type readiness func(ctx context.Context) (info map[string]any, err error)

// opsServer serves /healthz, /readyz and /metrics for every target of the
// process, and /deadletters with a projector, in front of the ingest API
// when this process runs it: probes and scrapers see every process of a
// scaled deployment alike. The probes and /metrics are open even when
// PUSHGO_TOKEN is set; /deadletters asks for the token, and without one is
// not listed (its entries name channels and entities, and quote the log).
type opsServer struct {
	nc       *nats.Conn
	checks   []namedReadiness
	registry *prometheus.Registry
	metrics  http.Handler
	next     http.Handler // the ingest API, or nil
	store    *storeGauge
	proj     func() *projector.Projector // the process's projector, or nil
	// token is the SHA-256 of PUSHGO_TOKEN, nil for a public gateway:
	// /deadletters asks for it (its entries name channels and entities,
	// and quote what the log held), and authFails throttles the wrong
	// tokens of each address (PUSHGO_LIMIT_AUTH_FAILURES), as the API's
	// front does.
	token     *[32]byte
	authFails *limits.Limits

	// collectors are every collector of registry, for Describe: a vector
	// with no series yet is on /metrics only once it has one.
	collectors []prometheus.Collector

	// checkMu guards check and checksClosed. check is the readiness check
	// in flight, shared by the /readyz requests that arrive while it runs
	// (readyShared); checkRuns counts the checks' goroutines, which
	// closeChecks waits for, and stopChecks ends their context.
	checkMu      sync.Mutex
	check        *readyCheck
	checksClosed bool
	checkRuns    sync.WaitGroup
	checksCtx    context.Context
	stopChecks   context.CancelFunc
}

// readyCheck is one readiness check: its answer once done is closed.
type readyCheck struct {
	done chan struct{}
	info map[string]any
	err  error
}

type namedReadiness struct {
	name  string
	check readiness
}

// newOpsServer serves the ops paths of a process connected by nc.
// storeLimit is the broker's file storage limit when the broker does not
// tell it (the embedded server's PUSHGO_MAX_STORE; 0 for an external
// broker); disk measures the disk under the embedded broker's store (nil
// for an external broker); proj returns the process's projector (nil
// without one).
func newOpsServer(nc *nats.Conn, storeLimit int64, disk func() storage.Disk, proj func() *projector.Projector) *opsServer {
	reg := prometheus.NewRegistry()
	o := &opsServer{nc: nc, registry: reg, metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		store: newStoreGauge(nc, storeLimit, disk), proj: proj}
	o.checksCtx, o.stopChecks = context.WithCancel(context.Background())
	o.collectors = append([]prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
		append(o.store.collectors(), brokerCollectors(nc)...)...)
	reg.MustRegister(o.collectors...)
	return o
}

// brokerCollectors say whether the process's broker connection is up
// (pushgo_broker_connected, for the broker-disconnected alert) and how
// often it was lost (pushgo_broker_reconnects_total).
func brokerCollectors(nc *nats.Conn) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_broker_connected",
			Help: "1 while this process's connection to the broker (NATS) is up, 0 while it is down or reconnecting."},
			func() float64 {
				if nc.Status() == nats.CONNECTED {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pushgo_broker_reconnects_total",
			Help: "Times this process's broker connection was re-established after a loss."},
			func() float64 { return float64(nc.Stats().Reconnects) }),
	}
}

// Collectors are the collectors behind the process's /metrics, every
// metric it can export (a vector appears on /metrics only once it has a
// series; its Describe names it from the start).
func (g *Gateway) Collectors() []prometheus.Collector {
	if g.ops == nil {
		return nil
	}
	return g.ops.collectors
}

// embeddedStoreLimit is the embedded broker's file storage limit
// (PUSHGO_MAX_STORE), which its clients cannot ask it for; 0 with an
// external broker (whose account limits, if any, JetStream tells).
func (g *Gateway) embeddedStoreLimit() int64 {
	if g.broker == nil {
		return 0
	}
	return g.cfg.MaxStore
}

// embeddedDisk measures the disk under the embedded broker's store; nil
// with an external broker (whose disk its own operator watches).
func (g *Gateway) embeddedDisk() func() storage.Disk {
	if g.broker == nil {
		return nil
	}
	return g.broker.Disk
}

// add registers a service's readiness and metrics.
func (o *opsServer) add(name string, check readiness, cs ...prometheus.Collector) error {
	o.checks = append(o.checks, namedReadiness{name, check})
	for _, c := range cs {
		if err := o.registry.Register(c); err != nil {
			return err
		}
		o.collectors = append(o.collectors, c)
	}
	return nil
}

func (o *opsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		o.answer(w, r, map[string]any{"alive": true}, nil)
	case "/readyz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			o.answerError(w, apierr.New(apierr.MethodNotAllowed))
			return
		}
		info, err := o.readyShared(r.Context())
		o.answer(w, r, info, err)
	case "/metrics":
		o.metrics.ServeHTTP(w, r)
	case "/deadletters":
		o.deadLetters(w, r)
	case apidoc.PathHome, apidoc.PathPage, apidoc.PathDocument, apidoc.PathStyle, apidoc.PathScript: // the API reference, open like the probes
		apidoc.Handler().ServeHTTP(w, r)
	default:
		if o.next == nil {
			o.answerError(w, apierr.New(apierr.RouteNotFound))
			return
		}
		o.next.ServeHTTP(w, r)
	}
}

// readyShared answers a /readyz request with a readiness check that
// started no earlier than the oldest request still waiting for one: the
// requests that arrive while a check runs share its answer. /readyz is
// open (probes carry no token), and each check costs the broker several
// round trips (stream info, the projector's status, the account's
// storage): a flood of probes used to run a check each, and slowed the
// writes behind them (/message's p50 from 0.33 to 1.2 ms under one); now
// it costs at most one check at a time. The check runs on a context of
// its own (2 s), so a prober that hangs up does not fail the others'; the
// ops server owns it, and closeChecks ends it and waits for it.
func (o *opsServer) readyShared(ctx context.Context) (map[string]any, error) {
	o.checkMu.Lock()
	c := o.check
	if c == nil {
		if o.checksClosed {
			o.checkMu.Unlock()
			return nil, serviceNotReady{"process", errors.New("stopping")}
		}
		c = &readyCheck{done: make(chan struct{})}
		o.check = c
		o.checkRuns.Add(1)
		go o.runCheck(c)
	}
	o.checkMu.Unlock()
	select {
	case <-c.done:
		return c.info, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runCheck runs the readiness check c, then lets the next request start
// another.
func (o *opsServer) runCheck(c *readyCheck) {
	defer o.checkRuns.Done()
	ctx, cancel := context.WithTimeout(o.checksCtx, 2*time.Second)
	defer cancel()
	c.info, c.err = o.ready(ctx)
	o.checkMu.Lock()
	o.check = nil
	o.checkMu.Unlock()
	close(c.done)
}

// closeChecks ends the readiness check in flight, if any, waits for it,
// and answers later /readyz requests "not ready": the services it asks
// are about to close.
func (o *opsServer) closeChecks() {
	o.checkMu.Lock()
	o.checksClosed = true
	o.checkMu.Unlock()
	o.stopChecks()
	o.checkRuns.Wait()
}

// ready asks the broker connection, every service and the broker's
// storage; the first failing service is named, and a full store is said
// before any of them (it is the one no retry fixes). A key two services
// report is the first's.
func (o *opsServer) ready(ctx context.Context) (map[string]any, error) {
	info := map[string]any{}
	if st := o.nc.Status(); st != nats.CONNECTED {
		return info, errors.New("broker connection " + st.String())
	}
	var failed error
	for _, c := range o.checks {
		more, err := c.check(ctx)
		for k, v := range more {
			// The first service to say a key says it: a process's own
			// projector (added first) before what its ingest asked of
			// whichever projector replica answered over the broker.
			if _, said := info[k]; !said {
				info[k] = v
			}
		}
		if err != nil && failed == nil {
			failed = serviceNotReady{c.name, err}
		}
	}
	if u, err := o.store.measure(ctx); err == nil && u.Full() {
		return info, storeFullError{u: u}
	}
	if o.store.disk != nil {
		if d := o.store.disk(); d.Full() {
			return info, storeFullError{disk: &d}
		}
	}
	if failed != nil {
		return info, failed
	}
	info["ready"] = true
	return info, nil
}

// serviceNotReady is a /readyz failure of a service (503
// service_not_ready): its name and why, once (the projector's own errors
// begin with its name too). It was answered broker_unavailable, which
// sent an operator looking at a broker that was fine while the projector
// rebuilt.
type serviceNotReady struct {
	name string
	err  error
}

func (e serviceNotReady) Error() string {
	msg := e.err.Error()
	if strings.HasPrefix(msg, e.name+": ") {
		return msg
	}
	return e.name + ": " + msg
}

func (e serviceNotReady) Unwrap() error { return e.err }

// storeFullError is a /readyz failure: the broker's storage is full (its
// limit u, or the disk under the embedded broker's store when disk is
// set), so every write is refused (507 store_full) until an operator frees
// or adds storage.
type storeFullError struct {
	u    storage.Usage
	disk *storage.Disk
}

func (e storeFullError) Error() string {
	if e.disk != nil {
		return e.disk.Why()
	}
	return fmt.Sprintf("broker storage full: %d of %d bytes used; writes are refused (store_full) until storage is freed or its limit raised (PUSHGO_MAX_STORE; a cluster account's max_file)",
		e.u.Used, e.u.Limit)
}

// deadLetters answers GET /deadletters: the log entries the projector set
// aside because it cannot fold them (the last 100 of each stream), and how
// many the projection holds. An operator reads an entry itself from the
// log: nats stream get <stream> <seq>.
func (o *opsServer) deadLetters(w http.ResponseWriter, r *http.Request) {
	p := o.proj()
	if p == nil {
		o.answerError(w, apierr.New(apierr.RouteNotFound))
		return
	}
	if o.token == nil {
		// A public gateway's API answers a channel's contents to whoever
		// holds its password; dead letters quote the log of every
		// channel. Who asks cannot be told from here (a proxy on this
		// host makes every request a loopback one, with no forwarding
		// header unless configured to add one), so they are listed to the
		// holder of the gateway's token only.
		o.answerError(w, &apierr.Error{Code: apierr.AuthenticationFailed,
			Detail: "/deadletters needs PUSHGO_TOKEN (its entries quote the log of every channel); each dead letter is also in this process's log"})
		return
	}
	// The TCP peer is the client here (a proxy in front answers this path
	// itself: compose's Caddy, 404).
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ctx := limits.WithClient(r.Context(), host)
	if aerr := o.authFails.AuthCheck(ctx); aerr != nil {
		o.answerError(w, aerr)
		return
	}
	got, ok := httpapi.ParseBearer(r.Header.Get("Authorization"))
	sum := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(sum[:], o.token[:]) != 1 {
		o.authFails.AuthFailed(ctx)
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushgo"`)
		o.answerError(w, apierr.New(apierr.AuthenticationFailed))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		o.answerError(w, apierr.New(apierr.MethodNotAllowed))
		return
	}
	items, total, err := p.DeadLetters(100)
	if err != nil {
		o.answerError(w, &apierr.Error{Code: apierr.ReadUnavailable, Detail: "dead letters unreadable: " + err.Error(), RetryAfter: 1})
		return
	}
	if items == nil {
		items = []store.DeadLetter{}
	}
	b, merr := apierr.EncodeOK(map[string]any{"total": total, "items": items})
	if merr != nil {
		o.answerError(w, apierr.New(apierr.InternalError))
		return
	}
	write(w, http.StatusOK, b)
}

func (o *opsServer) answer(w http.ResponseWriter, r *http.Request, data map[string]any, err error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		o.answerError(w, apierr.New(apierr.MethodNotAllowed))
		return
	}
	var full storeFullError
	if errors.As(err, &full) {
		o.answerError(w, &apierr.Error{Code: apierr.StoreFull, Detail: "not ready: " + err.Error()})
		return
	}
	var service serviceNotReady
	if errors.As(err, &service) {
		o.answerError(w, &apierr.Error{Code: apierr.ServiceNotReady, Detail: "not ready: " + err.Error(), RetryAfter: 1})
		return
	}
	if err != nil {
		o.answerError(w, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "not ready: " + err.Error(), RetryAfter: 1})
		return
	}
	b, merr := apierr.EncodeOK(data)
	if merr != nil {
		o.answerError(w, apierr.New(apierr.InternalError))
		return
	}
	write(w, http.StatusOK, b)
}

func (o *opsServer) answerError(w http.ResponseWriter, e *apierr.Error) {
	b, _ := apierr.EncodeError(e)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	write(w, e.Status(), b)
}

func write(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// storeGauge measures the broker's file storage for /readyz and /metrics,
// at most once a second.
type storeGauge struct {
	js    jetstream.JetStream
	limit int64
	// disk measures the disk under the embedded broker's store (nil for
	// an external broker): a disk that fills below the limit fails every
	// write as surely.
	disk func() storage.Disk

	mu   sync.Mutex
	at   time.Time
	last storage.Usage // last measured
	err  error         // of the last measure
}

func newStoreGauge(nc *nats.Conn, limit int64, disk func() storage.Disk) *storeGauge {
	js, _ := jetstream.New(nc) // fails only on options it is not given
	return &storeGauge{js: js, limit: limit, disk: disk}
}

// diskFull reports whether the disk under the embedded broker's store is
// full (false for an external broker).
func (s *storeGauge) diskFull() bool { return s.disk != nil && s.disk().Full() }

// measure asks the broker now (/readyz).
func (s *storeGauge) measure(ctx context.Context) (storage.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.measureLocked(ctx)
}

// usage is the storage as measured within the last second (/metrics asks
// three times a scrape).
func (s *storeGauge) usage(ctx context.Context) (storage.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.at) < time.Second {
		return s.last, s.err
	}
	return s.measureLocked(ctx)
}

func (s *storeGauge) measureLocked(ctx context.Context) (storage.Usage, error) {
	var u storage.Usage
	if u, s.err = storage.Measure(ctx, s.js, s.limit); s.err == nil {
		s.last = u
	}
	s.at = time.Now()
	return s.last, s.err
}

// collectors are pushgo_store_used_bytes, pushgo_store_limit_bytes and
// pushgo_store_full, for an alert rule (pushgo_store_full == 1, or used
// over limit above 0.9), and with the embedded broker
// pushgo_store_disk_free_bytes and pushgo_store_disk_size_bytes. While the
// broker does not answer they keep the last measure.
func (s *storeGauge) collectors() []prometheus.Collector {
	measure := func() storage.Usage {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		u, _ := s.usage(ctx)
		return u
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_store_used_bytes",
			Help: "Broker file storage (JetStream) the gateway's streams and buckets use."},
			func() float64 { return float64(measure().Used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_store_limit_bytes",
			Help: "Broker file storage limit: PUSHGO_MAX_STORE for the embedded broker, the account's limit on a cluster; 0 when unknown."},
			func() float64 { return float64(measure().Limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_store_full",
			Help: "1 when less than 1 MiB of the broker's file storage is left, or of the disk under the embedded broker's store, or JetStream failed a write there: writes are refused with 507 store_full."},
			func() float64 {
				if measure().Full() || s.diskFull() {
					return 1
				}
				return 0
			}),
	}
	if s.disk != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_store_disk_free_bytes",
				Help: "Free space of the file system under the embedded broker's store (what the process may still write there)."},
				func() float64 { return float64(s.disk().Free) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_store_disk_size_bytes",
				Help: "Size of the file system under the embedded broker's store."},
				func() float64 { return float64(s.disk().Size) }))
	}
	return cs
}

package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushgo/gateway/schemas/apierr"
)

// readiness is one service's part of /readyz: nil when it can do its
// work, else why not (naming what is down). info, when not nil, adds
// details to the answer (the projector's applied sequence and lag).
type readiness func(ctx context.Context) (info map[string]any, err error)

// opsServer serves /healthz, /readyz and /metrics for every target of the
// process, in front of the ingest API when this process runs it: probes
// and scrapers see every process of a scaled deployment alike. These
// paths are open even when PUSHGO_TOKEN is set.
type opsServer struct {
	nc       *nats.Conn
	checks   []namedReadiness
	registry *prometheus.Registry
	metrics  http.Handler
	next     http.Handler // the ingest API, or nil
}

type namedReadiness struct {
	name  string
	check readiness
}

func newOpsServer(nc *nats.Conn) *opsServer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &opsServer{nc: nc, registry: reg, metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})}
}

// add registers a service's readiness and metrics.
func (o *opsServer) add(name string, check readiness, cs ...prometheus.Collector) error {
	o.checks = append(o.checks, namedReadiness{name, check})
	for _, c := range cs {
		if err := o.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (o *opsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		o.answer(w, r, map[string]any{"alive": true}, nil)
	case "/readyz":
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		info, err := o.ready(ctx)
		o.answer(w, r, info, err)
	case "/metrics":
		o.metrics.ServeHTTP(w, r)
	default:
		if o.next == nil {
			o.answerError(w, apierr.New(apierr.RouteNotFound))
			return
		}
		o.next.ServeHTTP(w, r)
	}
}

// ready asks the broker connection and every service; the first failure
// names its service.
func (o *opsServer) ready(ctx context.Context) (map[string]any, error) {
	info := map[string]any{}
	if st := o.nc.Status(); st != nats.CONNECTED {
		return info, errors.New("broker connection " + st.String())
	}
	for _, c := range o.checks {
		more, err := c.check(ctx)
		for k, v := range more {
			info[k] = v
		}
		if err != nil {
			return info, errors.New(c.name + ": " + err.Error())
		}
	}
	info["ready"] = true
	return info, nil
}

func (o *opsServer) answer(w http.ResponseWriter, r *http.Request, data map[string]any, err error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		o.answerError(w, apierr.New(apierr.MethodNotAllowed))
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

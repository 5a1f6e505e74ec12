package httpapi

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/schemas/apierr"
)

// metrics are the HTTP front's Prometheus metrics, on a registry of its
// own (no global state).
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	appends  *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pushgo_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_operations_total", Help: "Write operations by name and outcome (appended, replayed, rejected).",
		}, []string{"op", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_http_errors_total", Help: "Error answers by route and error code (the catalog code; for an integration tool's own rules, a code named after the tool).",
		}, []string{"route", "code"}),
	}
	return m
}

// observe counts one answered request; code is the catalog code of an
// error answer ("" for none).
func (m *metrics) observe(route string, status int, code apierr.Code, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
	if code != "" {
		m.errors.WithLabelValues(route, string(code)).Inc()
	}
}

// errorCodeKey is the echo context key under which writeErr (and
// RecordErrorCode) leaves the code of the error answered, for the errors
// metric.
const errorCodeKey = "pushgo.error_code"

// RecordErrorCode records code as the error code of c's answer, for
// pushgo_http_errors_total{route,code}, as writeErr does for the routes
// answering in the PushGo envelope: for routes that answer errors in
// another shape (the integrations answer each in its tool's own). code is
// the catalog code of the error where there is one. The last call before
// the answer is counted wins; nothing is counted without one.
func RecordErrorCode(c *echo.Context, code apierr.Code) { c.Set(errorCodeKey, code) }

package pusher

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/schemas/streams"
)

// metrics are the pusher's Prometheus metrics (no global registry).
type metrics struct {
	tasks            prometheus.Counter
	fanoutSeconds    prometheus.Histogram
	outcomes         *prometheus.CounterVec
	retries          *prometheus.CounterVec
	retired          *prometheus.CounterVec
	providerSeconds  *prometheus.HistogramVec
	acceptToProvider prometheus.Histogram
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	return &metrics{
		tasks: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_tasks_total", Help: "Delivery tasks created by the fan-out."}),
		fanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushgo_pusher_fanout_seconds",
			Help: "Time to expand one operation into its tasks.", Buckets: latencyBuckets}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushgo_pusher_deliveries_total",
			Help: "Settled deliveries by provider and outcome."}, []string{"provider", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushgo_pusher_retries_total",
			Help: "Deliveries scheduled for another attempt."}, []string{"provider"}),
		retired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushgo_pusher_retired_tokens_total",
			Help: "Provider tokens retired after a permanent token error."}, []string{"provider"}),
		providerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pushgo_pusher_provider_seconds",
			Help: "Provider call latency.", Buckets: latencyBuckets}, []string{"provider"}),
		acceptToProvider: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushgo_pusher_accept_to_provider_seconds",
			Help: "From the operation's acceptance to the provider accepting the push.", Buckets: latencyBuckets}),
	}
}

// Collectors are the pusher's metrics for the process's /metrics.
func (p *Pusher) Collectors() []prometheus.Collector {
	m := p.metrics
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushgo_pusher_task_backlog",
		Help: "Delivery tasks waiting or in flight (sampled every few seconds)."}, func() float64 { return float64(p.backlog.Load()) })
	return []prometheus.Collector{m.tasks, m.fanoutSeconds, m.outcomes, m.retries, m.retired, m.providerSeconds, m.acceptToProvider, backlog}
}

// sampleBacklog refreshes the backlog gauge from the sender consumer until
// ctx ends: one API call every interval, not one per scrape.
func (p *Pusher) sampleBacklog(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if c, err := p.js.Consumer(ctx, streams.Deliveries, SendConsumer); err == nil {
			if info, err := c.Info(ctx); err == nil {
				p.backlog.Store(info.NumPending + uint64(info.NumAckPending))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

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
	takeovers        prometheus.Counter
	summaries        prometheus.Counter
	gapsFilled       prometheus.Counter
	floorRepairs     prometheus.Counter
	receiptRetries   prometheus.Counter
	inboxMisses      prometheus.Counter
	inboxRepublished prometheus.Counter
	inboxRetrying    prometheus.Gauge
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	return &metrics{
		tasks: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_tasks_total", Help: "Deliveries scheduled by this replica's partitions."}),
		fanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushgo_pusher_fanout_seconds",
			Help: "From taking an operation to scheduling its partition's deliveries.", Buckets: latencyBuckets}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_partition_takeovers_total",
			Help: "Delivery partitions this replica became the owner of (each resets the partition to its checkpoint)."}),
		summaries: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_summaries_total",
			Help: "(operation, partition) summaries written."}),
		gapsFilled: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_partition_gaps_filled_total",
			Help: "Operations a partition read from the log because their message had not been delivered in order."}),
		floorRepairs: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_partition_floor_repairs_total",
			Help: "Resets of a partition whose acknowledgements the broker ignored (a previous owner's acknowledgement after a takeover) or could not be given."}),
		receiptRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_receipt_retries_total",
			Help: "Outcome receipts of the retry queue the broker did not store at once, tried again (the task held meanwhile, not sent again)."}),
		inboxMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_inbox_misses_total",
			Help: "Pushes sent whose inbox item the broker did not store, also when published again for 2 minutes (the app cannot pull them if the provider lost them)."}),
		inboxRepublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushgo_pusher_inbox_republished_total",
			Help: "Inbox items the broker did not store at first (their stream had no leader) and stored when published again."}),
		inboxRetrying: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushgo_pusher_inbox_retrying",
			Help: "Inbox items not stored at first, waiting to be published again (at most 4096; past that, counted as misses)."}),
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
		Help: "Deliveries scheduled and not ended, plus retry tasks waiting or in flight (sampled every few seconds)."},
		func() float64 { return float64(uint64(p.window.inFlight()) + p.backlog.Load()) })
	return []prometheus.Collector{m.tasks, m.fanoutSeconds, m.outcomes, m.retries, m.retired, m.providerSeconds, m.acceptToProvider,
		m.takeovers, m.summaries, m.gapsFilled, m.floorRepairs, m.receiptRetries, m.inboxMisses, m.inboxRepublished, m.inboxRetrying, backlog}
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

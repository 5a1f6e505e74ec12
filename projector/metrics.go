package projector

import "github.com/prometheus/client_golang/prometheus"

// The projection store's background work, read from Pebble once per scrape
// (its metrics take locks and copy every level's figures).
var (
	compactionDebtDesc = prometheus.NewDesc("pushgo_projection_compaction_debt_bytes",
		"Bytes the projection store (Pebble) estimates it must compact before its tree is back in shape; growing while writes outrun compactions.", nil, nil)
	compactionsDesc = prometheus.NewDesc("pushgo_projection_compactions_running",
		"Compactions of the projection store running now.", nil, nil)
	l0SublevelsDesc = prometheus.NewDesc("pushgo_projection_l0_sublevels",
		"Depth of the projection store's level 0: every read looks in each sublevel; Pebble slows writes down past 20.", nil, nil)
	diskBytesDesc = prometheus.NewDesc("pushgo_projection_disk_bytes",
		"Room the projection store takes on disk: tables, WAL and manifest.", nil, nil)
	writeStallsDesc = prometheus.NewDesc("pushgo_projection_write_stalls_total",
		"Times the projection store (Pebble) stopped the fold's writes because its flushes or compactions fell behind, since the store opened.", nil, nil)
	writeStalledDesc = prometheus.NewDesc("pushgo_projection_write_stall_seconds_total",
		"Time the fold's writes waited in those stalls, since the store opened; the projection lags the log meanwhile.", nil, nil)
	slowDiskDesc = prometheus.NewDesc("pushgo_projection_slow_disk_operations_total",
		"Disk operations of the projection store that Pebble's health check reported slow, since the store opened.", nil, nil)
)

// storeCollector exports Projector.StoreBackground.
type storeCollector struct{ p *Projector }

func (storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- compactionDebtDesc
	ch <- compactionsDesc
	ch <- l0SublevelsDesc
	ch <- diskBytesDesc
	ch <- writeStallsDesc
	ch <- writeStalledDesc
	ch <- slowDiskDesc
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	bg := c.p.StoreBackground()
	ch <- prometheus.MustNewConstMetric(compactionDebtDesc, prometheus.GaugeValue, float64(bg.CompactionDebtBytes))
	ch <- prometheus.MustNewConstMetric(compactionsDesc, prometheus.GaugeValue, float64(bg.Compactions))
	ch <- prometheus.MustNewConstMetric(l0SublevelsDesc, prometheus.GaugeValue, float64(bg.L0Sublevels))
	ch <- prometheus.MustNewConstMetric(diskBytesDesc, prometheus.GaugeValue, float64(bg.DiskBytes))
	ch <- prometheus.MustNewConstMetric(writeStallsDesc, prometheus.CounterValue, float64(bg.WriteStalls))
	ch <- prometheus.MustNewConstMetric(writeStalledDesc, prometheus.CounterValue, bg.WriteStalled.Seconds())
	ch <- prometheus.MustNewConstMetric(slowDiskDesc, prometheus.CounterValue, float64(bg.SlowDiskOps))
}

// Collectors are the projector's Prometheus metrics, for the process's
// /metrics: the applied sequence, the fold lag, whether the fold stopped,
// the projection store's background work, the rebuilds and the dead
// letters, and what bounded the reads.
func (p *Projector) Collectors() []prometheus.Collector {
	return append(append(p.readCollectors(), p.deadLetterCollectors()...), []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projector_applied_sequence", Help: "Last PUSHGO_OPS sequence folded and committed.",
		}, func() float64 { return float64(p.Applied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projector_lag_operations", Help: "Operations in PUSHGO_OPS not yet folded and committed.",
		}, func() float64 { return float64(p.Lag()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projector_failed", Help: "1 when the fold stopped on an error.",
		}, func() float64 {
			if p.Err() != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pushgo_projector_groups_total",
			Help: "Groups of operations the fold committed since start, each one atomic write of the projection store; operations folded over groups is their mean size (small when idle, up to the batch size under load and while catching up).",
		}, func() float64 { return float64(p.groups.Load()) }),
		storeCollector{p},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pushgo_projector_rebuilds_total",
			Help: "Automatic rebuilds of the projection from the log since start: found corrupt, its store failed, its fold kept failing, or it held a dead letter this version folds.",
		}, func() float64 { return float64(p.Rebuilds()) }),
	}...)
}

// deadLetterCollectors count the log entries the fold set aside, per
// stream: those the projection holds now (alert on > 0) and those this
// process set aside since start.
func (p *Projector) deadLetterCollectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for i, stream := range foldedStreams {
		labels := prometheus.Labels{"stream": stream}
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pushgo_projector_dead_letters", ConstLabels: labels,
				Help: "Log entries the fold set aside because they cannot be folded (dead letters) that the projection holds; listed at /deadletters.",
			}, func() float64 { return float64(p.heal.held[i].Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pushgo_projector_dead_letters_total", ConstLabels: labels,
				Help: "Log entries the fold set aside because they cannot be folded, since start.",
			}, func() float64 { return float64(p.heal.setAside[i].Load()) }),
		)
	}
	return cs
}

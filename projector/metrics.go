package projector

import "github.com/prometheus/client_golang/prometheus"

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
			Name: "pushgo_projector_lag_operations", Help: "Operations in PUSHGO_OPS not yet folded.",
		}, func() float64 { return float64(p.Lag()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projector_failed", Help: "1 when the fold stopped on an error.",
		}, func() float64 {
			if p.Err() != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projection_compaction_debt_bytes",
			Help: "Bytes the projection store (Pebble) estimates it must compact before its tree is back in shape; growing while writes outrun compactions.",
		}, func() float64 { return float64(p.StoreBackground().CompactionDebtBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projection_compactions_running", Help: "Compactions of the projection store running now.",
		}, func() float64 { return float64(p.StoreBackground().Compactions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projection_l0_sublevels",
			Help: "Depth of the projection store's level 0: every read looks in each sublevel; Pebble slows writes down past 20.",
		}, func() float64 { return float64(p.StoreBackground().L0Sublevels) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushgo_projection_disk_bytes", Help: "Room the projection store takes on disk: tables, WAL and manifest.",
		}, func() float64 { return float64(p.StoreBackground().DiskBytes) }),
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

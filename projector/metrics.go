package projector

import "github.com/prometheus/client_golang/prometheus"

// Collectors are the projector's Prometheus metrics, for the process's
// /metrics: the applied sequence, the fold lag and whether the fold stopped.
func (p *Projector) Collectors() []prometheus.Collector {
	return append(p.readCollectors(), []prometheus.Collector{
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
	}...)
}

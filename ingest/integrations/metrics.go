package integrations

import "github.com/prometheus/client_golang/prometheus"

// metrics are the integration routes' own Prometheus metrics (their
// requests and error answers are counted by the HTTP front's): what an
// operator cannot read from the answers the tools log, chiefly the Events
// the gateway closed on its own.
type metrics struct {
	// amAlerts counts the alerts of Alertmanager and Grafana
	// notifications by outcome, the answer's: opened, updated,
	// unchanged, resolved, absent, and gone (an alert its group's
	// complete notification no longer named, its Event closed here).
	amAlerts *prometheus.CounterVec
	// amTruncated counts notifications cut by the sender's max_alerts,
	// whose left-out alerts wait for a later notification.
	amTruncated prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		amAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_alertmanager_alerts_total",
			Help: "Alerts of Alertmanager and Grafana notifications applied, by outcome (opened, updated, unchanged, resolved, absent: resolved with no open event; gone: left out of its group's complete notification, its event closed by the gateway). With PUSHGO_ALERTMANAGER_EXPIRE_AFTER set, a repeat moves the event's deadline and counts as updated.",
		}, []string{"outcome"}),
		amTruncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgo_alertmanager_truncated_notifications_total",
			Help: "Alertmanager notifications that max_alerts cut (truncatedAlerts > 0): the alerts left out are applied when a later notification carries them.",
		}),
	}
	// Every outcome is exported from the start, so a rate or an alert on
	// one is defined before its first alert.
	for _, o := range []string{amOpened, amUpdated, amUnchanged, amResolved, amAbsent, amGone} {
		m.amAlerts.WithLabelValues(o)
	}
	return m
}

// countAlertmanager counts a notification's alerts by the outcomes its
// answer counted, and the notification if max_alerts truncated it.
func (m *metrics) countAlertmanager(a amAnswer, truncated bool) {
	for _, c := range []struct {
		outcome string
		n       int
	}{{amOpened, a.Opened}, {amUpdated, a.Updated}, {amUnchanged, a.Unchanged}, {amResolved, a.Resolved}, {amAbsent, a.Absent}, {amGone, a.Gone}} {
		if c.n > 0 {
			m.amAlerts.WithLabelValues(c.outcome).Add(float64(c.n))
		}
	}
	if truncated {
		m.amTruncated.Inc()
	}
}

// Collectors are the integration routes' metrics, for the process's
// registry.
func (r *Routes) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.m.amAlerts, r.m.amTruncated}
}

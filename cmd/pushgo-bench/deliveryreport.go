package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/pusher/sender/apns"
)

func (d *deliveryReport) print(w io.Writer) { printDeliveryTable(w, d.o, d) }
func (d *deliveryReport) vouches() string   { return "every notification received by the fake provider" }

func (d *deliveryReport) failures() []failure {
	var out []failure
	for _, p := range d.rows(d.o) {
		out = append(out, failure{label: "delivery phases: " + p.name, what: "(messages not accepted, notifications not received)",
			errors: p.row.errors, kinds: p.row.errKinds})
	}
	if g := d.gorush; g != nil {
		out = append(out, failure{label: "delivery phases: " + d.o.gorushLabel(), what: "(requests not accepted, notifications not received)",
			errors: g.errors, kinds: g.errKinds})
	}
	return out
}

type namedRow struct {
	name string
	row  *deliveryRow
}

// rows lists the delivery phases in table order.
func (d *deliveryReport) rows(o *deliveryPhase) []namedRow {
	thr := func(lat time.Duration) string {
		return fmt.Sprintf("delivery @%-4s (%d dev x %d)", fmtLatency(lat), o.deliveryDevices, o.deliveryMsgs)
	}
	return []namedRow{
		{thr(0), &d.thr0},
		{thr(o.providerLatency), &d.thrLat},
		{fmt.Sprintf("fan-out %d devices", o.fanoutDevices), &d.fan},
		{fmt.Sprintf("%.0f ops/s x %d dev accept->provider", o.latencyRate, o.latencyDevices), &d.lat},
	}
}

func (d *deliveryReport) rateOK(o *deliveryPhase) bool {
	return d.thrLat.rate >= o.deliveryRateBudget && d.thrLat.errors == 0
}
func (d *deliveryReport) fanoutOK(o *deliveryPhase) bool {
	return d.fan.took > 0 && d.fan.took < o.fanoutBudget && d.fan.errors == 0
}
func (d *deliveryReport) latencyOK(o *deliveryPhase) bool {
	return d.lat.notifs > 0 && d.lat.p99 <= o.latencyBudget && d.lat.errors == 0
}

// printDeliveryTable prints the delivery phases (issue 4's budget).
func printDeliveryTable(w io.Writer, o *deliveryPhase, d *deliveryReport) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-40s %8s %8s %9s %8s %8s   %s\n", "phase", "notifs", "time", "notifs/s", "p50", "p99", "budget")
	line := func(name string, r deliveryRow, showRate bool, note string) {
		rate := ""
		if showRate && r.rate > 0 {
			rate = fmt.Sprintf("%.0f", r.rate)
		}
		took := ""
		if r.took > 0 {
			took = fmtSecs(r.took)
		}
		out := fmt.Sprintf("%-40s %8d %8s %9s %8s %8s   %s", name, r.notifs, took, rate, fmtDur(r.p50), fmtDur(r.p99), note)
		fmt.Fprintln(w, strings.TrimRight(out, " "))
	}
	rows := d.rows(o)
	line(rows[0].name, d.thr0, true, fmt.Sprintf("(not budgeted; steady %.0f/s)", d.thr0.steady))
	line(rows[1].name, d.thrLat, true, fmt.Sprintf("(>= %.0f/s: %s; steady %.0f/s)", o.deliveryRateBudget, verdict(d.rateOK(o)), d.thrLat.steady))
	line(rows[2].name, d.fan, false, fmt.Sprintf("(< %s: %s; first push after %s, scheduled in %s (summed over partitions))",
		fmtSecs(o.fanoutBudget), verdict(d.fanoutOK(o)), fmtDur(d.fan.first), fmtDur(d.fan.expand)))
	line(rows[3].name, d.lat, true, fmt.Sprintf("(p99 <= %s: %s; %d messages, late %d; backlog at the end: %d ops unacknowledged, %d retry tasks)",
		fmtDur(o.latencyBudget), verdict(d.latencyOK(o)), d.lat.sent, d.lat.late, d.lat.opsBacklog, d.lat.taskBacklog))

	transport := fmt.Sprintf("TLS HTTP/2, %d connections of up to 1,000 streams each", apns.DefaultConnections)
	if o.deliveryProvider == providerFCM {
		transport = "HTTP/1.1, the FCM sender's default transport"
	}
	fmt.Fprintf(w, "  provider: the real %s sender against a fake %s in its own process (%s); pusher: %d partitions (-delivery-partitions, else the gateway's for a new deployment), 512 workers, 20,000 deliveries in flight\n",
		o.deliveryProvider, o.deliveryProvider, transport, o.deliveryPartitions())
	fmt.Fprintf(w, "  durable per operation: each partition acknowledges the operations it finished and recorded (one summary per operation and partition; file store, sync=%s)\n",
		gateway.Defaults().Sync)
	fmt.Fprintf(w, "  notifs/s: from the first request to the last push at the fake; steady: between the 10th and 90th percentile push;\n")
	fmt.Fprintf(w, "  p50/p99: accept-to-provider at the fake (arrival - accepted_at, whole ms: up to 1 ms high); fan-out time from the 200 answer\n")
	if d.gorush == nil {
		fmt.Fprintf(w, "  for scale: gorush against a fake APNs at 20 ms sends ~4,500/s with its defaults, ~15,800/s tuned, with no durability\n")
	}
	if ceiling := float64(o.deliveryDevices) / max(o.providerLatency.Seconds(), 1e-9); o.deliveryProvider == providerFCM && ceiling < 2*o.deliveryRateBudget {
		fmt.Fprintf(w, "  note: one FCM device's push waits for the answer to its last: %d devices at %s cannot exceed %.0f/s\n",
			o.deliveryDevices, fmtLatency(o.providerLatency), ceiling)
	}
	fmt.Fprintf(w, "  set-up (not budgeted): %d devices and 3 channels in %s\n", d.pool, fmtSecs(d.setup))
	for _, p := range rows {
		if p.row.dups > 0 {
			fmt.Fprintf(w, "  %s: %d notifications received twice (retried: at least once)\n", p.name, p.row.dups)
		}
		if p.row.cpu.others > 0.25 {
			fmt.Fprintf(w, "  note: %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
				p.name, p.row.cpu.others, numCPU())
		}
	}
	if d.gorush != nil {
		printSideBySide(w, o, d.thrLat, *d.gorush)
	}
}

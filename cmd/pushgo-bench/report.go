package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

func printHeader(w io.Writer, o options) {
	modes := make([]string, len(o.modes))
	for i, m := range o.modes {
		modes[i] = m.label()
	}
	fmt.Fprintf(w, "pushgo-bench: %s, GOMAXPROCS=%d, NumCPU=%d; %s per phase after %s warm-up, %d run(s) (median)\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), o.duration, o.warmup, o.runs)
	if o.write || o.projector {
		fmt.Fprintf(w, "  %d concurrent publishers/clients (%s HTTP client), %d events + %d things, ~%d-byte bodies, gateway target %q, modes: %s\n",
			o.concurrency, o.client, o.entities, o.entities, o.bodySize, o.target, strings.Join(modes, ", "))
	}
	var tables []string
	if o.write {
		tables = append(tables, "write")
	}
	if o.projector {
		tables = append(tables, fmt.Sprintf("projector (%d operations folded; /channel/history: %d requests of %d after %d appends; /thing/get at %.0f/s)",
			o.ops, o.historyReqs, o.historyLimit, o.historyOps, o.getRate))
	}
	if o.delivery {
		tables = append(tables, fmt.Sprintf("delivery (%s; %d devices x %d messages at 0 and %s provider latency; fan-out to %d devices; %.0f messages/s to %d devices)",
			o.deliveryProvider, o.deliveryDevices, o.deliveryMsgs, fmtLatency(o.providerLatency), o.fanoutDevices, o.latencyRate, o.latencyDevices))
	}
	if o.integrations {
		tables = append(tables, integHeader(o))
	}
	fmt.Fprintf(w, "  phases: %s\n", strings.Join(tables, ", "))
}

// printReport prints the final tables and verdicts, and reports whether
// any operation failed (which makes the exit code non-zero).
func printReport(w io.Writer, o options, reps []modeReport, proj *projReport, del *deliveryReport, integ *integReport) (failed bool) {
	if len(reps) > 0 {
		printWriteTable(w, o, reps)
	}
	if proj != nil {
		printProjTable(w, o, proj)
	}
	if del != nil {
		printDeliveryTable(w, o, del)
	}
	if integ != nil {
		printIntegTable(w, o, integ)
	}

	var total int64
	report := func(label string, res *result) {
		if res.errors == 0 {
			return
		}
		total += res.errors
		fmt.Fprintf(w, "\n!!! %s: %d FAILED operations\n", label, res.errors)
		for _, k := range slices.Sorted(maps.Keys(res.errKinds)) {
			fmt.Fprintf(w, "!!!   %6d x %s\n", res.errKinds[k], k)
		}
	}
	for _, r := range reps {
		for _, p := range phases(o, &r) {
			report(r.mode.label()+" "+p.name, p.res)
		}
	}
	if proj != nil {
		for _, p := range proj.phases(o) {
			report("projector phases: "+p.name, p.res)
		}
	}
	if del != nil {
		for _, p := range del.rows(o) {
			if p.row.errors == 0 {
				continue
			}
			total += p.row.errors
			fmt.Fprintf(w, "\n!!! delivery phases: %s: %d FAILED (messages not accepted, notifications not received)\n", p.name, p.row.errors)
			for _, k := range slices.Sorted(maps.Keys(p.row.errKinds)) {
				fmt.Fprintf(w, "!!!   %6d x %s\n", p.row.errKinds[k], k)
			}
		}
	}
	if integ != nil {
		for _, p := range integ.phases(o) {
			report("integrations phases: "+p.name, p.res)
		}
	}
	if total > 0 {
		fmt.Fprintf(w, "\n!!! ERRORS: %d operations failed; exit status 1\n", total)
		return true
	}
	what := "every request answered 200 with success true (" + o.client + " client), every publish acknowledged"
	if del != nil {
		what += ", every notification received by the fake provider"
	}
	if integ != nil {
		what += ", every integration request answered 2xx with the expected result"
	}
	fmt.Fprintf(w, "\nerrors: 0 (%s)\n", what)
	return false
}

func printWriteTable(w io.Writer, o options, reps []modeReport) {
	row := func(mode, phase string, r result, note string) {
		line := fmt.Sprintf("%-12s %-16s %8.0f %9s %9s   %s", mode, phase, r.rate, fmtDur(r.p50), fmtDur(r.p99), note)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-12s %-16s %8s %9s %9s   %s\n", "mode", "phase", "ops/s", "p50", "p99", "ratio")
	for _, r := range reps {
		mode := r.mode.label()
		row(mode, "raw jetstream", r.raw, "")
		row(mode, "ours (http)", r.ours, fmt.Sprintf("%.2f (budget >= %.2f: %s)", ratio(r), o.ratioBudget, verdict(ratio(r) >= o.ratioBudget)))
		if a := r.oursAlt; a != nil {
			row(mode, altLabel(o), *a, fmt.Sprintf("%.2f (diag: the same load through the other HTTP client)", a.rate/max(r.raw.rate, 1)))
		}
		if f := r.floor; f != nil {
			row(mode, "http floor", *f, fmt.Sprintf("%.2f (diag: GET /healthz, HTTP only)", f.rate/max(r.raw.rate, 1)))
		}
		row(mode, lowLabel(o), r.low, fmt.Sprintf("(p99 budget %s: %s; target %.0f/s, late %d, skipped %d)",
			fmtDur(o.p99Budget), verdict(lowOK(o, r.low)), r.low.target, r.low.late, r.low.skipped))
		if rl := r.rawLow; rl != nil {
			row(mode, "raw @ same rate", *rl, fmt.Sprintf("(diag: raw jetstream open loop; late %d, skipped %d)", rl.late, rl.skipped))
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "budgets (informational; load through the %s client):\n", o.client)
	for _, r := range reps {
		fmt.Fprintf(w, "  %-12s ratio ours/raw %.2f >= %.2f: %-6s  p99 at %.0f%% load %s <= %s: %s\n", r.mode.label(),
			ratio(r), o.ratioBudget, verdict(ratio(r) >= o.ratioBudget), o.halfLoad*100, fmtDur(r.low.p99), fmtDur(o.p99Budget),
			verdict(lowOK(o, r.low)))
	}

	for _, r := range reps {
		for _, p := range phases(o, &r) {
			if p.res.note != "" {
				fmt.Fprintf(w, "  %-12s %s: %s\n", r.mode.label(), p.name, p.res.note)
			}
		}
	}
	for _, r := range reps {
		for _, p := range phases(o, &r) {
			if disturbed(*p.res) {
				fmt.Fprintf(w, "  note: %s %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
					r.mode.label(), p.name, p.res.cpu.others, numCPU())
			}
		}
	}
}

// printProjTable prints the projector phases (issue 3's budget).
func printProjTable(w io.Writer, o options, p *projReport) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-30s %8s %8s %9s %8s %8s   %s\n", "phase", "ops", "time", "ops/s", "p50", "p99", "ratio / budget")
	line := func(phase string, ops int64, took time.Duration, rate float64, p50, p99 time.Duration, note string) {
		col := func(ok bool, s string) string {
			if !ok {
				return ""
			}
			return s
		}
		out := fmt.Sprintf("%-30s %8d %8s %9s %8s %8s   %s", phase, ops,
			col(took > 0, fmtSecs(took)), col(rate > 0, fmt.Sprintf("%.0f", rate)),
			col(p50 > 0, fmtDur(p50)), col(p99 > 0, fmtDur(p99)), note)
		fmt.Fprintln(w, strings.TrimRight(out, " "))
	}
	n := int64(p.ops)
	line("populate (async publish)", n, p.populate, float64(n)/max(p.populate.Seconds(), 1e-9), 0, 0,
		fmt.Sprintf("(not budgeted; %d bytes/envelope)", p.bytes/max(n, 1)))
	line("raw ordered consume", n, p.consume.took, p.consume.rate(p.ops), 0, 0,
		fmt.Sprintf("(cpu %.2f cores)", p.consume.cpu.self))
	fr := p.foldRatio()
	rb := p.rebuildBudget(o)
	line("projector fold (rebuild)", n, p.fold.took, p.fold.rate(p.ops), 0, 0,
		fmt.Sprintf("%.2f (>= %.2g: %s), rebuild < %s: %s (cpu %.2f cores)", fr, o.foldRatioBudget, verdict(fr >= o.foldRatioBudget),
			fmtSecs(rb), verdict(p.fold.took < rb), p.fold.cpu.self))
	hist := func(label string, r result) {
		line(label, r.ops, 0, 0, r.p50, r.p99, fmt.Sprintf("(p99 <= %s: %s)", fmtDur(o.historyBudget), verdict(r.p99 <= o.historyBudget && r.ops > 0)))
	}
	hist(fmt.Sprintf("/channel/history %d (c=1)", o.historyLimit), p.histSingle)
	hist(fmt.Sprintf("/channel/history %d (c=%d)", o.historyLimit, o.historyClients), p.histMC)
	line("/thing/get under load", p.get.ops, 0, 0, p.get.p50, p.get.p99,
		fmt.Sprintf("(p99 <= %s: %s; %.0f/s, late %d, skipped %d)", fmtDur(o.getBudget), verdict(getOK(o, p.get)), p.get.target, p.get.late, p.get.skipped))
	line("  write load during /thing/get", p.getLoad.ops, 0, p.getLoad.rate, p.getLoad.p50, p.getLoad.p99,
		fmt.Sprintf("(%d clients, closed loop, not budgeted)", o.concurrency))
	fmt.Fprintf(w, "  history channel: %d operations; rebuild budget scaled from %s per million operations\n",
		p.histOps, fmtSecs(o.rebuildBudget))
	if p.get.note != "" {
		fmt.Fprintf(w, "  /thing/get phase: %s\n", p.get.note)
	}
	for _, ph := range p.phases(o) {
		if disturbed(*ph.res) {
			fmt.Fprintf(w, "  note: %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
				ph.name, ph.res.cpu.others, numCPU())
		}
	}
}

func (p *projReport) foldRatio() float64 {
	if p.consume.took <= 0 || p.fold.took <= 0 {
		return 0
	}
	return p.consume.took.Seconds() / p.fold.took.Seconds()
}

// rebuildBudget is o.rebuildBudget per million operations, scaled to p.ops.
func (p *projReport) rebuildBudget(o options) time.Duration {
	return time.Duration(float64(o.rebuildBudget) * float64(p.ops) / 1e6)
}

func (p *projReport) phases(o options) []namedResult {
	return []namedResult{
		{"/channel/history (c=1)", &p.histSingle},
		{fmt.Sprintf("/channel/history (c=%d)", o.historyClients), &p.histMC},
		{"/thing/get", &p.get},
		{"write load during /thing/get", &p.getLoad},
	}
}

func getOK(o options, r result) bool { return r.p99 <= o.getBudget && r.skipped == 0 && r.ops > 0 }

func fmtSecs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

type namedResult struct {
	name string
	res  *result
}

// phases lists the measured phases of r, in table order.
func phases(o options, r *modeReport) []namedResult {
	out := []namedResult{{"raw jetstream", &r.raw}, {"ours (http)", &r.ours}, {lowLabel(o), &r.low}}
	if r.oursAlt != nil {
		out = append(out, namedResult{altLabel(o), r.oursAlt})
	}
	if r.floor != nil {
		out = append(out, namedResult{"http floor", r.floor})
	}
	if r.rawLow != nil {
		out = append(out, namedResult{"raw @ same rate", r.rawLow})
	}
	return out
}

func ratio(r modeReport) float64 {
	if r.raw.rate <= 0 {
		return 0
	}
	return r.ours.rate / r.raw.rate
}

// lowOK is the latency budget: p99 within budget, measured from the
// scheduled times, and every scheduled operation issued.
func lowOK(o options, r result) bool { return r.p99 <= o.p99Budget && r.skipped == 0 }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// fmtDur prints a latency in milliseconds with a useful precision.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}

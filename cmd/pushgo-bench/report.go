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
	fmt.Fprintf(w, "  %d concurrent publishers/clients, %d events + %d things, ~%d-byte bodies, gateway target %q, modes: %s\n",
		o.concurrency, o.entities, o.entities, o.bodySize, o.target, strings.Join(modes, ", "))
}

// printReport prints the final table and verdicts, and reports whether any
// operation failed (which makes the exit code non-zero).
func printReport(w io.Writer, o options, reps []modeReport) (failed bool) {
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
	fmt.Fprintln(w, "budgets (informational):")
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

	var total int64
	for _, r := range reps {
		for _, p := range phases(o, &r) {
			if p.res.errors == 0 {
				continue
			}
			total += p.res.errors
			fmt.Fprintf(w, "\n!!! %s %s: %d FAILED operations\n", r.mode.label(), p.name, p.res.errors)
			for _, k := range slices.Sorted(maps.Keys(p.res.errKinds)) {
				fmt.Fprintf(w, "!!!   %6d x %s\n", p.res.errKinds[k], k)
			}
		}
	}
	if total > 0 {
		fmt.Fprintf(w, "\n!!! ERRORS: %d operations failed; exit status 1\n", total)
		return true
	}
	fmt.Fprintln(w, "\nerrors: 0 (every request answered 200 with success true, every publish acknowledged)")
	return false
}

type namedResult struct {
	name string
	res  *result
}

// phases lists the measured phases of r, in table order.
func phases(o options, r *modeReport) []namedResult {
	out := []namedResult{{"raw jetstream", &r.raw}, {"ours (http)", &r.ours}, {lowLabel(o), &r.low}}
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

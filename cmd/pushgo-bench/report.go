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

// printHeader prints the run's settings and each selected phase's entry.
func printHeader(w io.Writer, o *options) {
	fmt.Fprintf(w, "pushgo-bench: %s, GOMAXPROCS=%d, NumCPU=%d; %s per phase after %s warm-up, %d run(s) (median)\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), o.duration, o.warmup, o.runs)
	load, notes := false, ""
	var entries []string
	for _, p := range o.phases {
		if lp, ok := p.(loadPhase); ok {
			load = true
			if n := lp.loadNote(); n != "" {
				notes += ", " + n
			}
		}
		entries = append(entries, p.header())
	}
	if load {
		fmt.Fprintf(w, "  %d concurrent publishers/clients (%s HTTP client), %d events + %d things, ~%d-byte bodies, gateway target %q%s\n",
			o.concurrency, o.client, o.entities, o.entities, o.bodySize, o.target, notes)
	}
	fmt.Fprintf(w, "  phases: %s\n", strings.Join(entries, ", "))
}

// printReport prints the phases' tables, then their failed operations and
// the verdict, and reports whether any operation failed (which makes the
// exit code non-zero).
func printReport(w io.Writer, o *options, tables []table) (failed bool) {
	for _, t := range tables {
		t.print(w)
	}
	printBudgets(w, o, tables)
	var total int64
	for _, t := range tables {
		for _, f := range t.failures() {
			if f.errors == 0 {
				continue
			}
			total += f.errors
			what := f.what
			if what == "" {
				what = "operations"
			}
			fmt.Fprintf(w, "\n!!! %s: %d FAILED %s\n", f.label, f.errors, what)
			for _, k := range slices.Sorted(maps.Keys(f.kinds)) {
				fmt.Fprintf(w, "!!!   %6d x %s\n", f.kinds[k], k)
			}
		}
	}
	if total > 0 {
		fmt.Fprintf(w, "\n!!! ERRORS: %d operations failed; exit status 1\n", total)
		return true
	}
	what := "every request answered 200 with success true (" + o.client + " client), every publish acknowledged"
	for _, t := range tables {
		if v := t.vouches(); v != "" {
			what += ", " + v
		}
	}
	fmt.Fprintf(w, "\nerrors: 0 (%s)\n", what)
	return false
}

func fmtSecs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

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

// printBudgets prints the budgeted rows of every table, each beside its
// raw anchor, with the ratio and the budget.
func printBudgets(w io.Writer, o *options, tables []table) {
	var rows []budgetRow
	for _, t := range tables {
		if b, ok := t.(budgeted); ok {
			rows = append(rows, b.budgets()...)
		}
	}
	if len(rows) == 0 {
		return
	}
	runs := "one run"
	if o.runs > 1 {
		runs = fmt.Sprintf("medians of %d runs", o.runs)
	}
	fmt.Fprintf(w, "\nbudgets beside their raw anchors (%s; cores: the gateway's process, median, the load in processes of its own):\n", runs)
	fmt.Fprintf(w, "%-50s %-34s %-40s %6s  %s\n", "stage", "raw anchor, same run", "ours", "ratio", "budget")
	for _, r := range rows {
		ratio := ""
		if r.ratio > 0 || r.anchor != "" && !r.latency {
			ratio = fmt.Sprintf("%.2f", r.ratio)
		}
		line := fmt.Sprintf("%-50s %-34s %-40s %6s  %-14s %s", r.stage, r.anchor, r.ours, ratio, r.budget, verdict(r.ok))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// fmtRate prints a rate per second.
func fmtRate(r float64) string { return fmt.Sprintf("%.0f/s", r) }

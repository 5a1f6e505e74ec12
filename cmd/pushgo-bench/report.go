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

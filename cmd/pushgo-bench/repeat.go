package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Every phase measures each of its rows -runs times and reports the median
// (repeat). A row type says once, column by column, how repeated runs
// combine (median): the median of a rate or a latency, the sum of a failure
// count (a failure in any run is reported), the CPU figures of the most
// disturbed run.

// A combinable type says how repeated runs of it combine into one.
type combinable[R any] interface {
	columns() []column[R]
}

// A row is one measurement of a phase, the unit that repeat runs -runs
// times.
type row[R any] interface {
	combinable[R]
	// progress prints one run on stderr as it completes.
	progress(o *options, name string, run int)
}

// A column is one field of R and how runs combine into it. A field no
// column names is left zero in a combined row.
type column[R any] func(out *R, runs []R)

// repeat measures o.runs times, printing each run, and returns the median.
// measure gets the run's index from 0 (run 0 is the one profiled). It
// stops at the first error, which it prefixes with name, or when ctx ends.
func repeat[R row[R]](ctx context.Context, o *options, name string, measure func(run int) (R, error)) (R, error) {
	rows, err := rounds(ctx, o, []string{name}, func(_, run int) (R, error) { return measure(run) })
	if err != nil {
		var zero R
		return zero, err
	}
	return rows[0], nil
}

// rounds measures each of the named rows once per round, o.runs rounds,
// printing each run, and returns each row's median in names' order. Rows
// compared with each other (one's rate over another's) are measured so
// because a phase's state grows as it runs: measured one row's runs after
// the other's, the later row would meet a bigger store and a warmer (or
// busier) machine than the row it is divided by. measure gets the row's
// index and the round's from 0 (round 0 is the one profiled). It stops at
// the first error, which it prefixes with the row's name, or when ctx
// ends.
func rounds[R row[R]](ctx context.Context, o *options, names []string, measure func(i, run int) (R, error)) ([]R, error) {
	runs := make([][]R, len(names))
	for run := range o.runs {
		for i, name := range names {
			r, err := measure(i, run)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			r.progress(o, name, run)
			runs[i] = append(runs[i], r)
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	out := make([]R, len(names))
	for i := range runs {
		out[i] = median(runs[i])
	}
	return out, nil
}

// median combines runs column by column (R's columns); a single run is
// returned as it is.
func median[R combinable[R]](runs []R) R {
	var out R
	switch len(runs) {
	case 0:
		return out
	case 1:
		return runs[0]
	}
	for _, c := range out.columns() {
		c(&out, runs)
	}
	return out
}

type number interface {
	~int | ~int64 | ~uint64 | ~float64
}

// mid is the median of a numeric field: the middle run's value, or the
// mean of the middle two of an even count.
func mid[R any, N number](field func(*R) *N) column[R] {
	return func(out *R, runs []R) {
		xs := make([]float64, len(runs))
		for i := range runs {
			xs[i] = float64(*field(&runs[i]))
		}
		slices.Sort(xs)
		m := len(xs) / 2
		v := xs[m]
		if len(xs)%2 == 0 {
			v = (xs[m-1] + xs[m]) / 2
		}
		*field(out) = N(v)
	}
}

// sum adds a numeric field over the runs.
func sum[R any, N number](field func(*R) *N) column[R] {
	return func(out *R, runs []R) {
		var s N
		for i := range runs {
			s += *field(&runs[i])
		}
		*field(out) = s
	}
}

// kinds merges the runs' counts of each distinct error.
func kinds[R any](field func(*R) *map[string]int) column[R] {
	return func(out *R, runs []R) {
		m := map[string]int{}
		for i := range runs {
			for k, v := range *field(&runs[i]) {
				m[k] += v
			}
		}
		*field(out) = m
	}
}

// lastNote keeps the last run's non-empty note, marked as the last run's,
// unless an earlier run's note says it did NOT settle (its projector's
// backlog outlasted the phase, and the next run started on it): that
// note is kept instead, marked with its run, so no table hides it.
func lastNote[R any](field func(*R) *string) column[R] {
	return func(out *R, runs []R) {
		unsettled := ""
		for i := range runs {
			n := *field(&runs[i])
			if n != "" {
				*field(out) = n + " (last run)"
			}
			if unsettled == "" && strings.Contains(n, "NOT settled") {
				unsettled = fmt.Sprintf("%s (run %d of %d)", n, i+1, len(runs))
			}
		}
		if unsettled != "" {
			*field(out) = unsettled
		}
	}
}

// busiest keeps the CPU figures of the run during which other processes
// took the most (the last such run on a tie), so that a disturbed run is
// still reported.
func busiest[R any](field func(*R) *cpuUse) column[R] {
	return func(out *R, runs []R) {
		var c cpuUse
		for i := range runs {
			if r := *field(&runs[i]); r.others >= c.others {
				c = r
			}
		}
		*field(out) = c
	}
}

// nested combines a field that is itself combinable by its own columns.
func nested[R any, S combinable[S]](field func(*R) *S) column[R] {
	return func(out *R, runs []R) {
		ss := make([]S, len(runs))
		for i := range runs {
			ss[i] = *field(&runs[i])
		}
		*field(out) = median(ss)
	}
}

// profileEveryRun is -profile-every-run: profileRun profiles each run,
// into a file of its own.
var profileEveryRun bool

// runProfilePath is where run (0-based) writes its profile of path: path
// itself for the first run, unless -profile-every-run names every run's.
func runProfilePath(path string, run int) string {
	if !profileEveryRun {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-run%d%s", strings.TrimSuffix(path, ext), run+1, ext)
}

// runProfile is the file run (0-based) profiles into for path: the first
// run's when path is set, or every run's with -profile-every-run (path with
// -run<N> before its extension); "" when run is not profiled.
func runProfile(run int, path string) string {
	if path == "" || (run > 0 && !profileEveryRun) {
		return ""
	}
	return runProfilePath(path, run)
}

// traceRun records an execution trace of run into runProfile(run, path),
// if any; stop ends it.
func traceRun(run int, path, what string) (stop func(), err error) {
	if p := runProfile(run, path); p != "" {
		return startTrace(p, what)
	}
	return func() {}, nil
}

// profileRun profiles run's CPU into runProfile(run, path), if any; stop
// ends the profile.
func profileRun(run int, path, what string) (stop func(), err error) {
	if p := runProfile(run, path); p != "" {
		return startCPUProfile(p, what)
	}
	return func() {}, nil
}

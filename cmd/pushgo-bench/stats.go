package main

import (
	"slices"
	"sort"
	"time"
)

// recorder collects one worker's samples. Each worker owns one, so
// recording takes no lock; the slices are merged and sorted at the end.
type recorder struct {
	lat      []time.Duration
	errors   int64
	errKinds map[string]int
	late     int64
	lastDone time.Time
	perSec   []int64 // successes completed in each second of the window
}

// maxErrKinds bounds the distinct error messages kept per worker.
const maxErrKinds = 16

func newRecorder(capacity int) *recorder {
	return &recorder{lat: make([]time.Duration, 0, capacity), errKinds: map[string]int{}}
}

func (r *recorder) ok(d time.Duration) { r.lat = append(r.lat, d) }

// tick counts a success completed at offset `at` into the measured window.
func (r *recorder) tick(at time.Duration) {
	s := int(at / time.Second)
	for len(r.perSec) <= s {
		r.perSec = append(r.perSec, 0)
	}
	r.perSec[s]++
}

func (r *recorder) fail(err error) {
	r.errors++
	k := err.Error()
	if len(k) > 160 {
		k = k[:160] + "..."
	}
	if _, seen := r.errKinds[k]; seen || len(r.errKinds) < maxErrKinds {
		r.errKinds[k]++
	}
}

// result is one measured phase.
type result struct {
	ops      int64         // successful operations in the window
	elapsed  time.Duration // measured window
	rate     float64       // successful operations per second
	p50, p99 time.Duration
	p999     time.Duration // progress lines only
	max      time.Duration // progress lines only
	cpu      cpuUse        // of one run; after median, the most disturbed run's
	perSec   []int64       // of one run: successes per second (-timeline)
	note     string        // of one run: projector catch-up after the phase
	errors   int64
	errKinds map[string]int
	late     int64 // open loop: operations that waited > lateAfter for a free client
	skipped  int64 // open loop: operations not issued because the queue was full
	target   float64
}

// summarize merges the workers' samples. Latency percentiles are over
// successful operations only; failures are counted separately.
func summarize(recs []*recorder, elapsed time.Duration) result {
	n := 0
	for _, r := range recs {
		n += len(r.lat)
	}
	all := make([]time.Duration, 0, n)
	res := result{elapsed: elapsed, errKinds: map[string]int{}}
	for _, r := range recs {
		all = append(all, r.lat...)
		res.errors += r.errors
		res.late += r.late
		for i, n := range r.perSec {
			for len(res.perSec) <= i {
				res.perSec = append(res.perSec, 0)
			}
			res.perSec[i] += n
		}
		for k, v := range r.errKinds {
			res.errKinds[k] += v
		}
	}
	slices.Sort(all)
	res.ops = int64(len(all))
	if elapsed > 0 {
		res.rate = float64(res.ops) / elapsed.Seconds()
	}
	res.p50, res.p99, res.p999 = percentile(all, 0.50), percentile(all, 0.99), percentile(all, 0.999)
	if len(all) > 0 {
		res.max = all[len(all)-1]
	}
	return res
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// median combines repeated runs column by column: the median rate, the
// median p50 and the median p99; error and skip counts are summed, so a
// failure in any run is reported.
func median(rs []result) result {
	if len(rs) == 1 {
		return rs[0]
	}
	out := result{errKinds: map[string]int{}}
	rates, p50s, p99s, targets := make([]float64, len(rs)), make([]time.Duration, len(rs)), make([]time.Duration, len(rs)), make([]float64, len(rs))
	for i, r := range rs {
		rates[i], p50s[i], p99s[i], targets[i] = r.rate, r.p50, r.p99, r.target
		out.ops += r.ops
		out.elapsed += r.elapsed
		out.errors += r.errors
		out.skipped += r.skipped
		out.late += r.late
		if r.cpu.others >= out.cpu.others {
			out.cpu = r.cpu
		}
		if r.note != "" {
			out.note = r.note + " (last run)"
		}
		for k, v := range r.errKinds {
			out.errKinds[k] += v
		}
	}
	sort.Float64s(rates)
	sort.Float64s(targets)
	slices.Sort(p50s)
	slices.Sort(p99s)
	mid := len(rs) / 2
	if len(rs)%2 == 1 {
		out.rate, out.p50, out.p99, out.target = rates[mid], p50s[mid], p99s[mid], targets[mid]
	} else {
		out.rate = (rates[mid-1] + rates[mid]) / 2
		out.target = (targets[mid-1] + targets[mid]) / 2
		out.p50 = (p50s[mid-1] + p50s[mid]) / 2
		out.p99 = (p99s[mid-1] + p99s[mid]) / 2
	}
	return out
}

package main

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
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
	// timed: each success with when it was scheduled (open loop) or began
	// (closed loop): the row's tail is matched with the gateway's GC, and an
	// open loop's with the kernel threads' bursts too. No pointers, so the
	// generator's GC need not scan it.
	timed []tailPoint
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
	k := errorKind(err)
	if len(k) > 160 {
		k = k[:160] + "..."
	}
	if _, seen := r.errKinds[k]; seen || len(r.errKinds) < maxErrKinds {
		r.errKinds[k]++
	}
}

// connPair is a connection's two ends in a transport error ("read tcp
// 127.0.0.1:46428->127.0.0.1:36031: i/o timeout"), which differ on each
// connection and would make each failed connection a kind of its own.
var connPair = regexp.MustCompile(`[0-9a-fA-F.:\[\]]+:\d+->[0-9a-fA-F.:\[\]]+:\d+`)

// errorKind is the kind an error is counted under: its message, without
// the ends of the connection it happened on.
func errorKind(err error) string {
	return connPair.ReplaceAllString(err.Error(), "<conn>")
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
	// Rows whose load ran in load processes: the system under test's
	// cores and CPU time per successful operation of the run (medians
	// after median, unlike cpu).
	cores    float64
	cpuPerOp time.Duration
	perSec   []int64 // of one run: successes per second (-timeline)
	note     string  // of one run: projector catch-up after the phase
	kstalls  string  // of one run: the kernel threads' bursts beside the tail (kthreads.go)
	gcstalls string  // of one run: the gateway's GC cycles beside the tail (gctail.go)
	// In a load process: the measured window and the requests at or above
	// its p99, reported for the bench to match (loadReport.Tail).
	from, to time.Time
	tail     []tailPoint
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

// columns: the median rate, p50, p99 and open-loop target; operations,
// window, errors, skips and late operations summed; the most disturbed
// run's CPU; the last run's note.
func (result) columns() []column[result] {
	return []column[result]{
		mid(func(r *result) *float64 { return &r.rate }),
		mid(func(r *result) *time.Duration { return &r.p50 }),
		mid(func(r *result) *time.Duration { return &r.p99 }),
		mid(func(r *result) *float64 { return &r.target }),
		mid(func(r *result) *float64 { return &r.cores }),
		mid(func(r *result) *time.Duration { return &r.cpuPerOp }),
		sum(func(r *result) *int64 { return &r.ops }),
		sum(func(r *result) *time.Duration { return &r.elapsed }),
		sum(func(r *result) *int64 { return &r.errors }),
		sum(func(r *result) *int64 { return &r.skipped }),
		sum(func(r *result) *int64 { return &r.late }),
		busiest(func(r *result) *cpuUse { return &r.cpu }),
		kinds(func(r *result) *map[string]int { return &r.errKinds }),
		lastNote(func(r *result) *string { return &r.note }),
		lastNote(func(r *result) *string { return &r.kstalls }),
		lastNote(func(r *result) *string { return &r.gcstalls }),
	}
}

// progress prints one run of a phase: its rate, latencies, errors and CPU.
func (r result) progress(o *options, phase string, run int) {
	extra := ""
	if r.target > 0 {
		extra = fmt.Sprintf(" (target %.0f/s, late %d, skipped %d)", r.target, r.late, r.skipped)
	}
	fmt.Fprintf(os.Stderr, "  run %d  %-16s %8.0f ops/s  p50 %s  p99 %s  p99.9 %s  max %s  errors %d%s  [%d ops in %s; cpu: %s]\n",
		run+1, phase, r.rate, fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.p999), fmtDur(r.max), r.errors, extra,
		r.ops, r.elapsed.Round(time.Millisecond), r.cpu)
	for _, line := range []string{r.note, r.kstalls, r.gcstalls} {
		if line != "" {
			fmt.Fprintln(os.Stderr, "         "+line)
		}
	}
	if o.timeline {
		fmt.Fprintf(os.Stderr, "         per second: %v\n", r.perSec)
	}
	if disturbed(r) {
		fmt.Fprintf(os.Stderr, "  warning: other processes used %.2f cores during this phase: the numbers above are disturbed\n", r.cpu.others)
	}
}

func numCPU() int { return runtime.NumCPU() }

// sutCores is the system under test's cores: the median over the runs
// where the row has it, else the most disturbed run's.
func (r result) sutCores() float64 {
	if r.cores > 0 {
		return r.cores
	}
	return r.cpu.self
}

// String is the CPU figures of a progress line.
func (c cpuUse) String() string {
	return fmt.Sprintf("system under test %.2f cores, load generator %.2f, others %.2f of %d", c.self, c.load, c.others, numCPU())
}

// disturbed reports a phase during which other processes took a
// noticeable share of the machine.
func disturbed(r result) bool { return r.cpu.others > 0.25 }

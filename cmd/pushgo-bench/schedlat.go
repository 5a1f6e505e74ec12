package main

import (
	"fmt"
	"math"
	"runtime/metrics"
	"time"
)

// What holds a paced read's tail under the write load: the gateway runs in
// the bench's process with its embedded broker, so a request that has
// arrived waits, before its handler runs, behind every goroutine of the
// process that is runnable (on two cores, the write load's handlers, the
// broker's and the projector's), and then for a core the operating system
// gives to another process. The Go runtime measures the first wait
// (/sched/latencies:seconds: from runnable to running, every goroutine of
// the process); the /thing/get row prints it beside its own latency.

const schedLatencies = "/sched/latencies:seconds"

// schedSnapshot is the process's scheduling latencies so far.
func schedSnapshot() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: schedLatencies}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// schedWaits is the scheduling latencies between two snapshots: how
// long goroutines waited, runnable, for a core of the process.
type schedWaits struct {
	n             uint64
	p50, p99, max time.Duration // bucket upper bounds
}

// schedBetween is the waits recorded after before and up to after.
func schedBetween(before, after *metrics.Float64Histogram) schedWaits {
	if before == nil || after == nil || len(before.Counts) != len(after.Counts) {
		return schedWaits{}
	}
	counts := make([]uint64, len(after.Counts))
	var w schedWaits
	for i := range counts {
		counts[i] = after.Counts[i] - before.Counts[i]
		w.n += counts[i]
	}
	if w.n == 0 {
		return w
	}
	upper := func(i int) time.Duration {
		b := after.Buckets[i+1]
		if math.IsInf(b, 1) {
			b = after.Buckets[i]
		}
		return time.Duration(b * float64(time.Second))
	}
	var seen uint64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		seen += c
		if w.p50 == 0 && seen*2 >= w.n {
			w.p50 = upper(i)
		}
		if w.p99 == 0 && seen*100 >= w.n*99 {
			w.p99 = upper(i)
		}
		w.max = upper(i)
	}
	return w
}

// String is the row's note, "" when nothing was recorded.
func (w schedWaits) String() string {
	if w.n == 0 {
		return ""
	}
	return fmt.Sprintf("Go scheduler waits of the gateway's process (every goroutine, runnable to running): p50 %s, p99 %s, max %s (%d)",
		fmtDur(w.p50), fmtDur(w.p99), fmtDur(w.max), w.n)
}

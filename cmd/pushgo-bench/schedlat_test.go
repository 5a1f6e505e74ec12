package main

import (
	"math"
	"runtime/metrics"
	"testing"
	"time"
)

// The waits between two snapshots are the difference of their counts:
// what came before the first is not in them, and their quantiles are the
// upper bounds of the buckets that hold them (the last bucket, unbounded,
// reads as its lower bound).
func TestSchedBetween(t *testing.T) {
	buckets := []float64{0, 0.001, 0.002, 0.004, math.Inf(1)}
	before := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{500, 0, 0, 7}}
	after := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{500 + 90, 9, 0, 7 + 1}}
	w := schedBetween(before, after)
	want := schedWaits{n: 100, p50: time.Millisecond, p99: 2 * time.Millisecond, max: 4 * time.Millisecond}
	if w != want {
		t.Fatalf("got %+v, want %+v", w, want)
	}
	if w := schedBetween(after, after); w.n != 0 || w.String() != "" {
		t.Fatalf("no waits between equal snapshots: %+v %q", w, w.String())
	}
	if s := schedSnapshot(); s == nil || len(s.Counts) == 0 {
		t.Fatalf("the runtime has no %s: %v", schedLatencies, s)
	}
}

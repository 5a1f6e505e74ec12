package main

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestGCTailOf: a tail request meets a cycle when its span reaches the
// cycle's episode (gcBefore before its mark's end to gcAfter after); the
// cycles outside the window are not counted; the chance is the episodes'
// and the mean tail span's share of the window.
func TestGCTailOf(t *testing.T) {
	t0 := time.Unix(3000, 0)
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	at := func(v int) time.Time { return t0.Add(ms(v)) }
	ends := []time.Time{at(9000), at(-1000), at(4000), at(20000)} // unordered, as a caller may pass them
	tail := []tailPoint{
		{At: at(3820).UnixNano(), Lat: ms(40)},  // ends at 3860, within the 150 ms before 4000
		{At: at(3800).UnixNano(), Lat: ms(30)},  // ends at 3830, before 3850
		{At: at(4140).UnixNano(), Lat: ms(20)},  // begins within the 150 ms after
		{At: at(4160).UnixNano(), Lat: ms(20)},  // begins after
		{At: at(8000).UnixNano(), Lat: ms(900)}, // spans the episode of 9000
		{At: at(500).UnixNano(), Lat: ms(50)},   // far from any
	}
	g := gcTailOf(ends, tail, at(0), at(10000))
	if g.cycles != 2 || g.tail != 6 || g.overlap != 3 {
		t.Errorf("%+v: want 2 cycles, 3 of 6", g)
	}
	mean := (40 + 30 + 20 + 20 + 900 + 50) * time.Millisecond / 6
	want := (2 * (ms(300) + mean)).Seconds() / 10
	if d := g.byChance - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("by chance %v, want %v", g.byChance, want)
	}
	if line := g.String(); !strings.Contains(line, "gateway GC (the bench's process): 2 cycle(s) in the window; 3 of the 6 requests at or above the p99 (50%) met one") {
		t.Errorf("line %q", line)
	}
	if s := gcTailOf(nil, tail, at(0), at(10000)).String(); s != "" {
		t.Errorf("no cycle: %q", s)
	}
}

// TestGCEndsSeesACycle: a collection of this process is among the ends
// read, at its time.
func TestGCEndsSeesACycle(t *testing.T) {
	before := time.Now()
	runtime.GC()
	after := time.Now()
	for _, e := range gcEnds() {
		if !e.Before(before) && !e.After(after) {
			return
		}
	}
	t.Errorf("no cycle ended between %v and %v in %v", before, after, gcEnds()[:min(3, len(gcEnds()))])
}

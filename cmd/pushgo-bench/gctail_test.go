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
	var cycles []gcCycle // unordered, as a caller may pass them
	for _, e := range []time.Time{at(9000), at(-1000), at(4000), at(20000)} {
		cycles = append(cycles, gcCycle{end: e})
	}
	tail := []tailPoint{
		{At: at(3820).UnixNano(), Lat: ms(40)},  // ends at 3860, within the 150 ms before 4000
		{At: at(3800).UnixNano(), Lat: ms(30)},  // ends at 3830, before 3850
		{At: at(4140).UnixNano(), Lat: ms(20)},  // begins within the 150 ms after
		{At: at(4160).UnixNano(), Lat: ms(20)},  // begins after
		{At: at(8000).UnixNano(), Lat: ms(900)}, // spans the episode of 9000
		{At: at(500).UnixNano(), Lat: ms(50)},   // far from any
	}
	g := gcTailOf(cycles, tail, at(0), at(10000))
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

// TestGCTailOfAMarkSeenBeginning: a mark whose start was seen is met from
// that start, not only in the 150 ms before its end: a request a second
// before the end of a 2-second mark met it.
func TestGCTailOfAMarkSeenBeginning(t *testing.T) {
	t0 := time.Unix(3000, 0)
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	at := func(v int) time.Time { return t0.Add(ms(v)) }
	tail := []tailPoint{
		{At: at(3000).UnixNano(), Lat: ms(40)}, // inside the mark, a second before its end
		{At: at(1800).UnixNano(), Lat: ms(40)}, // before the mark began
	}
	if g := gcTailOf([]gcCycle{{end: at(4000)}}, tail, at(0), at(10000)); g.overlap != 0 {
		t.Errorf("start not seen: %d met the cycle, want 0", g.overlap)
	}
	g := gcTailOf([]gcCycle{{start: at(2000), end: at(4000)}}, tail, at(0), at(10000))
	if g.cycles != 1 || g.overlap != 1 {
		t.Errorf("start seen: %+v, want 1 of 2 met", g)
	}
	if want := (ms(2150) + ms(40)).Seconds() / 10; g.byChance < want-1e-9 || g.byChance > want+1e-9 {
		t.Errorf("by chance %v, want %v (the episode from the start)", g.byChance, want)
	}
	if line := g.String(); !strings.Contains(line, "1 cycle(s) in the window (1 seen beginning, the longest mark 2000ms); 1 of the 2") || !strings.Contains(line, "from its mark's start") {
		t.Errorf("line %q", line)
	}
}

// TestGCCyclesSeesAMarkBegin: with the watch running, a collection of
// this process is among the cycles read, ending at its time, and a mark
// long enough to be sampled (a heap of a few million pointers) is seen
// beginning before it ends.
func TestGCCyclesSeesAMarkBegin(t *testing.T) {
	w := startMarkWatch(time.Millisecond)
	defer w.Stop()
	saved := gcWatch
	gcWatch = w
	defer func() { gcWatch = saved }()
	type node struct {
		next *node
		pad  [2]*node
	}
	var head *node
	for range 3_000_000 { // about 100 MB of pointers: a mark of tens of milliseconds or more
		head = &node{next: head}
	}
	// A busy machine may keep the watch from sampling during one mark:
	// up to 20 collections, each checked, until one is seen beginning.
	// runtime.GC may first finish a cycle already under way, which began
	// before it was called; the last cycle to end is the one it started.
	for range 20 {
		before := time.Now()
		runtime.GC()
		after := time.Now()
		var last *gcCycle
		cycles := gcCycles()
		for i, c := range cycles {
			if !c.start.IsZero() && !c.start.Before(c.end) {
				t.Fatalf("a cycle seen beginning at %v, after its end %v", c.start, c.end)
			}
			if !c.end.Before(before) && !c.end.After(after) {
				last = &cycles[i]
			}
		}
		if last == nil {
			t.Fatalf("no cycle ended between %v and %v", before, after)
		}
		if last.start.IsZero() {
			continue // not sampled this time
		}
		if last.start.Before(before) {
			t.Fatalf("the cycle runtime.GC started, ending at %v: seen beginning at %v, before the call at %v", last.end, last.start, before)
		}
		runtime.KeepAlive(head)
		return
	}
	t.Error("20 collections of a 100 MB heap, none seen beginning")
}

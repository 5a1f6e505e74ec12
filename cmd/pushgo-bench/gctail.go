package main

import (
	"fmt"
	"runtime/debug"
	"slices"
	"time"
)

// The other cause of an open-loop row's tail found on this machine is the
// gateway's own garbage collection: a cycle's concurrent mark and the sweep
// after it took a third of the machine for about 200 ms, once or not at all
// in a 10-second round, and held nearly all of a round's tail when it came.
// The gateway runs in the bench's process, so after each open-loop row the
// bench reads when its cycles ended (runtime/debug.ReadGCStats: the end of
// each cycle's last stop of the world, the mark's termination) and matches
// the row's tail, which the load process reports, with a span around each.

// gcBefore and gcAfter bound a cycle's episode around its mark
// termination: the concurrent mark before it (53 ms on an idle share of
// the machine, longer under load) and the sweep after it.
const (
	gcBefore = 150 * time.Millisecond
	gcAfter  = 150 * time.Millisecond
)

// tailPoint is a request of an open-loop row's tail as a load process
// reports it: when it was scheduled (Unix nanoseconds) and its latency.
type tailPoint struct {
	At  int64         `json:"at"`
	Lat time.Duration `json:"lat"`
}

// gcTail is how the gateway's garbage collection met a row's tail.
type gcTail struct {
	cycles   int     // cycles whose episode touches the window
	tail     int     // requests at or above the row's p99
	overlap  int     // of them, those whose span met a cycle's episode
	byChance float64 // the share that would, with the cycles anywhere
}

// gcTailOf matches tail with the episodes of the cycles whose marks ended
// at ends, those of them whose episodes touch [from, to].
func gcTailOf(ends []time.Time, tail []timedLatency, from, to time.Time) gcTail {
	var in []time.Time
	for _, e := range ends {
		if !e.Add(gcAfter).Before(from) && !e.Add(-gcBefore).After(to) {
			in = append(in, e)
		}
	}
	slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
	g := gcTail{cycles: len(in), tail: len(tail)}
	if len(in) == 0 || len(tail) == 0 || !to.After(from) {
		return g
	}
	var span time.Duration
	for _, r := range tail {
		span += r.lat
		a, z := r.sched, r.sched.Add(r.lat)
		// The first cycle whose episode ends at or after the request's
		// start; the request meets it if the episode starts before its end.
		i, _ := slices.BinarySearchFunc(in, a, func(e, t time.Time) int { return e.Add(gcAfter).Compare(t) })
		if i < len(in) && !in[i].Add(-gcBefore).After(z) {
			g.overlap++
		}
	}
	mean := span / time.Duration(len(tail))
	g.byChance = min(1, (time.Duration(len(in))*(gcBefore+gcAfter+mean)).Seconds()/to.Sub(from).Seconds())
	return g
}

// String is the report's line, or "" when no cycle ended in the window.
func (g gcTail) String() string {
	if g.cycles == 0 || g.tail == 0 {
		return ""
	}
	return fmt.Sprintf("gateway GC (the bench's process): %d cycle(s) in the window; %d of the %d requests at or above the p99 (%.0f%%) met one (%s before its mark's end to %s after), against %.0f%% by chance",
		g.cycles, g.overlap, g.tail, 100*float64(g.overlap)/float64(g.tail), fmtDur(gcBefore), fmtDur(gcAfter), 100*g.byChance)
}

// gcEnds is when the process's recent garbage collection cycles ended
// their mark (up to the runtime's last 256).
func gcEnds() []time.Time {
	var s debug.GCStats
	debug.ReadGCStats(&s)
	return s.PauseEnd
}

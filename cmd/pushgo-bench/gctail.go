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
// The gateway runs in the bench's process, so after each row of a load
// process (open or closed loop; not a peer's, ntfy's) the bench reads when
// its cycles ended (runtime/debug.ReadGCStats: the end of each cycle's
// last stop of the world, the mark's termination) and matches the row's
// tail, which the load process reports, with a span around each.

// gcBefore and gcAfter bound a cycle's episode around its mark
// termination: the concurrent mark before it (53 ms on an idle share of
// the machine, longer under load) and the sweep after it. The runtime
// tells when a mark ends, not when it began: the integrations rows' marks
// last 1-3 s (execution traces, -integtrace), and there an episode covers
// only a mark's end, so the line undercounts.
const (
	gcBefore = 150 * time.Millisecond
	gcAfter  = 150 * time.Millisecond
)

// gcTail is how the gateway's garbage collection met a row's tail.
type gcTail struct {
	cycles   int     // cycles whose episode touches the window
	tail     int     // requests at or above the row's p99
	overlap  int     // of them, those whose span met a cycle's episode
	byChance float64 // the share that would, with the cycles anywhere
}

// gcTailOf matches tail with the episodes of the cycles whose marks ended
// at ends, those of them whose episodes touch [from, to].
func gcTailOf(ends []time.Time, tail []tailPoint, from, to time.Time) gcTail {
	var in []time.Time
	for _, e := range ends {
		if !e.Add(gcAfter).Before(from) && !e.Add(-gcBefore).After(to) {
			in = append(in, e)
		}
	}
	slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
	g := gcTail{cycles: len(in), tail: len(tail)}
	var union []span
	for _, e := range in {
		union = addSpan(union, e.Add(-gcBefore), e.Add(gcAfter))
	}
	g.overlap, g.byChance, _ = tailMatch(union, tail, to.Sub(from))
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

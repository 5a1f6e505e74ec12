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
// last stop of the world, the mark's termination) and when it saw their
// marks begin (gcmarks.go), and matches the row's tail, which the load
// process reports, with a span around each.

// gcBefore and gcAfter bound a cycle's episode around its mark: from its
// start when the bench saw it begin (gcmarks.go), else gcBefore before its
// end (the concurrent mark: 53 ms on an idle share of the machine, longer
// under load), to gcAfter after its end (the sweep).
const (
	gcBefore = 150 * time.Millisecond
	gcAfter  = 150 * time.Millisecond
)

// episode is the span of c that a request meets.
func (c gcCycle) episode() (from, to time.Time) {
	from = c.end.Add(-gcBefore)
	if !c.start.IsZero() && c.start.Before(from) {
		from = c.start
	}
	return from, c.end.Add(gcAfter)
}

// gcTail is how the gateway's garbage collection met a row's tail.
type gcTail struct {
	cycles   int           // cycles whose episode touches the window
	seen     int           // of them, those whose mark was seen beginning
	longest  time.Duration // the longest of those marks
	tail     int           // requests at or above the row's p99
	overlap  int           // of them, those whose span met a cycle's episode
	byChance float64       // the share that would, with the cycles anywhere
}

// gcTailOf matches tail with the episodes of the cycles whose episodes
// touch [from, to].
func gcTailOf(cycles []gcCycle, tail []tailPoint, from, to time.Time) gcTail {
	var in []gcCycle
	for _, c := range cycles {
		if a, b := c.episode(); !b.Before(from) && !a.After(to) {
			in = append(in, c)
		}
	}
	slices.SortFunc(in, func(a, b gcCycle) int { return a.end.Compare(b.end) })
	g := gcTail{cycles: len(in), tail: len(tail)}
	var union []span
	for _, c := range in {
		a, b := c.episode()
		union = addSpan(union, a, b)
		if !c.start.IsZero() {
			g.seen++
			g.longest = max(g.longest, c.end.Sub(c.start))
		}
	}
	g.overlap, g.byChance, _ = tailMatch(union, tail, to.Sub(from))
	return g
}

// String is the report's line, or "" when no cycle ended in the window.
func (g gcTail) String() string {
	if g.cycles == 0 || g.tail == 0 {
		return ""
	}
	marks := ""
	if g.seen > 0 {
		marks = fmt.Sprintf(" (%d seen beginning, the longest mark %s)", g.seen, fmtDur(g.longest))
	}
	return fmt.Sprintf("gateway GC (the bench's process): %d cycle(s) in the window%s; %d of the %d requests at or above the p99 (%.0f%%) met one (from its mark's start, or %s before its end where the start was not seen, to %s after its end), against %.0f%% by chance",
		g.cycles, marks, g.overlap, g.tail, 100*float64(g.overlap)/float64(g.tail), fmtDur(gcBefore), fmtDur(gcAfter), 100*g.byChance)
}

// gcCycles is the process's recent garbage collection cycles (up to the
// runtime's last 256), each with its mark's start where gcWatch saw it.
func gcCycles() []gcCycle {
	var s debug.GCStats
	debug.ReadGCStats(&s)
	ends := slices.Clone(s.PauseEnd) // newest first
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	return gcWatch.cycles(ends)
}

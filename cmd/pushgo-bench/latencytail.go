package main

import (
	"fmt"
	"slices"
	"time"
)

// The latency row's p99 is a tail of stalls, not a slow median (p50 about
// 5 ms beside a p99 of 100 to 260 ms on 4 December): a run's pushes at or
// above its p99 are grouped into episodes, and the episodes' length and
// spacing, beside the gateway's garbage collection cycles, say what kind of
// stall holds the row (one every second is the broker's sync interval, one
// on each collection cycle is the gateway's garbage, a few long ones are the
// machine).

// episodeGap joins two tail pushes into one episode when the second was
// accepted within it of the end of the episode so far.
const episodeGap = 20 * time.Millisecond

// tailEpisodes is how a row's tail groups into episodes.
type tailEpisodes struct {
	pushes   int
	episodes int
	longest  time.Duration // an episode: its first push's acceptance to its last arrival
	median   time.Duration
	spacing  time.Duration // the median time between two episodes' starts; 0 with one
}

// episodesOf groups tail (any order) into episodes.
func episodesOf(tail []tailPoint) tailEpisodes {
	if len(tail) == 0 {
		return tailEpisodes{}
	}
	pts := slices.Clone(tail)
	slices.SortFunc(pts, func(a, b tailPoint) int { return int(a.At - b.At) })
	type episode struct{ a, z int64 }
	var eps []episode
	for _, p := range pts {
		end := p.At + int64(p.Lat)
		if n := len(eps); n > 0 && p.At <= eps[n-1].z+int64(episodeGap) {
			eps[n-1].z = max(eps[n-1].z, end)
			continue
		}
		eps = append(eps, episode{p.At, end})
	}
	lens := make([]time.Duration, len(eps))
	for i, e := range eps {
		lens[i] = time.Duration(e.z - e.a)
	}
	slices.Sort(lens)
	t := tailEpisodes{pushes: len(pts), episodes: len(eps), longest: lens[len(lens)-1], median: percentile(lens, 0.5)}
	if len(eps) > 1 {
		gaps := make([]time.Duration, len(eps)-1)
		for i := range gaps {
			gaps[i] = time.Duration(eps[i+1].a - eps[i].a)
		}
		slices.Sort(gaps)
		t.spacing = percentile(gaps, 0.5)
	}
	return t
}

// String is the report's line, or "" for an empty tail.
func (t tailEpisodes) String() string {
	if t.pushes == 0 {
		return ""
	}
	s := fmt.Sprintf("tail: the %d pushes at or above the p99 fall in %d episode(s) (a push accepted within %s of an episode's last arrival joins it): the longest %s, median %s",
		t.pushes, t.episodes, fmtDur(episodeGap), fmtDur(t.longest), fmtDur(t.median))
	if t.spacing > 0 {
		s += fmt.Sprintf("; they start %s apart (median)", fmtDur(t.spacing))
	}
	return s
}

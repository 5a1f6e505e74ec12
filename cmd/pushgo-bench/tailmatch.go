package main

import (
	"slices"
	"time"
)

// A row's tail (its requests at or above the p99) is matched with spans
// of time something else held the machine: the gateway's garbage
// collection cycles (gctail.go), and for an open-loop row the kernel
// threads' bursts (kthreads.go). Both ask the same: how many of the tail's
// requests met a span, against how many would if the spans were anywhere
// in the window.

// tailPoint is a request of a row's tail: when it was scheduled (open
// loop) or began (closed loop), in Unix nanoseconds (it crosses from the
// load process to the bench), and its latency from then. No pointers: a
// load process keeps one for every request of the row.
type tailPoint struct {
	At  int64         `json:"at"`
	Lat time.Duration `json:"lat"`
}

// span is an interval of time, [a, z].
type span struct{ a, z time.Time }

// addSpan adds [a, z] to u, the union so far of spans added in the order
// of their starts: u stays sorted and disjoint, as tailMatch needs.
func addSpan(u []span, a, z time.Time) []span {
	if n := len(u); n > 0 && !a.After(u[n-1].z) {
		if z.After(u[n-1].z) {
			u[n-1].z = z
		}
		return u
	}
	return append(u, span{a, z})
}

// tailMatch counts the requests of tail whose span [At, At+Lat] met a span
// of union (sorted and disjoint), and the share of them that would by
// chance: a request of length L meets a span of length S placed at random
// in the window with probability (S + L) / window, summed over the spans,
// L the tail's mean. It returns the union's length too.
func tailMatch(union []span, tail []tailPoint, window time.Duration) (overlap int, byChance float64, covered time.Duration) {
	for _, u := range union {
		covered += u.z.Sub(u.a)
	}
	if len(tail) == 0 || len(union) == 0 || window <= 0 {
		return 0, 0, covered
	}
	var total time.Duration
	for _, r := range tail {
		total += r.Lat
		a := time.Unix(0, r.At)
		// The first span that ends at or after the request's start; the
		// request meets it if it starts before the request's end.
		i, _ := slices.BinarySearchFunc(union, a, func(u span, t time.Time) int { return u.z.Compare(t) })
		if i < len(union) && !union[i].a.After(a.Add(r.Lat)) {
			overlap++
		}
	}
	mean := total / time.Duration(len(tail))
	byChance = min(1, (covered+time.Duration(len(union))*mean).Seconds()/window.Seconds())
	return overlap, byChance, covered
}

package main

import (
	"runtime/metrics"
	"sync"
	"time"
)

// The runtime reports when each collection's mark ended
// (runtime/debug.ReadGCStats), not when it began, and the integrations
// rows' marks last 1-3 s (execution traces, -integtrace): an episode of
// 150 ms before the end saw only a mark's last moments. A mark begins and
// ends with a stop of the world, which the runtime counts
// (/sched/pauses/total/gc:seconds: two a cycle) beside the cycles it
// completed (/gc/cycles/total:gc-cycles), so while a mark runs the pauses
// are twice the cycles plus one. markWatch samples both and keeps when it
// saw each mark begin.

// markWatchEvery is how often markWatch samples: the resolution of a
// mark's start, well under the episodes' 150 ms.
const markWatchEvery = 2 * time.Millisecond

// markWatchKeep bounds the starts kept, as ReadGCStats keeps 256 ends.
const markWatchKeep = 256

// markWatch samples the collector's state until Stop.
type markWatch struct {
	mu     sync.Mutex
	starts []time.Time // when marks were seen beginning, oldest first
	stop   chan struct{}
	done   chan struct{}
}

// gcWatch is the bench's process-wide watch (run starts and stops it); nil
// in tests that do not start one.
var gcWatch *markWatch

// startMarkWatch starts sampling every interval; Stop ends it.
func startMarkWatch(every time.Duration) *markWatch {
	w := &markWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(every)
	return w
}

func (w *markWatch) run(every time.Duration) {
	defer close(w.done)
	samples := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	was := false
	for {
		metrics.Read(samples)
		var pauses uint64
		for _, n := range samples[0].Value.Float64Histogram().Counts {
			pauses += n
		}
		in := pauses == 2*samples[1].Value.Uint64()+1
		if in && !was {
			w.mu.Lock()
			w.starts = append(w.starts, time.Now())
			if len(w.starts) > markWatchKeep {
				w.starts = w.starts[len(w.starts)-markWatchKeep:]
			}
			w.mu.Unlock()
		}
		was = in
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the sampling and waits for it.
func (w *markWatch) Stop() {
	close(w.stop)
	<-w.done
}

// cycles pairs each mark end with the latest start seen after the end
// before it; a zero start when none was seen (the mark began before the
// watch, or took less than a sample). ends MUST be sorted. A nil watch
// pairs none.
func (w *markWatch) cycles(ends []time.Time) []gcCycle {
	out := make([]gcCycle, len(ends))
	var starts []time.Time
	if w != nil {
		w.mu.Lock()
		starts = append(starts, w.starts...)
		w.mu.Unlock()
	}
	var prev time.Time
	for i, e := range ends {
		out[i].end = e
		for _, s := range starts {
			if s.After(prev) && !s.After(e) {
				out[i].start = s // the latest such start wins: starts are in order
			}
		}
		prev = e
	}
	return out
}

// gcCycle is a collection's mark: when it was seen beginning (zero: not
// seen) and when it ended.
type gcCycle struct{ start, end time.Time }

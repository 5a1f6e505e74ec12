package projector

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// A fold that starts far behind the log (a rebuild, a new replica, one
// started again after a long stop) says how far it is: every
// progressEvery in the log, and in Ready (so /readyz answers 503 with it)
// until it is within catchUpLag of the log's end.

// catchUpLag is the lag below which a fold counts as caught up: the lag
// ingest's readiness accepts of a projector.
const catchUpLag = 10_000

// progressEvery is how often a catching-up fold logs its progress.
const progressEvery = 10 * time.Second

// rateWindow is the span the fold's rate is measured over.
const rateWindow = 30 * time.Second

// foldProgress follows one catch-up of the fold of PUSHGO_OPS.
type foldProgress struct {
	log *slog.Logger

	mu      sync.Mutex
	active  bool
	rebuild bool // from an empty projection
	began   time.Time
	from    uint64 // the applied sequence it began at
	applied uint64
	pending uint64
	logged  time.Time
	// lastCommit is when the catch-up last committed (or began).
	lastCommit time.Time
	samples    []progressSample // recent (time, applied), oldest first
}

type progressSample struct {
	at      time.Time
	applied uint64
}

// started is told where a fold starts (applied) and how many operations
// the log holds after it (pending): far behind, a catch-up begins (again,
// when the fold starts again: after a failure, or a rebuild).
func (f *foldProgress) started(applied, pending uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pending <= catchUpLag {
		f.active = false
		return
	}
	now := time.Now()
	if f.active && f.from == applied && f.applied == applied {
		// Told again by the fold's first message after the store opened
		// (primeProgress told it first): the same catch-up, said once.
		f.pending, f.lastCommit = pending, now
		return
	}
	f.active, f.rebuild, f.began, f.from, f.applied, f.pending, f.logged, f.lastCommit = true, applied == 0, now, applied, applied, pending, now, now
	f.samples = append(f.samples[:0], progressSample{now, applied})
	what := "catching up with the log"
	if f.rebuild {
		what = "rebuilding the projection from the log"
	}
	f.log.Info("projector: "+what+"; not ready until it is within "+fmt.Sprint(catchUpLag)+" operations of the log's end",
		"applied", applied, "operations", pending)
}

// committed is told each commit: the applied sequence and the operations
// the log held after it.
func (f *foldProgress) committed(applied, pending uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active {
		return
	}
	now := time.Now()
	f.applied, f.pending, f.lastCommit = applied, pending, now
	if last := f.samples[len(f.samples)-1]; now.Sub(last.at) >= time.Second {
		f.samples = append(f.samples, progressSample{now, applied})
	}
	for len(f.samples) > 2 && now.Sub(f.samples[1].at) > rateWindow {
		f.samples = f.samples[1:]
	}
	if pending <= catchUpLag {
		f.active = false
		took := now.Sub(f.began)
		f.log.Info("projector: caught up with the log", "applied", applied, "folded", applied-f.from,
			"took", took.Round(time.Millisecond), "ops_per_s", int(float64(applied-f.from)/max(took.Seconds(), 1e-3)))
		return
	}
	if now.Sub(f.logged) >= progressEvery {
		f.logged = now
		folded, total, rate, left := f.figures(now)
		f.log.Info("projector: "+f.whatLocked(), "folded", folded, "total", total,
			"ops_per_s", int(rate), "eta", left.Round(time.Second).String())
	}
}

// status describes the catch-up under way, or is "" when there is none.
func (f *foldProgress) status() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active {
		return ""
	}
	folded, total, rate, left := f.figures(time.Now())
	s := fmt.Sprintf("%s: folded %d of %d operations (%.0f%%)", f.whatLocked(), folded, total, 100*float64(folded)/float64(max(total, 1)))
	if rate > 0 {
		s += fmt.Sprintf(", %.0f/s, about %s left", rate, left.Round(time.Second))
	}
	return s
}

// outOfReach says whether a catch-up is under way that, at its recent
// rate, would not fold up to target within wait: a read waiting for
// target would wait in vain (with no rate yet, a target more than
// catchUpLag ahead counts as out of reach). A catch-up that has not
// committed for twice wait is stalled, not under way (its fold failed,
// or what it had left to fold left the log): the read waits, and a wait
// in vain has the fold look why (partfold.go, vanished).
func (f *foldProgress) outOfReach(applied, target uint64, wait time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active || target <= applied || time.Since(f.lastCommit) > 2*wait {
		return false
	}
	_, _, rate, _ := f.figures(time.Now())
	if rate <= 0 {
		return target-applied > catchUpLag
	}
	return float64(target-applied)/rate > wait.Seconds()
}

func (f *foldProgress) whatLocked() string {
	if f.rebuild {
		return "rebuilding the projection from the log"
	}
	return "catching up with the log"
}

// figures are the catch-up's operations folded and to fold in all, its
// recent rate (operations per second) and the time left at that rate.
func (f *foldProgress) figures(now time.Time) (folded, total uint64, rate float64, left time.Duration) {
	folded = f.applied - f.from
	total = folded + f.pending
	first := f.samples[0]
	if dt := now.Sub(first.at).Seconds(); dt > 0 && f.applied > first.applied {
		rate = float64(f.applied-first.applied) / dt
		left = time.Duration(float64(f.pending) / rate * float64(time.Second))
	}
	return folded, total, rate, left
}

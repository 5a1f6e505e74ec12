package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// opTimeout bounds one operation, like the gateway's default append
// timeout; a phase therefore ends at most this long after its deadline.
const opTimeout = 5 * time.Second

// worker is the state one load goroutine owns.
type worker struct {
	id  int
	rng *rand.Rand
	buf []byte
	n   uint64 // operations issued by this worker
}

// opFunc performs one operation. It returns nil only when the operation
// fully succeeded.
type opFunc func(ctx context.Context, w *worker) error

func newWorkers(n int) []*worker {
	ws := make([]*worker, n)
	seed := uint64(time.Now().UnixNano())
	for i := range ws {
		ws[i] = &worker{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), n: uint64(i)}
	}
	return ws
}

// sampleCap preallocates each worker's latency slice for a generous
// per-worker rate, so recording does not reallocate in the common case.
func sampleCap(d time.Duration, workers int) int {
	return int(d.Seconds()*200_000)/workers + 1024
}

// closedLoop runs op on every worker back to back: each issues its next
// operation as soon as the previous one returns. Operations started in the
// warm-up are not recorded; no operation starts after the deadline, and
// those in flight at the deadline finish and are recorded. With keepTail
// the result holds its tail (each success's start and latency kept on the
// way, 16 bytes an operation): a load process's loop keeps it for the
// bench to match with the gateway's collection cycles; the raw rows, run
// in the broker's own process, keep nothing they would not use.
func closedLoop(ctx context.Context, workers int, warmup, dur time.Duration, op opFunc, keepTail bool) result {
	cpu0 := sampleCPU()
	ws := newWorkers(workers)
	recs := make([]*recorder, workers)
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+dur)
	var wg sync.WaitGroup
	for i, w := range ws {
		recs[i] = newRecorder(sampleCap(dur, workers))
		if keepTail {
			recs[i].timed = make([]tailPoint, 0, sampleCap(dur, workers))
		}
		wg.Go(func() {
			rec := recs[i]
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				err := op(octx, w)
				cancel()
				done := time.Now()
				w.n++
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					rec.fail(err)
				} else {
					rec.ok(done.Sub(t0))
					rec.tick(done.Sub(measureFrom))
					if keepTail {
						rec.timed = append(rec.timed, tailPoint{At: t0.UnixNano(), Lat: done.Sub(t0)})
					}
				}
				rec.lastDone = done
			}
		})
	}
	wg.Wait()
	last := end
	for _, r := range recs {
		if r.lastDone.After(last) {
			last = r.lastDone
		}
	}
	res := summarize(recs, last.Sub(measureFrom))
	// The window ends with the last operation, as the rate's does: those
	// in flight at the deadline are the slowest, often the tail's.
	res.from, res.to = measureFrom, last
	res.tail = tailOf(recs, res.p99)
	res.cpu = cpuBetween(cpu0, sampleCPU())
	return res
}

// tailOf is the recorded successes at or above p99: the row's tail, which
// the bench matches with the gateway's collection cycles (gctail.go).
func tailOf(recs []*recorder, p99 time.Duration) []tailPoint {
	var tail []tailPoint
	for _, r := range recs {
		for _, t := range r.timed {
			if t.Lat >= p99 {
				tail = append(tail, t)
			}
		}
	}
	return tail
}

// token is one scheduled open-loop operation: when it should start, and
// when the pacer queued it (later than sched if the pacer itself was late).
type token struct{ sched, queued time.Time }

// lateAfter is how long an open-loop operation may wait for a free client
// before it counts as late (goroutine wake-up alone takes microseconds).
const lateAfter = time.Millisecond

// openLoop issues operations at a fixed rate, whatever the latency: a pacer
// schedules operation i at start+i/rate and queues it for the first idle
// worker. Latency is measured from the scheduled time, so time spent
// waiting for a free client counts (no coordinated omission); operations
// that waited more than lateAfter are counted as late. The queue holds up
// to one second of operations; past that the gateway has fallen hopelessly
// behind and further operations are skipped and counted.
//
// poll, if not nil, is called by the pacer each time it wakes (the kernel
// threads' sampler, kthreads.go): a sampler of its own would wake the
// process more often.
func openLoop(ctx context.Context, workers int, rate float64, warmup, dur time.Duration, op opFunc, poll func(time.Time)) result {
	cpu0 := sampleCPU()
	ws := newWorkers(workers)
	recs := make([]*recorder, workers)
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+dur)
	tokens := make(chan token, min(max(workers, int(rate)), 1<<20))
	var wg sync.WaitGroup
	for i, w := range ws {
		recs[i] = newRecorder(sampleCap(dur, workers))
		recs[i].timed = make([]tailPoint, 0, int(rate*dur.Seconds())/workers+64)
		wg.Go(func() {
			rec := recs[i]
			for tok := range tokens {
				sched := tok.sched
				if ctx.Err() != nil {
					continue // drain
				}
				began := time.Now()
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				err := op(octx, w)
				cancel()
				done := time.Now()
				w.n++
				if sched.Before(measureFrom) {
					continue
				}
				if began.Sub(tok.queued) > lateAfter {
					rec.late++
				}
				if err != nil {
					rec.fail(err)
				} else {
					rec.ok(done.Sub(sched))
					rec.tick(done.Sub(measureFrom))
					rec.timed = append(rec.timed, tailPoint{At: sched.UnixNano(), Lat: done.Sub(sched)})
				}
				rec.lastDone = done
			}
		})
	}

	var skipped int64
	interval := time.Duration(float64(time.Second) / rate)
	timer := time.NewTimer(0)
	<-timer.C
pace:
	for i := int64(0); ; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if !sched.Before(end) {
			break
		}
		if wait := time.Until(sched); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break pace
			}
		}
		if poll != nil {
			poll(time.Now())
		}
		select {
		case tokens <- token{sched: sched, queued: time.Now()}:
		default:
			if !sched.Before(measureFrom) {
				skipped++
			}
		}
	}
	timer.Stop()
	close(tokens)
	wg.Wait()

	// The measured window is the scheduled one; the achieved rate is what
	// completed successfully of what was scheduled in it.
	res := summarize(recs, dur)
	res.skipped, res.target = skipped, rate
	res.from, res.to = measureFrom, end
	res.tail = tailOf(recs, res.p99)
	res.cpu = cpuBetween(cpu0, sampleCPU())
	return res
}

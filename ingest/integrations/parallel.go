package integrations

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/pushgo/gateway/schemas/apierr"
)

// maxLanes bounds the lanes a Routes keeps: amParallel, the widest one
// request runs. Past it, a request's lanes are goroutines of their own
// that end with it.
const maxLanes = amParallel

// lanes runs the reports of one request beside each other on goroutines
// that outlive the request. A report's goroutine is costly to start: it
// grows its stack by doubling deep in the JSON encoder, each growth copying
// the stack (5.6% of the CPU of 100-alert Alertmanager notifications with
// a fresh goroutine per lane, 5 December). A lane that has finished one
// request's work waits for the next request's, its grown stack kept (the
// collector halves an idle stack at most once a cycle).
//
// The zero value is not usable; newLanes makes one. Close stops the idle
// lanes; a request served after it still runs its calls beside each other,
// on goroutines that end with them.
type lanes struct {
	work chan func() // unbuffered: a send lands only on an idle lane
	stop chan struct{}
	once sync.Once
	live atomic.Int32 // lanes running or idle
	max  int32
	log  *slog.Logger
}

func newLanes(max int, log *slog.Logger) *lanes {
	return &lanes{work: make(chan func()), stop: make(chan struct{}), max: int32(max), log: log}
}

// Close stops the idle lanes and, as they finish, the busy ones; later
// calls do nothing.
func (l *lanes) Close() { l.once.Do(func() { close(l.stop) }) }

// each calls fn for 0..n-1, at most limit at once, and returns the first
// error; the first error cancels the ctx given to the calls not yet done,
// and no lane takes another index after it (one taken as it came may still
// start). It returns once every call it started has returned. Appends
// already made stay made: the tool's retry is idempotent. With more than
// one call, a panic in any is logged at once, cancels the other calls, and
// is raised again on the caller's goroutine once they have returned, as if
// the call had run there (the HTTP server then ends the request).
//
// A single call runs on the caller's goroutine (its panic is the
// handler's own): most reports are about one Thing or one group, and a
// lane and a cancellable context for it were a handoff per request for
// nothing to run beside. Otherwise min(n, limit) lanes, the caller one of
// them, take the indexes in order, each as many as it can (a 100-alert
// notification runs 64 lanes, not 100).
func (l *lanes) each(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) *apierr.Error) *apierr.Error {
	switch {
	case n <= 0:
		return nil
	case n == 1:
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		done     atomic.Int64 // calls that returned nil
		first    atomic.Pointer[apierr.Error]
		panicked atomic.Pointer[lanePanic]
		wg       sync.WaitGroup
	)
	// lane takes indexes until none is left, an error or a cancel. A
	// call's panic is caught: logged at once (another call may hold the
	// request up for long, or for good if the panic left a lock held), the
	// first with its stack, and raised on the caller once every call has
	// returned.
	lane := func() {
		defer func() {
			if v := recover(); v != nil {
				p := &lanePanic{value: v, stack: debug.Stack()}
				if panicked.CompareAndSwap(nil, p) {
					l.log.Error("integrations: panic in a report; its request ends once its other reports have returned", "panic", fmt.Sprint(v), "stack", string(p.stack))
				} else {
					l.log.Error("integrations: another panic in the same request's reports", "panic", fmt.Sprint(v))
				}
				cancel()
			}
		}()
		for ctx.Err() == nil {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if aerr := fn(ctx, i); aerr != nil {
				if first.CompareAndSwap(nil, aerr) {
					cancel()
				}
				return
			}
			done.Add(1)
		}
	}
	others := min(n, max(limit, 1)) - 1
	wg.Add(others)
	for range others {
		l.start(func() {
			defer wg.Done()
			lane()
		})
	}
	lane()
	wg.Wait()
	if p := panicked.Load(); p != nil {
		panic(p)
	}
	if aerr := first.Load(); aerr != nil {
		return aerr
	}
	if int(done.Load()) < n {
		// The caller's context ended between calls: the ones never made
		// are no success to answer (the caller would list them as done).
		return &apierr.Error{Code: apierr.AppendUnavailable, RetryAfter: 1,
			Detail: fmt.Sprintf("request ended after %d of its %d reports: %v", done.Load(), n, context.Cause(ctx))}
	}
	return nil
}

// start runs task on an idle lane, or on a new one while fewer than max
// run, or else on a goroutine of its own. task must not panic.
func (l *lanes) start(task func()) {
	select {
	case l.work <- task:
		return
	default:
	}
	if l.live.Add(1) <= l.max {
		go l.loop(task)
		return
	}
	l.live.Add(-1)
	go task()
}

// loop is a lane: it runs task, then each task handed to it, until Close.
func (l *lanes) loop(task func()) {
	defer l.live.Add(-1)
	for {
		task()
		select {
		case task = <-l.work:
		case <-l.stop:
			return
		}
	}
}

// lanePanic is a call's panic as raised again on the caller's goroutine:
// its value, and its stack where it was caught (logged then).
type lanePanic struct {
	value any
	stack []byte
}

// Error is the panic's value; its stack on the lane was logged when it was
// caught.
func (p *lanePanic) Error() string {
	return fmt.Sprintf("panic in a report's lane (its stack logged with it): %v", p.value)
}

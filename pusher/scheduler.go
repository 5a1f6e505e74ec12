package pusher

import (
	"context"
	"sync"
)

// scheduler hands deliveries to a fixed pool of workers under two rules:
//
//   - one device's deliveries go one at a time, in the order they were
//     scheduled (log order: operations are scheduled in sequence order), so
//     an event's create, update and close reach a phone in that order;
//   - operations with deliveries ready are served round robin, one device
//     each turn, so a 100,000-device fan-out does not hold up a 10-device
//     channel scheduled after it, and a slow device holds up nobody but
//     itself (its next delivery waits; the worker pool goes on).
//
// Memory is one small record per device with deliveries scheduled, and
// one queue entry per ready device; both are released as deliveries end.
type scheduler struct {
	mu     sync.Mutex
	cond   sync.Cond
	devs   map[string]*devQueue
	ring   []*opRun // operations with ready devices, served in turn
	next   int      // the ring's next turn
	closed bool
}

// devQueue is one device's scheduled deliveries: the operations it awaits,
// in sequence order. The head is being sent (busy) or ready in its
// operation's queue.
type devQueue struct {
	key  string
	ops  []*opRun
	busy bool
}

func newScheduler() *scheduler {
	s := &scheduler{devs: make(map[string]*devQueue)}
	s.cond.L = &s.mu
	return s
}

// schedule queues one delivery of op to each device of devices. Calls for
// operations of a device MUST come in sequence order.
func (s *scheduler) schedule(op *opRun, devices []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ready := 0
	for _, d := range devices {
		q := s.devs[d]
		if q == nil {
			q = &devQueue{key: d}
			s.devs[d] = q
		}
		q.ops = append(q.ops, op)
		if !q.busy && len(q.ops) == 1 {
			s.readyLocked(op, q)
			ready++
		}
	}
	// Wake as many workers as there are deliveries ready, not all of
	// them: a broadcast per operation woke 512 goroutines for 10 sends.
	for range ready {
		s.cond.Signal()
	}
}

func (s *scheduler) readyLocked(op *opRun, q *devQueue) {
	op.ready = append(op.ready, q)
	if !op.inRing {
		op.inRing = true
		s.ring = append(s.ring, op)
	}
}

// take blocks until a delivery is ready and returns its device and
// operation, marking the device busy; ok is false once the scheduler is
// closed.
func (s *scheduler) take() (q *devQueue, op *opRun, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.ring) == 0 && !s.closed {
		s.cond.Wait()
	}
	if s.closed {
		return nil, nil, false
	}
	if s.next >= len(s.ring) {
		s.next = 0
	}
	op = s.ring[s.next]
	q = op.ready[op.readyHead]
	op.ready[op.readyHead] = nil
	op.readyHead++
	if op.readyHead == len(op.ready) {
		op.ready, op.readyHead, op.inRing = op.ready[:0], 0, false
		s.ring = append(s.ring[:s.next], s.ring[s.next+1:]...)
	} else {
		s.next++
	}
	q.busy = true
	return q, op, true
}

// done ends q's head delivery and readies its next one.
func (s *scheduler) done(q *devQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q.ops[0] = nil
	q.ops = q.ops[1:]
	q.busy = false
	if len(q.ops) == 0 {
		delete(s.devs, q.key)
		return
	}
	s.readyLocked(q.ops[0], q)
	s.cond.Signal()
}

// close wakes every worker waiting in take; take returns false from then
// on. Deliveries still queued are not sent: their operations are not
// acknowledged, and their partition's next owner sends them.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// runWorkers runs n workers, each taking a delivery and passing it to
// send, until the scheduler is closed; it returns when all have ended.
func (s *scheduler) runWorkers(ctx context.Context, n int, send func(ctx context.Context, op *opRun, device string)) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				q, op, ok := s.take()
				if !ok {
					return
				}
				send(ctx, op, q.key)
				s.done(q)
			}
		})
	}
	wg.Wait()
}

// window bounds the deliveries scheduled and not yet ended: an operation
// is admitted while fewer than max are (one larger than max alone), so a
// burst of fan-outs waits in the log, not in memory.
type window struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
	max  int
}

func newWindow(max int) *window {
	w := &window{max: max}
	w.cond.L = &w.mu
	return w
}

// acquire admits n deliveries, waiting while the window is full; it
// returns ctx's error if ctx ends first.
func (w *window) acquire(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.n >= w.max && w.n > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.cond.Wait()
	}
	w.n += n
	return nil
}

// release ends n deliveries.
func (w *window) release(n int) {
	w.mu.Lock()
	w.n -= n
	w.mu.Unlock()
	w.cond.Broadcast()
}

// inFlight is the deliveries admitted and not ended.
func (w *window) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

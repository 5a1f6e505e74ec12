package pusher

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pushgo/gateway/pusher/sender"
)

// scheduler hands deliveries to a fixed pool of workers under three rules:
//
//   - one device's deliveries are handed to the provider one at a time, in
//     the order they were scheduled (log order: operations are scheduled in
//     sequence order), so they reach the provider in that order. "Handed"
//     is the request written to the connection that carries the device's
//     requests in order, when the sender says so (sender.WithWritten: APNs,
//     one HTTP/2 connection per device), else the end of the Send (FCM).
//     The device's next push does not wait for the provider's answer to the
//     last one: waiting would cap a device at one push per provider round
//     trip (50 a second against APNs' 20 ms), and a burst of alerts to a few
//     phones would queue for seconds;
//   - except within one entity (an event, a thing): a device's delivery of
//     an entity waits until the provider has answered the device's last
//     delivery of the same entity, so a provider that serves a connection's
//     streams concurrently still takes an event's create, update and close
//     in that order (the PushGo apps keep the entity state of the push
//     received last, and they replace each other by collapse id). A
//     waiting delivery holds up the device's later ones too (the first
//     rule); messages are each their own entity and never wait for an
//     answer. At most maxDeviceInFlight deliveries of one device are
//     unanswered at once, so one flooded phone cannot take every worker;
//   - operations with deliveries ready are served round robin, one device
//     each turn, so a 100,000-device fan-out does not hold up a 10-device
//     channel scheduled after it, and a slow device holds up nobody but
//     itself (its next delivery waits; the worker pool goes on).
//
// Memory is one small record per device with deliveries scheduled or
// unanswered, and one queue entry per ready device; both are released as
// deliveries end.
type scheduler struct {
	mu     sync.Mutex
	cond   sync.Cond
	devs   map[string]*devQueue
	ring   []*opRun // operations with ready devices, served in turn
	next   int      // the ring's next turn
	closed bool
}

// maxDeviceInFlight bounds one device's deliveries handed to the provider
// and not yet answered: 32 in flight at APNs' 20 ms round trip is 1,600
// pushes a second to one phone, while a flooded phone holds at most 32 of
// the workers.
const maxDeviceInFlight = 32

// devQueue is one device's deliveries: those scheduled and not yet taken,
// in sequence order (the head ready in its operation's queue, or waiting
// for the rules), and the entities of those taken and not yet answered.
type devQueue struct {
	key      string
	ops      []*opRun
	queued   bool     // the head is in its operation's ready queue
	handing  bool     // a worker is handing the last taken delivery over (not yet written)
	inFlight []string // entity of each delivery taken and not yet answered
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
	if op.entity == "" {
		op.entity = op.entityKey()
	}
	ready := 0
	for _, d := range devices {
		q := s.devs[d]
		if q == nil {
			q = &devQueue{key: d}
			s.devs[d] = q
		}
		q.ops = append(q.ops, op)
		if s.promoteLocked(q) {
			ready++
		}
	}
	// Wake as many workers as there are deliveries ready, not all of
	// them: a broadcast per operation woke 512 goroutines for 10 sends.
	for range ready {
		s.cond.Signal()
	}
}

// promoteLocked puts q's head in its operation's ready queue if the rules
// allow it now, and reports whether it did.
func (s *scheduler) promoteLocked(q *devQueue) bool {
	if q.queued || q.handing || len(q.ops) == 0 || len(q.inFlight) >= maxDeviceInFlight ||
		slices.Contains(q.inFlight, q.ops[0].entity) {
		return false
	}
	op := q.ops[0]
	q.queued = true
	op.ready = append(op.ready, q)
	if !op.inRing {
		op.inRing = true
		s.ring = append(s.ring, op)
	}
	return true
}

// take blocks until a delivery is ready and returns its device and
// operation, marking the device as handing it over; ok is false once the
// scheduler is closed.
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
	q.ops[0] = nil
	q.ops = q.ops[1:]
	q.queued, q.handing = false, true
	q.inFlight = append(q.inFlight, op.entity)
	return q, op, true
}

// written ends the turn of q's delivery being handed over (it is written
// to the provider's connection, or its Send ended) and readies q's next
// one if the rules allow.
func (s *scheduler) written(q *devQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q.handing = false
	if len(q.ops) == 0 && len(q.inFlight) == 0 {
		// The transport said "written" after the Send returned and its
		// answer was counted (its write goroutine lost the race to the
		// worker): nothing is left of the device.
		delete(s.devs, q.key)
		return
	}
	if s.promoteLocked(q) {
		s.cond.Signal()
	}
}

// answered ends a delivery of entity to q (its Send returned, after
// written) and readies q's next one if the rules allow.
func (s *scheduler) answered(q *devQueue, entity string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(q.inFlight, entity); i >= 0 {
		q.inFlight = slices.Delete(q.inFlight, i, i+1)
	}
	if len(q.ops) == 0 && !q.handing && len(q.inFlight) == 0 {
		delete(s.devs, q.key)
		return
	}
	if s.promoteLocked(q) {
		s.cond.Signal()
	}
}

// queuedDelivery is a delivery scheduled and not taken by a worker.
type queuedDelivery struct {
	op     *opRun
	device string
}

// takeQueued removes every delivery scheduled and not yet taken, and
// returns them in each device's order; the deliveries workers have taken
// go on. A stopping pusher hands them to the retry queue (handOffQueued).
func (s *scheduler) takeQueued() []queuedDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []queuedDelivery
	for key, q := range s.devs {
		for _, op := range q.ops {
			out = append(out, queuedDelivery{op, key})
		}
		q.ops, q.queued = nil, false
		if !q.handing && len(q.inFlight) == 0 {
			delete(s.devs, key)
		}
	}
	for _, op := range s.ring {
		clear(op.ready)
		op.ready, op.readyHead, op.inRing = op.ready[:0], 0, false
	}
	clear(s.ring)
	s.ring, s.next = s.ring[:0], 0
	return out
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
// send's context carries the turn's end (sender.WithWritten).
func (s *scheduler) runWorkers(ctx context.Context, n int, send func(ctx context.Context, op *opRun, device string)) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				q, op, ok := s.take()
				if !ok {
					return
				}
				t := &turn{s: s, q: q}
				send(sender.WithWritten(ctx, t.markWritten), op, q.key)
				t.markWritten()
				s.answered(q, op.entity)
			}
		})
	}
	wg.Wait()
}

// turn is one delivery's turn at handing its device's requests over; it
// ends once, when the sender says the request is written or when Send
// returns, whichever is first.
type turn struct {
	s       *scheduler
	q       *devQueue
	written atomic.Bool
}

func (t *turn) markWritten() {
	if t.written.CompareAndSwap(false, true) {
		t.s.written(t.q)
	}
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

// entityKey names the entity op is about, for the per-(device, entity)
// rule: "" for an operation without an envelope (tests), so they all share
// one entity.
func (op *opRun) entityKey() string {
	if op.env == nil {
		return ""
	}
	return string(op.env.Op.Kind()) + "." + op.env.ChannelID + "." + op.env.EntityID
}

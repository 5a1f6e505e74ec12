package pusher

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// lane is one goroutine's queue of retry tasks: every task of a device
// goes through the same lane, one after the other, in the order it came.
// Queuing never blocks. The retry consumer's handler queues a task and
// takes the next at once, so each task the client has pulled is held, and
// kept alive (heldTasks), as soon as it arrives. A bounded lane blocked
// the handler while one busy device's lane was full, and the tasks left in
// the client's buffer behind it passed their ack wait: the broker handed
// them out again, and they were sent twice. The retry consumer's
// MaxAckPending bounds what the lanes hold together.
type lane struct {
	mu    sync.Mutex
	queue []jetstream.Msg
	wake  chan struct{} // a task was queued
}

func newLane() *lane { return &lane{wake: make(chan struct{}, 1)} }

// push queues m.
func (l *lane) push(m jetstream.Msg) {
	l.mu.Lock()
	l.queue = append(l.queue, m)
	l.mu.Unlock()
	signal(l.wake)
}

// pop takes the oldest task queued; ok is false when there is none.
func (l *lane) pop() (m jetstream.Msg, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return nil, false
	}
	m = l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	if len(l.queue) == 0 {
		l.queue = nil // let the emptied backing array go
	}
	return m, true
}

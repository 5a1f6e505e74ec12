package pusher

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/consume"
)

// heldTasks are the retry tasks this replica has taken and not yet
// settled: queued in their device's lane or being sent. keepAlive
// restarts their ack wait every third of it. A lane sends one device's
// tasks one after the other, so during a provider's outage (each send
// timing out after SendTimeout) a task can wait in its lane longer than
// the ack wait; the broker then handed it to a replica again, and once the
// provider answered, the device was pushed once per copy.
type heldTasks struct {
	mu sync.Mutex
	m  map[jetstream.Msg]struct{}
	// readWaits holds, per task held, the back-off of its last try whose
	// broker reads failed (parkAfterReadFailure).
	readWaits map[jetstream.Msg]time.Duration
}

func (h *heldTasks) hold(m jetstream.Msg) {
	h.mu.Lock()
	if h.m == nil {
		h.m = make(map[jetstream.Msg]struct{})
	}
	h.m[m] = struct{}{}
	h.mu.Unlock()
}

func (h *heldTasks) release(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.m, m)
	delete(h.readWaits, m)
	h.mu.Unlock()
}

// failedRead counts a try of m whose reads failed and returns how long m
// waits before its next: retryReadFirstWait, doubling up to
// retryReadMaxWait.
func (h *heldTasks) failedRead(m jetstream.Msg) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readWaits == nil {
		h.readWaits = make(map[jetstream.Msg]time.Duration)
	}
	wait := retryReadFirstWait
	if last, ok := h.readWaits[m]; ok {
		wait = min(2*last, retryReadMaxWait)
	}
	h.readWaits[m] = wait
	return wait
}

// inProgress tells the broker that every task held is still in progress.
// Under the lock: a task released (settleTask) is not signalled after its
// settlement, where the signal would undo a delayed Nak (the broker would
// redeliver it after the ack wait instead of the policy's delay). Both go
// out on one connection, in the order the lock gives them.
func (h *heldTasks) inProgress() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m := range h.m {
		_ = m.InProgress()
	}
}

// settleTask settles a retry task the send loop handed over (toLane) and
// stops keeping it alive.
func (p *Pusher) settleTask(m jetstream.Msg, d consume.Decision) {
	p.held.release(m)
	p.sendLoop.Settle(m, d)
}

// keepAlive tells the broker every third of the retry queue's ack wait
// that each held task is still in progress (heldTasks.inProgress), until
// ctx ends. The signals are published without waiting for an answer; one
// that is lost is made up by the next.
func (p *Pusher) keepAlive(ctx context.Context) error {
	t := time.NewTicker(max(p.cfg.RetryAckWait/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p.held.inProgress()
	}
}

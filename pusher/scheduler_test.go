package pusher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/schemas/ops"
)

func opOn(seq uint64, op ops.Name, entity string) *opRun {
	return &opRun{seq: seq, env: &ops.Envelope{Op: op, ChannelID: "ch", EntityID: entity}}
}

// tryTake is take without the wait: ok is false when nothing is ready.
func tryTake(s *scheduler) (*devQueue, *opRun, bool) {
	s.mu.Lock()
	ready := len(s.ring) > 0
	s.mu.Unlock()
	if !ready {
		return nil, nil, false
	}
	return s.take()
}

func mustTake(t *testing.T, s *scheduler, device string, seq uint64) *devQueue {
	t.Helper()
	q, op, ok := tryTake(s)
	if !ok {
		t.Fatalf("nothing ready, want %s seq %d", device, seq)
	}
	if q.key != device || op.seq != seq {
		t.Fatalf("took %s seq %d, want %s seq %d", q.key, op.seq, device, seq)
	}
	return q
}

func mustWait(t *testing.T, s *scheduler, why string) {
	t.Helper()
	if q, op, ok := tryTake(s); ok {
		t.Fatalf("took %s seq %d, want nothing ready: %s", q.key, op.seq, why)
	}
}

// TestDeviceOrderWrittenEntityOrderAnswered walks one device through the
// rules: its next delivery is ready once the last is written, not
// answered; a delivery of an entity with one unanswered waits for that
// answer, and the device's later deliveries wait behind it; another device
// is never held up.
func TestDeviceOrderWrittenEntityOrderAnswered(t *testing.T) {
	s := newScheduler()
	create, m2, update, m4 := opOn(1, ops.EventCreate, "ev1"), opOn(2, ops.MessageCreate, "m2"),
		opOn(3, ops.EventUpdate, "ev1"), opOn(4, ops.MessageCreate, "m4")
	s.schedule(create, []string{"d", "e"})
	s.schedule(m2, []string{"d"})
	s.schedule(update, []string{"d"})
	s.schedule(m4, []string{"d"})

	d1 := mustTake(t, s, "d", 1)
	mustTake(t, s, "e", 1)
	mustWait(t, s, "d's create is not written yet")
	s.written(d1)
	d2 := mustTake(t, s, "d", 2) // the create is unanswered: a message does not wait for it
	mustWait(t, s, "d's message is not written yet")
	s.written(d2)
	mustWait(t, s, "d's update of ev1 waits for the answer to its create; the message after it waits behind it")
	s.answered(d2, m2.entity)
	mustWait(t, s, "the message's answer is not the create's")
	s.answered(d1, create.entity)
	d3 := mustTake(t, s, "d", 3)
	s.written(d3)
	mustTake(t, s, "d", 4)
}

// TestDeviceInFlightBounded: a device has at most maxDeviceInFlight
// deliveries unanswered; the next is ready once one is answered.
func TestDeviceInFlightBounded(t *testing.T) {
	s := newScheduler()
	var sent []*opRun
	for i := range maxDeviceInFlight + 2 {
		op := opOn(uint64(i+1), ops.MessageCreate, fmt.Sprintf("m%d", i+1))
		sent = append(sent, op)
		s.schedule(op, []string{"d"})
	}
	var q *devQueue
	for i := range maxDeviceInFlight {
		q = mustTake(t, s, "d", uint64(i+1))
		s.written(q)
	}
	mustWait(t, s, fmt.Sprintf("%d deliveries unanswered", maxDeviceInFlight))
	s.answered(q, sent[0].entity)
	mustTake(t, s, "d", maxDeviceInFlight+1)
}

// TestWorkersPipelineADevice runs the workers: a device's messages are
// answered only once its next message was handed over (were a device's
// sends one at a time, the first would wait forever: the test's
// deadline); each device's deliveries are handed over in log order; and
// one event's updates to a device never overlap (each starts after the
// last was answered).
func TestWorkersPipelineADevice(t *testing.T) {
	const devicesN, messages, updates, workers = 3, 60, 20, 16
	s := newScheduler()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var all []*opRun
	for i := range messages {
		all = append(all, opOn(uint64(len(all)+1), ops.MessageCreate, fmt.Sprintf("m%d", i)))
		if i < updates {
			all = append(all, opOn(uint64(len(all)+1), ops.EventUpdate, "ev"))
		}
	}
	nextMessage := map[uint64]uint64{} // a message's seq -> the device's next message's seq
	for i, last := 0, uint64(0); i < len(all); i++ {
		if all[i].env.Op == ops.MessageCreate {
			if last != 0 {
				nextMessage[last] = all[i].seq
			}
			last = all[i].seq
		}
	}

	var mu sync.Mutex
	started := map[string]chan struct{}{}
	startedCh := func(dev string, seq uint64) chan struct{} { // under mu
		k := fmt.Sprintf("%s/%d", dev, seq)
		if started[k] == nil {
			started[k] = make(chan struct{})
		}
		return started[k]
	}
	handed := map[string][]uint64{} // per device, in the order handed over
	eventBusy := map[string]bool{}  // per device: an update of ev unanswered
	var overlaps []string
	var sent sync.WaitGroup
	sent.Add(len(all) * devicesN)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runWorkers(ctx, workers, func(ctx context.Context, op *opRun, device string) {
			defer sent.Done()
			mu.Lock()
			handed[device] = append(handed[device], op.seq)
			close(startedCh(device, op.seq))
			if op.env.Op == ops.EventUpdate {
				if eventBusy[device] {
					overlaps = append(overlaps, fmt.Sprintf("%s seq %d", device, op.seq))
				}
				eventBusy[device] = true
				mu.Unlock()
				sender.Written(ctx)
				time.Sleep(time.Millisecond) // an answer takes a while: an overlap would show
				mu.Lock()
				eventBusy[device] = false
				mu.Unlock()
				return
			}
			next, hasNext := nextMessage[op.seq]
			var nextStarted chan struct{}
			if hasNext {
				nextStarted = startedCh(device, next)
			}
			mu.Unlock()
			sender.Written(ctx)
			if hasNext {
				select { // answered once the device's next message was handed over
				case <-nextStarted:
				case <-ctx.Done():
				}
			}
		})
	}()
	devs := make([]string, devicesN)
	for d := range devicesN {
		devs[d] = fmt.Sprintf("dev%d", d)
	}
	for _, op := range all {
		s.schedule(op, devs)
	}
	allSent := make(chan struct{})
	go func() { sent.Wait(); close(allSent) }()
	select {
	case <-allSent:
	case <-ctx.Done():
		t.Fatal("not every delivery was sent: a device's message waited for the answer to the one before it")
	}
	s.close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Fatalf("an update of one event started before the device's last one was answered: %v", overlaps)
	}
	for _, dev := range devs {
		seqs := handed[dev]
		if len(seqs) != len(all) {
			t.Fatalf("%s: %d of %d deliveries handed over", dev, len(seqs), len(all))
		}
		for i := range seqs {
			if seqs[i] != uint64(i+1) {
				t.Fatalf("%s: handed over seq %d at position %d, want log order", dev, seqs[i], i)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.devs) != 0 {
		t.Fatalf("%d device records left after every delivery ended", len(s.devs))
	}
}

// TestWrittenAfterAnswered: a transport may say "written" after the Send
// returned and its answer was counted; the device's record goes then, not
// left behind.
func TestWrittenAfterAnswered(t *testing.T) {
	s := newScheduler()
	op := opOn(1, ops.MessageCreate, "m1")
	s.schedule(op, []string{"d"})
	q := mustTake(t, s, "d", 1)
	s.answered(q, op.entity) // the worker's answer, before the write callback
	s.written(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.devs) != 0 {
		t.Fatalf("%d device records left after the only delivery ended", len(s.devs))
	}
}

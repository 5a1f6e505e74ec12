package pusher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/schemas/ops"
)

func opOn(seq uint64, op ops.Name, entity string) *opRun {
	return &opRun{seq: seq, env: &ops.Envelope{Op: op, ChannelID: "ch", EntityID: entity}}
}

// TestOneEntityWaitsOthersDoNot: a device's next delivery of an entity is
// not ready while the one before it is being sent, and is ready once that
// send ends; a delivery of another entity to the same device, and one to
// another device, are not held up meanwhile.
func TestOneEntityWaitsOthersDoNot(t *testing.T) {
	s := newScheduler()
	create, update := opOn(1, ops.EventCreate, "ev1"), opOn(2, ops.EventUpdate, "ev1")
	msg := opOn(3, ops.MessageCreate, "m1")
	s.schedule(create, []string{"d"})
	s.schedule(update, []string{"d", "e"})
	s.schedule(msg, []string{"d"})

	taken := map[string]*devQueue{}
	for range 3 {
		q, op, ok := tryTake(s)
		if !ok {
			break
		}
		taken[fmt.Sprintf("%s seq %d", q.device, op.seq)] = q
	}
	for _, want := range []string{"d seq 1", "e seq 2", "d seq 3"} {
		if taken[want] == nil {
			t.Fatalf("taken %v, want %s among them (d's update of ev1 waits; e and d's message do not)", keys(taken), want)
		}
	}
	s.mu.Lock()
	ready := len(s.ring)
	s.mu.Unlock()
	if ready != 0 {
		t.Fatalf("%d operations ready while d's send of ev1 is in flight, want 0", ready)
	}
	s.done(taken["d seq 1"])
	q, op, ok := tryTake(s)
	if !ok {
		t.Fatal("after d's create of ev1 ended: nothing ready, want d seq 2")
	}
	if q.device != "d" || op != update {
		t.Fatalf("after d's create of ev1 ended: %s seq %d, want d seq 2", q.device, op.seq)
	}
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

func keys(m map[string]*devQueue) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestDeviceEntitiesConcurrentEachInOrder: with many workers, a device's
// sends of different entities overlap: messages come in pairs, and the
// first of a pair is answered only once the second's send to the same
// device has started (were a device's sends one at a time, the first would
// wait forever: the test's deadline). And one event's updates reach each
// device in log order.
func TestDeviceEntitiesConcurrentEachInOrder(t *testing.T) {
	const devicesN, pairs, updates, workers = 3, 50, 30, 16
	s := newScheduler()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	startedCh := map[string]chan struct{}{}
	started := func(dev string, seq uint64) chan struct{} { // under mu
		k := fmt.Sprintf("%s/%d", dev, seq)
		if startedCh[k] == nil {
			startedCh[k] = make(chan struct{})
		}
		return startedCh[k]
	}
	eventSeqs := map[string][]uint64{}
	var all []*opRun
	seq := uint64(0)
	for i := range pairs {
		seq++
		all = append(all, opOn(seq, ops.MessageCreate, fmt.Sprintf("m%d", seq)))
		seq++
		all = append(all, opOn(seq, ops.MessageCreate, fmt.Sprintf("m%d", seq)))
		if i < updates {
			seq++
			all = append(all, opOn(seq, ops.EventUpdate, "ev"))
		}
	}
	isFirst := map[uint64]uint64{} // first of a pair -> second
	for i := 0; i+1 < len(all); i++ {
		if all[i].env.Op == ops.MessageCreate && all[i+1].env.Op == ops.MessageCreate && (i == 0 || all[i-1].env.Op != ops.MessageCreate || isFirst[all[i-1].seq] == 0) {
			isFirst[all[i].seq] = all[i+1].seq
		}
	}
	var sent sync.WaitGroup
	sent.Add(len(all) * devicesN)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runWorkers(ctx, workers, func(ctx context.Context, op *opRun, device string) {
			defer sent.Done()
			mu.Lock()
			if op.env.Op == ops.EventUpdate {
				eventSeqs[device] = append(eventSeqs[device], op.seq)
				mu.Unlock()
				return
			}
			close(started(device, op.seq))
			var second chan struct{}
			if next, ok := isFirst[op.seq]; ok {
				second = started(device, next)
			}
			mu.Unlock()
			if second != nil {
				select { // answered once the pair's second send began
				case <-second:
				case <-ctx.Done():
				}
			}
		})
	}()
	for _, op := range all {
		devs := make([]string, devicesN)
		for d := range devicesN {
			devs[d] = fmt.Sprintf("dev%d", d)
		}
		s.schedule(op, devs)
	}
	allSent := make(chan struct{})
	go func() { sent.Wait(); close(allSent) }()
	select {
	case <-allSent:
	case <-ctx.Done():
		t.Fatal("not every delivery was sent: a message's send waited for the answer to another entity's")
	}
	s.close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for d := range devicesN {
		dev := fmt.Sprintf("dev%d", d)
		seqs := eventSeqs[dev]
		if len(seqs) != updates {
			t.Fatalf("%s: %d of the event's %d updates sent", dev, len(seqs), updates)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Fatalf("%s: the event's seq %d sent after seq %d (log order)", dev, seqs[i], seqs[i-1])
			}
		}
	}
}

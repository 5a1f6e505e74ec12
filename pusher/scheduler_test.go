package pusher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher/sender"
)

// TestNextPushWaitsForTheTurnToEnd: a device's next delivery is not ready
// while the one before it is being handed to the provider, and is ready as
// soon as that turn ends; another device is not held up meanwhile.
func TestNextPushWaitsForTheTurnToEnd(t *testing.T) {
	s := newScheduler()
	op1, op2, op3 := &opRun{seq: 1}, &opRun{seq: 2}, &opRun{seq: 3}
	s.schedule(op1, []string{"d"})
	s.schedule(op2, []string{"d", "e"})
	s.schedule(op3, []string{"d"})

	q, op, _ := s.take()
	if q.key != "d" || op != op1 {
		t.Fatalf("first turn: %s seq %d, want d seq 1", q.key, op.seq)
	}
	qe, op, _ := s.take()
	if qe.key != "e" || op != op2 {
		t.Fatalf("second turn: %s seq %d, want e seq 2 (d is busy)", qe.key, op.seq)
	}
	s.mu.Lock()
	ready := len(s.ring)
	s.mu.Unlock()
	if ready != 0 {
		t.Fatalf("%d operations ready while d's first turn is open, want 0", ready)
	}
	s.handed(q)
	if q, op, _ = s.take(); q.key != "d" || op != op2 {
		t.Fatalf("after d's first turn ended: %s seq %d, want d seq 2", q.key, op.seq)
	}
	s.handed(q)
	if q, op, _ = s.take(); q.key != "d" || op != op3 {
		t.Fatalf("after d's second turn ended: %s seq %d, want d seq 3", q.key, op.seq)
	}
}

// TestDevicePushesPipelinedInOrder: with a sender that reports each request
// written, a device's next Send starts while the one before it still waits
// for the provider's answer, and each device's Sends start in log order.
// Each Send returns only once the device's next Send has started: without
// the pipelining, the workers would wait forever (the test's deadline).
func TestDevicePushesPipelinedInOrder(t *testing.T) {
	const devicesN, opsN, workers = 3, 200, 16
	s := newScheduler()
	var mu sync.Mutex
	started := map[string][]uint64{}
	startedCh := map[string]map[uint64]chan struct{}{}
	for d := range devicesN {
		key := fmt.Sprintf("dev%d", d)
		startedCh[key] = map[uint64]chan struct{}{}
		for i := 1; i <= opsN; i++ {
			startedCh[key][uint64(i)] = make(chan struct{})
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runWorkers(ctx, workers, func(ctx context.Context, op *opRun, device string) {
			mu.Lock()
			started[device] = append(started[device], op.seq)
			mu.Unlock()
			close(startedCh[device][op.seq])
			sender.Written(ctx)
			if op.seq == opsN {
				return
			}
			select { // the provider's answer comes after the next push started
			case <-startedCh[device][op.seq+1]:
			case <-ctx.Done():
			}
		})
	}()
	for i := 1; i <= opsN; i++ {
		devs := make([]string, devicesN)
		for d := range devicesN {
			devs[d] = fmt.Sprintf("dev%d", d)
		}
		s.schedule(&opRun{seq: uint64(i)}, devs)
	}
	for d := range devicesN {
		select {
		case <-startedCh[fmt.Sprintf("dev%d", d)][opsN]:
		case <-ctx.Done():
			mu.Lock()
			n := len(started[fmt.Sprintf("dev%d", d)])
			mu.Unlock()
			t.Fatalf("device %d: %d of %d pushes started: a Send waited for the answer to the one before", d, n, opsN)
		}
	}
	s.close()
	<-done
	for dev, seqs := range started {
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("%s: push %d started with seq %d, want %d (log order)", dev, i, seq, i+1)
			}
		}
	}
}

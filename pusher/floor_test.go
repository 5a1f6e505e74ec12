package pusher

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// stubMsg stands for a delivered message; the floor only keeps it and
// compares it, never calls it.
type stubMsg struct {
	jetstream.Msg
	seq uint64
}

// An operation a partition sends nothing moves the floor at once only when
// nothing taken before it is still being delivered; behind one that is, it
// waits, and the floor passes both when that one is recorded. A floor past
// an operation still in flight would acknowledge it (AckAll) before its
// sends and summary, and a crash then would lose its delivery.
func TestFloorPassesNobodysOperationsInOrder(t *testing.T) {
	ep := &epoch{}
	pt := &partition{p: &Pusher{floorMoved: make(chan struct{}, 1)}}
	pt.cur.Store(ep)
	msg := func(seq uint64) jetstream.Msg { return stubMsg{seq: seq} }
	var last uint64 // the floor at the last look
	floorAt := func(want uint64) {
		t.Helper()
		// Each move of the floor wakes the acknowledger (ackFloors, which
		// has no timer running while no floor moves); nothing else does.
		woken := false
		select {
		case <-pt.p.floorMoved:
			woken = true
		default:
		}
		if moved := want != last; moved != woken {
			t.Fatalf("floor %d after %d: acknowledger woken %v", want, last, woken)
		}
		last = want
		ep.mu.Lock()
		defer ep.mu.Unlock()
		if want == 0 {
			if ep.floor.m != nil {
				t.Fatalf("floor at %d, want none", ep.floor.seq)
			}
			return
		}
		if ep.floor.m != msg(want) || ep.floor.seq != want {
			t.Fatalf("floor at %d, want %d", ep.floor.seq, want)
		}
	}

	passedAt := func(want uint64) {
		t.Helper()
		ep.mu.Lock()
		defer ep.mu.Unlock()
		if ep.passed != want {
			t.Fatalf("passed %d, want %d", ep.passed, want)
		}
	}

	pt.pass(intakeItem{ep: ep, m: msg(1), seq: 1})
	floorAt(1)

	inFlight := &opRun{pt: pt, ep: ep, m: msg(2), seq: 2}
	pt.track(inFlight)
	pt.pass(intakeItem{ep: ep, m: msg(3), seq: 3})
	pt.pass(intakeItem{ep: ep, m: msg(4), seq: 4})
	floorAt(1)
	if pt.settled() {
		t.Fatal("settled with an operation in flight")
	}

	inFlight.recorded()
	floorAt(4)
	if !pt.settled() {
		t.Fatal("not settled once every operation was passed")
	}

	// One read from the stream (no message of its own) is covered by the
	// acknowledgement of a later one: the floor stays where it was.
	pt.pass(intakeItem{ep: ep, seq: 5})
	floorAt(4)
	passedAt(5)
	pt.pass(intakeItem{ep: ep, m: msg(6), seq: 6})
	floorAt(6)

	// Behind one in flight, one read from the stream is passed when that
	// one is recorded, though the floor has no message of its own for it:
	// what checkFloor compares with the broker's floor.
	tail := &opRun{pt: pt, ep: ep, m: msg(7), seq: 7}
	pt.track(tail)
	pt.pass(intakeItem{ep: ep, seq: 8})
	passedAt(6)
	tail.recorded()
	floorAt(7)
	passedAt(8)
}

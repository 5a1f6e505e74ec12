package pusher

import (
	"context"
	"time"
)

// A partition's acknowledgement is an AckAll, and the broker records its
// floor by delivery sequence as well as stream sequence: it ignores an
// AckAll whose delivery sequence is at or below the floor's. A reset (every
// takeover makes one) restarts the delivery sequences at 1. So an
// acknowledgement sent by the partition's previous owner after the new
// owner's reset (the old owner lost the pin without knowing it: a stalled
// process, a network blip longer than the failover time, and then finished
// an operation it had taken) carries a delivery sequence above every one of
// the new owner's, and the broker then ignores the new owner's
// acknowledgements until its deliveries climb past it: in a quiet log for
// good. The operations stay pending, are redelivered every ack wait, fill
// the partition's window (MaxAckPending) in a busy one, and the next owner
// sends them again. An operation read from the stream (fillGap) at the end
// of what an epoch took likewise has no message of its own to acknowledge.
//
// The owner sees either case as a redelivery of an operation its floor has
// passed, asks the broker for the consumer's floor, and when the broker
// still holds the operation, repairs: it takes nothing new until what it
// took is finished (settled), then resets the consumer to the broker's
// floor in a new epoch that passes, unsent, every operation up to the last
// one it took (skipThrough): they come again as fresh deliveries, whose
// acknowledgements the broker takes. Nothing is sent twice, and the
// previous owner's acknowledgement only ever covered operations it had
// finished.

// floorCheckInterval bounds how often a partition asks the broker for its
// consumer's floor.
const floorCheckInterval = time.Second

// checkFloor is called by the partition loop with seq, a redelivery of an
// operation this epoch took. It starts a repair when the floor passed seq
// and the broker still holds it although the epoch acknowledged it, or
// although nothing is left to acknowledge it with.
func (pt *partition) checkFloor(ctx context.Context, seq uint64) {
	ep := pt.cur.Load()
	if ep == nil || pt.resetting {
		return
	}
	ep.mu.Lock()
	passed, acked, floorSeq, idle := ep.passed, ep.ackedSeq, ep.floor.seq, len(ep.ops) == 0
	ep.mu.Unlock()
	switch {
	case seq > passed:
		return // in flight: its acknowledgement, or a later one's, comes when it is done
	case seq <= acked:
		// Acknowledged; the broker may not have had it yet (asked below).
	case idle && pt.pending.Load() == 0 && floorSeq < seq:
		// Passed, and no message at or after it is left to acknowledge.
	default:
		return // the next acknowledgement covers it
	}
	if time.Since(pt.floorChecked) < floorCheckInterval {
		return
	}
	pt.floorChecked = time.Now()
	// Bounded like fillGap: the loop does not pull while it asks.
	ictx, cancel := context.WithTimeout(ctx, pt.p.cfg.Failover/fillGapBudget)
	defer cancel()
	info, err := pt.consumerInfo(ictx)
	if err != nil {
		return // asked again at a later redelivery
	}
	brokerFloor := info.AckFloor.Stream
	if brokerFloor >= seq {
		return
	}
	pt.p.log.Warn("pusher: the broker holds operations this partition acknowledged or passed; repairing its floor",
		"partition", pt.n, "seq", seq, "broker_floor", brokerFloor, "acked", acked, "passed", passed)
	pt.repairing = true
	pt.repairFloor(ctx)
}

// repairFloor resets the consumer to the broker's floor once everything the
// epoch took is finished, in a new epoch that passes unsent the operations
// up to the last one taken. Called by the partition loop while repairing;
// it tries again at the next message until it has reset.
//
// It resets only while the broker still pins this replica, as
// resetAgainIfLost does: a replica that stalled past the failover time
// reads deliveries buffered before it lost the pin (they carry its pin),
// and its reset would restart the delivery sequences under the new owner,
// whose acknowledgements the broker would then ignore until its own
// repair. A message under the new pin ends the repair (a takeover).
func (pt *partition) repairFloor(ctx context.Context) {
	if !pt.settled() || time.Since(pt.unpinnedAt) < floorCheckInterval {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, pt.p.cfg.Failover/fillGapBudget)
	pinned := pt.pinnedTo(ictx, pt.pin)
	cancel()
	if !pinned {
		// Asked again a while later, not at each of the stale messages
		// buffered before the pin moved (a message under the new pin
		// takes over instead).
		pt.unpinnedAt = time.Now()
		return
	}
	skip := max(pt.skipThrough, pt.last) // everything taken is finished
	if err := pt.reset(ctx); err != nil {
		pt.p.log.Warn("pusher: partition reset for a floor repair failed; will retry", "partition", pt.n, "err", err)
		return
	}
	pt.skipThrough, pt.repairing = skip, false
	pt.p.metrics.floorRepairs.Inc()
	pt.p.log.Info("pusher: partition floor repaired", "partition", pt.n, "from_seq", pt.resetSeq, "passed_through", pt.skipThrough)
}

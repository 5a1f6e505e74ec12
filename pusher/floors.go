package pusher

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The floors' record (streams.PartitionFloorsBucket) keeps each delivery
// partition's floor outside its consumer, for the case the consumer is
// found missing (deleted by an operator, lost by the broker): its
// position went with it, and the replica that creates it again, whichever
// wins the race, must know where to start. What a replica knows by itself
// may be long past (a standby started last week, a former owner), and
// starting there pushed the operations since to the partition's devices
// again, as new. The record is written by the partition's owner, after
// its acknowledgement, at most every floorRecordInterval: a consumer
// created again from it sends at most that much again, and never skips an
// operation (every floor written is one its writer had finished).

// floorRecordInterval bounds how often each partition's floor is written.
const floorRecordInterval = time.Second

// recordFloors writes the floor of each partition that moved since it was
// last written, unless written within floorRecordInterval (and not
// final: the pusher stopping); it returns how long until a floor held
// back may be written (0: none is). acked is each partition's floor as
// ackFloor returned it.
func (p *Pusher) recordFloors(ctx context.Context, acked []uint64, now time.Time, final bool) (again time.Duration) {
	for i, pt := range p.parts {
		f := acked[i]
		if f == 0 || f <= pt.recorded {
			continue
		}
		if wait := floorRecordInterval - now.Sub(pt.recordedAt); wait > 0 && !final {
			if again == 0 || wait < again {
				again = wait
			}
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.floors.KV().Put(wctx, strconv.Itoa(pt.n), strconv.AppendUint(nil, f, 10))
		cancel()
		if err != nil {
			p.log.Debug("pusher: partition floor not recorded", "partition", pt.n, "err", err)
			again = floorRecordInterval
			continue
		}
		pt.recorded, pt.recordedAt = f, now
	}
	return again
}

// recordedFloor is partition n's floor as the record holds it (the
// leader's entry); 0 when it holds none.
func (p *Pusher) recordedFloor(ctx context.Context, n int) (uint64, error) {
	e, err := p.floors.Latest(ctx, strconv.Itoa(n))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(e.Value()), 10, 64)
}

// resumeAt is where partition n's consumer, found missing, is created
// again: after the furthest floor known, from this replica's own
// acknowledgements (lastAcked), where the partitions stood when it started
// (start), and the record; with nothing known anywhere, the log's first
// operation (sent again rather than skipped).
func (p *Pusher) resumeAt(n int, lastAcked, start uint64) uint64 {
	at := max(start, lastAcked+1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if f, err := p.recordedFloor(ctx, n); err != nil {
		p.log.Warn("pusher: partition floor not read; the partition starts again from what this replica knows", "partition", n, "err", err)
	} else if f > 0 {
		at = max(at, f+1)
	}
	return at
}

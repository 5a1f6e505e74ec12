package pusher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The partition count is the deployment's, not each replica's: two
// replicas that hash devices with different counts both send to some
// devices and neither to others, and a partition consumer left from
// another count resumes from a floor that may be weeks old. So every
// partition consumer records the count in its Metadata
// (partitionsMetadataKey), and:
//
//   - A pusher left to choose (Config.Partitions 0, "auto") takes the
//     count recorded, from consumer 0 or, while consumer 0 is being made
//     again, any consumer that records one; the highest partition number
//     + 1 only for consumers that record none (made by a pusher before
//     the record); Config.NewPartitions when there is no partition
//     consumer at all. A replica that finds only some of a new
//     deployment's consumers (another replica is creating them) learns
//     the whole count from any one of them.
//   - Start creates every missing partition consumer before it returns,
//     consumer 0 first and with create-only requests: of replicas of a
//     new deployment started together, the first to create consumer 0
//     sets the count, and one whose create finds a consumer recording
//     another count lists again and takes it.
//   - A count set by hand that differs from the recorded one changes the
//     deployment's (repartition): every partition consumer is made again,
//     starting after the lowest ack floor of the partitions the
//     deployment ran, consumer 0 last (its record is the one in force).
//     No consumer is kept where it was: a device moves between partitions
//     with any change of the count (not only those of the partitions
//     removed: from 3 to 2, a device of partition 1 may go to 0), and its
//     new partition must not start after the operations its old one had
//     not finished. Starting every partition from the lowest floor loses
//     none; the cost is that a device gets again the operations between
//     that floor and its old partition's, which are what the partitions
//     had in flight when the deployment stopped: no more than a crash
//     sends twice (a window, Config.PartitionWindow; nothing after a
//     clean stop, which drains). The floors' record is set to the same
//     floor (and its entries for removed partitions purged), so a
//     partition consumer found missing later is not created again past
//     it (resumeAt).
//   - A change is made only while no replica runs the partitions: the
//     count cannot change under a running replica, which hashes with
//     the count it started with. Start waits (up to the failover time
//     and a little more, for the pins and pulls of a replica that just
//     stopped to lapse) and then refuses, naming PUSHGO_DELIVERY_PARTITIONS
//     and both counts: an operator changes the count by stopping every
//     pusher replica and starting them with the new one. The later
//     start does not win: the replicas running would go on with the old
//     count until stopped, and one restarted by its supervisor with its
//     old setting would change it back (devices moved again each time).
//   - A replica that finds the count changed anyway (replicas with
//     different counts started in the same instant) stops with an
//     error, before it takes an operation under the new count: at each
//     takeover (the reset's answer carries the consumer's record; a
//     consumer made again gives a new pin, so every replica takes over
//     again) and before it creates a missing consumer again (Resume).
//     Restarted, it takes the new count (auto) or is refused (set by
//     hand, while the other runs).
//
// A deployment made before the record: its consumers are stamped with the
// count this replica runs (auto: the highest number + 1, as before). A
// count set by hand below that deletes the consumers numbered at or above
// it as left over from an earlier change of the count (they record none,
// so nothing tells them from partitions in use; a replica still pulling
// them is waited for and then refused as above); one above it is a
// change.

// partitionsMetadataKey is the partition consumers' Metadata key whose
// value is the deployment's partition count.
const partitionsMetadataKey = "partitions"

// partitionsIdleGrace is how long, beyond the failover time, a change of
// the partition count waits for the replicas running the partitions to
// be gone (a pull lasts a second; a pin the failover time).
const partitionsIdleGrace = 2 * time.Second

// partitionsIdleConfirm is how long the consumers a change of the count
// replaces must be seen idle (no pull waiting, no pin), without a break,
// before the change: two pulls' length.
const partitionsIdleConfirm = 2 * time.Second

// partitionNumber is the number of the partition consumer name, or false
// when name is not one.
func partitionNumber(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, PartitionConsumerPrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= MaxPartitions || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

// recordOf is the partition count a consumer records; 0 when it records
// none (or one out of range).
func recordOf(info *jetstream.ConsumerInfo) int {
	if info == nil {
		return 0
	}
	n, err := strconv.Atoi(info.Config.Metadata[partitionsMetadataKey])
	if err != nil || n < 1 || n > MaxPartitions {
		return 0
	}
	return n
}

// recordedPartitions is the partition count the deployment's consumers
// record: consumer 0's (a change writes it last, so it is the one in
// force), else that of the lowest-numbered consumer recording one (consumer
// 0 is being made again); 0 when none does.
func recordedPartitions(have map[string]*jetstream.ConsumerInfo) int {
	if n := recordOf(have[PartitionConsumerPrefix+"0"]); n > 0 {
		return n
	}
	n, lowest := 0, MaxPartitions
	for name, info := range have {
		if i, ok := partitionNumber(name); ok && i < lowest && recordOf(info) > 0 {
			n, lowest = recordOf(info), i
		}
	}
	return n
}

// highestPartitions is the highest partition consumer number + 1; 0
// when there is none.
func highestPartitions(have map[string]*jetstream.ConsumerInfo) int {
	n := 0
	for name := range have {
		if i, ok := partitionNumber(name); ok {
			n = max(n, i+1)
		}
	}
	return n
}

// partitionPlan is what a starting replica does with the partition
// consumers it found.
type partitionPlan struct {
	n int // the partitions this replica runs
	// from is the deployment's count when n differs from it (the consumers
	// are made again: repartition); 0 when nothing changes.
	from int
	// leftovers are consumers numbered n and above of a deployment whose
	// consumers record no count, deleted as left over from an earlier
	// change.
	leftovers []string
}

// planPartitions decides the partition count of a replica that wants want
// partitions (0: auto) and found have; fresh is a new deployment's count.
func planPartitions(have map[string]*jetstream.ConsumerInfo, want, fresh int) partitionPlan {
	rec, highest := recordedPartitions(have), highestPartitions(have)
	switch {
	case want == 0 && rec > 0:
		return partitionPlan{n: rec}
	case want == 0 && highest > 0:
		return partitionPlan{n: highest}
	case want == 0:
		return partitionPlan{n: fresh}
	case rec > 0 && rec != want:
		return partitionPlan{n: want, from: rec}
	case rec > 0 || highest == 0 || highest == want:
		return partitionPlan{n: want}
	case highest < want:
		return partitionPlan{n: want, from: highest}
	}
	pl := partitionPlan{n: want}
	for name := range have {
		if i, ok := partitionNumber(name); ok && i >= want {
			pl.leftovers = append(pl.leftovers, name)
		}
	}
	return pl
}

// errPartitionsRaced: another replica created a partition consumer with
// another count while this one was creating them; the caller lists again.
var errPartitionsRaced = errors.New("pusher: another replica created the partition consumers with another count")

// settlePartitions lists the consumers of PUSHGO_OPS, settles the
// partition count (planPartitions, repartition), sets Config.Partitions,
// and makes sure every partition consumer exists and records it. It
// returns the consumers and where a partition consumer created again
// starts (partitionStart).
func (p *Pusher) settlePartitions(ctx context.Context) (map[string]*jetstream.ConsumerInfo, uint64, error) {
	want := p.cfg.Partitions
	began := time.Now()
	var idleSince time.Time // since when the consumers a change replaces have been seen idle, without a break
	pause := func() error { // before listing the consumers again
		select {
		case <-time.After(250 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt == 8 {
			return nil, 0, errors.New("pusher: the partition consumers kept changing while this replica started; is another replica changing the partition count?")
		}
		have, start, err := p.partitionStart(ctx)
		if err != nil {
			return nil, 0, err
		}
		pl := planPartitions(have, want, p.cfg.NewPartitions)
		if pl.from > 0 || len(pl.leftovers) > 0 {
			// A change: only while no replica runs the consumers it
			// replaces or deletes.
			names := pl.leftovers
			if pl.from > 0 {
				names = nil
				for name := range have {
					if _, ok := partitionNumber(name); ok {
						names = append(names, name)
					}
				}
			}
			busy := runningOn(have, names)
			if busy == "" && idleSince.IsZero() {
				idleSince = time.Now()
			}
			if busy != "" {
				idleSince = time.Time{}
			}
			if busy == "" && time.Since(idleSince) < partitionsIdleConfirm {
				// Idle once is not gone: a running replica's pull ends
				// every second and its next one is not waiting yet (longer
				// on a busy machine), and a replica of an idle stream
				// holds no pin. Seen once, a count was changed under a
				// replica that ran it.
				if err := pause(); err != nil {
					return nil, 0, err
				}
				attempt-- // waiting is not a failed attempt
				continue
			}
			if busy != "" {
				// A dead replica's pin lasts the PinnedTTL its consumers
				// were made with, which may be longer than this start's
				// PUSHGO_DELIVERY_FAILOVER (both changed in one restart).
				wait := p.cfg.Failover
				for _, name := range names {
					if info := have[name]; info != nil {
						wait = max(wait, info.Config.PinnedTTL)
					}
				}
				if time.Since(began) > wait+partitionsIdleGrace {
					return nil, 0, p.refuseChange(pl, busy)
				}
				if err := pause(); err != nil {
					return nil, 0, err
				}
				attempt-- // waiting is not a failed attempt
				continue
			}
			if pl.from > 0 {
				err = p.repartition(ctx, have, pl.from, pl.n)
			} else {
				err = p.deleteLeftovers(ctx, pl)
			}
			if err != nil {
				return nil, 0, err
			}
			continue // listed again: the plan is now to run what is there
		}
		p.cfg.Partitions = pl.n
		switch created, err := p.ensurePartitions(ctx, have, start); {
		case errors.Is(err, errPartitionsRaced):
			continue
		case err != nil:
			return nil, 0, err
		case created:
			continue // listed again, with what was created
		}
		return have, start, nil
	}
}

// runningOn names one of the consumers names a replica runs now (it has
// pulls waiting, or a pinned client), or "" when none.
func runningOn(have map[string]*jetstream.ConsumerInfo, names []string) string {
	for _, name := range names {
		info := have[name]
		if info == nil {
			continue
		}
		if info.NumWaiting > 0 {
			return name
		}
		for _, g := range info.PriorityGroups {
			if g.PinnedClientID != "" {
				return name
			}
		}
	}
	return ""
}

// refuseChange is the error of a start refused because a replica still
// runs the partitions its count would replace.
func (p *Pusher) refuseChange(pl partitionPlan, busy string) error {
	if pl.from > 0 {
		return fmt.Errorf("pusher: PUSHGO_DELIVERY_PARTITIONS is %d but the deployment runs %d partitions, and a pusher replica still runs them (%s is pulled or pinned): "+
			"the count changes only while no pusher runs; stop every pusher replica and start them with the new count, or set it to %d or auto to keep the deployment's",
			pl.n, pl.from, busy, pl.from)
	}
	return fmt.Errorf("pusher: PUSHGO_DELIVERY_PARTITIONS is %d but a pusher replica runs partition consumers above it (%s is pulled or pinned): "+
		"stop every pusher replica and start them with one count", pl.n, busy)
}

// ensurePartitions creates every partition consumer of the first
// Config.Partitions that have lacks, consumer 0 first, each starting at
// start (partitionConsumer); it reports whether it created any. The
// requests only create: a consumer another replica created meanwhile is
// kept, and when it records another count the result is
// errPartitionsRaced.
func (p *Pusher) ensurePartitions(ctx context.Context, have map[string]*jetstream.ConsumerInfo, start uint64) (created bool, err error) {
	for i := range p.cfg.Partitions {
		name := fmt.Sprintf("%s%d", PartitionConsumerPrefix, i)
		if have[name] != nil {
			continue
		}
		c, err := p.opsStream.CreateConsumer(ctx, p.partitionConsumer(i, start))
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = p.opsStream.Consumer(ctx, name)
			if err == nil && recordOf(c.CachedInfo()) != p.cfg.Partitions {
				return created, errPartitionsRaced
			}
		}
		if err != nil {
			return created, fmt.Errorf("pusher: create partition consumer %s: %w", name, err)
		}
		created = true
	}
	return created, nil
}

// repartition changes the deployment's partition count from from to n:
// every partition consumer is made again, recording n and starting after
// the lowest ack floor of the partitions 0 to from-1 (of all partition
// consumers when none of those is left), consumer 0 last; the floors'
// record is set to that floor for the partitions below n and purged
// above. Why from the lowest floor, and what it sends again: see the top
// of this file. A start interrupted half-way leaves consumer 0 recording
// from and the consumers made already starting at that floor, so the next
// start's change (or an auto replica running from) loses nothing either.
func (p *Pusher) repartition(ctx context.Context, have map[string]*jetstream.ConsumerInfo, from, n int) error {
	var floor uint64
	found := false
	for _, lower := range []bool{true, false} {
		for name, info := range have {
			if i, ok := partitionNumber(name); ok && (i < from || !lower) && (!found || info.AckFloor.Stream < floor) {
				floor, found = info.AckFloor.Stream, true
			}
		}
		if found {
			break
		}
	}
	p.log.Warn("pusher: PUSHGO_DELIVERY_PARTITIONS differs from the deployment's partition count; changing it: every partition starts again after the lowest floor, "+
		"and its devices may get again what the partitions had in flight when they stopped",
		"PUSHGO_DELIVERY_PARTITIONS", n, "deployment_partitions", from, "from_seq", floor+1)
	p.cfg.Partitions = n
	if err := p.resetFloorRecord(ctx, n, floor); err != nil {
		return err
	}
	for name := range have {
		if i, ok := partitionNumber(name); ok && i > 0 {
			if err := p.deletePartitionConsumer(ctx, name); err != nil {
				return err
			}
		}
	}
	for i := 1; i < n; i++ {
		if _, err := p.opsStream.CreateConsumer(ctx, p.partitionConsumer(i, floor+1)); err != nil {
			return fmt.Errorf("pusher: create partition consumer %d of %d: %w", i, n, err)
		}
	}
	if err := p.deletePartitionConsumer(ctx, PartitionConsumerPrefix+"0"); err != nil {
		return err
	}
	if _, err := p.opsStream.CreateConsumer(ctx, p.partitionConsumer(0, floor+1)); err != nil {
		return fmt.Errorf("pusher: create partition consumer 0 of %d: %w", n, err)
	}
	return nil
}

// resetFloorRecord sets the floors' record of partitions 0 to n-1 to
// floor, and purges its entries of partitions n and above.
func (p *Pusher) resetFloorRecord(ctx context.Context, n int, floor uint64) error {
	kv := p.floors.KV()
	for i := range n {
		if _, err := kv.Put(ctx, strconv.Itoa(i), strconv.AppendUint(nil, floor, 10)); err != nil {
			return fmt.Errorf("pusher: record partition %d's floor: %w", i, err)
		}
	}
	return p.purgeFloors(ctx, n)
}

// purgeFloors purges the floors' record of partitions n and above.
func (p *Pusher) purgeFloors(ctx context.Context, n int) error {
	kv := p.floors.KV()
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("pusher: list the partitions' floors: %w", err)
	}
	var stale []string
	for k := range keys.Keys() {
		if i, err := strconv.Atoi(k); err == nil && i >= n {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		if err := kv.Purge(ctx, k); err != nil {
			return fmt.Errorf("pusher: purge partition %s's floor: %w", k, err)
		}
	}
	return nil
}

// deleteLeftovers deletes the partition consumers pl.leftovers (and their
// floors' record) of a deployment whose consumers record no count.
func (p *Pusher) deleteLeftovers(ctx context.Context, pl partitionPlan) error {
	p.log.Warn("pusher: deleting the partition consumers at or above PUSHGO_DELIVERY_PARTITIONS, left from an earlier partition count",
		"PUSHGO_DELIVERY_PARTITIONS", pl.n, "deployment_partitions", pl.n+len(pl.leftovers), "consumers", pl.leftovers)
	for _, name := range pl.leftovers {
		if err := p.deletePartitionConsumer(ctx, name); err != nil {
			return err
		}
	}
	return p.purgeFloors(ctx, pl.n)
}

// deletePartitionConsumer deletes a partition consumer; one already gone
// is no error.
func (p *Pusher) deletePartitionConsumer(ctx context.Context, name string) error {
	if err := p.opsStream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("pusher: delete partition consumer %s: %w", name, err)
	}
	return nil
}

// checkPartitions stops the pusher (fail) when the deployment's partition
// count, as its consumers record it now, is not the one this replica runs:
// another replica changed it. The error says so; nil when it is the same
// or none is recorded.
func (p *Pusher) checkPartitions(ctx context.Context) error {
	have, _, err := p.partitionStart(ctx)
	if err != nil {
		return err
	}
	return p.checkRecorded(recordedPartitions(have))
}

// checkRecorded stops the pusher when rec, a partition count recorded by
// the deployment's consumers, is not 0 and not this replica's.
func (p *Pusher) checkRecorded(rec int) error {
	if rec == 0 || rec == p.cfg.Partitions {
		return nil
	}
	err := fmt.Errorf("pusher: the deployment's partition count changed to %d while this replica ran %d (PUSHGO_DELIVERY_PARTITIONS set differently on another replica?): stopping; restarted, it takes the new count (auto) or is refused while the other runs",
		rec, p.cfg.Partitions)
	p.fail(err)
	return err
}

// fail stops the pusher for good with err, which Run returns (only the
// first err when several partitions find the same).
func (p *Pusher) fail(err error) {
	if !p.failed.CompareAndSwap(false, true) {
		return
	}
	p.log.Error("pusher: stopping", "err", err)
	p.errMu.Lock()
	p.err = errors.Join(p.err, err)
	p.errMu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
}

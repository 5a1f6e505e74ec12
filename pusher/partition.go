package pusher

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/consume"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Delivery is partitioned by device: a device belongs to partition
// PartitionOf(key, n), and each partition is a durable consumer of
// PUSHGO_OPS ("pushgo-deliver-<i>") in the priority group PriorityGroup
// with the pinned-client policy. Every pusher replica pulls from every
// partition; the broker gives one of them at a time, the pinned one, the
// partition's operations, and pins another when the pinned one stops
// pulling for the consumer's PinnedTTL (Config.Failover). So one replica
// at a time sends to a device, in log order, and a dead replica's
// partitions move to the living ones without a lease of our own.
//
// The operation is the durable unit of delivery. A partition takes
// operations in log order, sends each to its share of the audience, writes
// one summary per (operation, partition) and acknowledges the operations it
// has finished and recorded with AckAll: the consumer's ack floor is the
// partition's checkpoint. A replica that becomes the pinned one resets the
// consumer to that floor (ResetConsumer) and goes on from there, so an
// operation taken by a replica that died is sent again from its start to
// the devices of the partition: at least once per (operation, device), and
// the duplicates a crash can cause are the sends made since the floor last
// moved.
const (
	// PartitionConsumerPrefix names the partition consumers.
	PartitionConsumerPrefix = "pushgo-deliver-"
	// PriorityGroup is the partition consumers' priority group.
	PriorityGroup = "pushers"
	// MaxPartitions bounds Config.Partitions.
	MaxPartitions = 64
	// DefaultPartitions is the partitions of a new deployment whose
	// Config.Partitions and Config.NewPartitions are 0: two replicas share
	// the delivery, and the broker hands each operation to two
	// partitions, not eight (with eight, the write path took 6,496 and
	// 7,497 operations/s on the 2-core bench machine; with two, 10,516
	// and 9,758).
	DefaultPartitions = 2
	// SingleNodePartitions is Config.NewPartitions for a process that
	// runs every service: one pusher, which owns every partition, so a
	// second partition would only have the broker hand each operation
	// over once more (about a tenth of the write path's CPU; see
	// Config.Partitions).
	SingleNodePartitions = 1
)

// PartitionOf is the partition of a device among n.
func PartitionOf(deviceKey string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(deviceKey))
	return int(h.Sum32() % uint32(n))
}

// partition is one delivery partition as this replica runs it.
type partition struct {
	p    *Pusher
	n    int
	name string
	loop *consume.Loop

	// The loop goroutine's state.
	pin       string // pin id of the messages taken; "" before the first
	resetting bool   // reset asked: skip what was delivered before it
	resetSeq  uint64
	resetAt   time.Time // when the last reset was answered
	// resetRecord is the partition count the consumer recorded at the last
	// reset (partitioncount.go); 0: none.
	resetRecord int
	last        uint64 // the last stream sequence taken in this epoch
	// repairing: the broker ignores this epoch's acknowledgements (see
	// checkFloor); nothing new is taken until the floor is repaired.
	repairing    bool
	floorChecked time.Time // the last time checkFloor asked the broker
	// unpinnedAt: the last time repairFloor found the broker pinning
	// another replica (or could not ask it); it asks again no sooner than
	// floorCheckInterval, at a later message.
	unpinnedAt time.Time
	// skipThrough: the operations up to it were finished by this
	// replica's epoch before a repair; the next one passes them unsent.
	skipThrough uint64

	cur     atomic.Pointer[epoch]
	intake  chan intakeItem
	pinned  atomic.Value // string: pin, for the balancer
	pending atomic.Int64 // operations passed to the intake and not yet tracked
	// recorded is the floor last written to the floors' record, and
	// recordedAt when (recordLoop's goroutine, then ackFloors' final write
	// once recordLoop has returned; floors.go).
	recorded   uint64
	recordedAt time.Time
	// releasing: the partition is being handed over; it keeps pulling (so
	// it keeps the pin while it finishes what it took) and takes nothing
	// new (the next owner's reset to the floor delivers it again).
	releasing atomic.Bool
}

// epoch is one run of a partition by this replica: from the reset that
// made it the owner until it lost the pin or stopped. Only the current
// epoch acknowledges.
type epoch struct {
	cancelled atomic.Bool

	mu    sync.Mutex
	ops   []*opRun // taken, not passed by the floor, in sequence order
	floor floor    // the last operation passed that has a message to acknowledge
	// passed is the sequence of the last operation the floor passed, with
	// a message of its own or read from the stream (fillGap) without one.
	passed uint64
	// ackedSeq is the sequence of the last floor acknowledged.
	ackedSeq uint64
}

// floor is the message of the last operation the floor passed (nil
// before any) and its sequence.
type floor struct {
	m   jetstream.Msg
	seq uint64
}

type intakeItem struct {
	m       jetstream.Msg // nil for an operation read from the stream (fillGap)
	subject string        // pushgo.op.<channel_id>.<kind>[.<entity_id>] (streams.ParseOpSubject)
	data    []byte
	seq     uint64
	ep      *epoch
	taken   time.Time
	done    bool // finished before a repair of the floor (skipThrough): passed unsent
}

// consumerConfig is a partition consumer's configuration: it starts at
// DeliverNew (operations appended before the pusher first ran are history),
// or after start when a sibling partition or the old fan-out consumer had
// already acknowledged up to it.
func (p *Pusher) partitionConsumer(i int, start uint64) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       fmt.Sprintf("%s%d", PartitionConsumerPrefix, i),
		Description:   fmt.Sprintf("PushGo pusher: delivery partition %d of %d", i, p.cfg.Partitions),
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		// A message unacknowledged for the failover time is delivered
		// again: to the owner, which skips it (the floor's ack covers it),
		// or, when the owner is gone, to the replica the broker pins next.
		// Without it a dead owner's partition would wait for a new
		// operation (none may come, and none is given while MaxAckPending
		// is full) before anyone is pinned and takes it over.
		AckWait:        p.cfg.Failover,
		MaxAckPending:  p.cfg.PartitionWindow,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      p.cfg.Failover,
		// The deployment's partition count (partitioncount.go).
		Metadata: map[string]string{partitionsMetadataKey: strconv.Itoa(p.cfg.Partitions)},
	}
	if start > 0 {
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	return c
}

// take is the partition loop's handler: it keeps the epoch and the order
// and passes each operation to the intake. It never blocks for long, so
// the loop keeps pulling and keeps its pin.
func (pt *partition) take(ctx context.Context, m jetstream.Msg) consume.Decision {
	if pt.releasing.Load() {
		return consume.Held
	}
	md, err := m.Metadata()
	if err != nil {
		return consume.Held // never acknowledged alone; the floor's ack covers it
	}
	if pin := m.Headers().Get("Nats-Pin-Id"); pin != pt.pin || pt.cur.Load() == nil {
		// Newly pinned (the first time, or again after losing the pin):
		// what the last owner left unacknowledged is redone from the floor,
		// in order, before anything newer.
		pt.takeover(ctx, pin)
		return consume.Held
	}
	if pt.repairing {
		pt.repairFloor(ctx)
		return consume.Held // taken again after the repair's reset
	}
	if pt.resetting {
		// Messages delivered before the reset are skipped; the first one
		// after it has consumer sequence 1 (the reset restarts it).
		if md.Sequence.Consumer != 1 || md.Sequence.Stream < pt.resetSeq {
			pt.resetAgainIfLost(ctx)
			return consume.Held
		}
		pt.resetting = false
	}
	seq := md.Sequence.Stream
	if seq <= pt.last {
		// A redelivery of one already taken: nothing to do again, unless
		// it shows that the broker ignores this epoch's acknowledgements.
		pt.checkFloor(ctx, seq)
		return consume.Held
	}
	ep := pt.cur.Load()
	// The partition consumes every operation of the log, in order. A
	// message can be missing between two delivered (pulled by a pull this
	// replica dropped, or dropped by the client), and comes again only
	// after the ack wait: it is read from the stream now, never skipped,
	// since the floor's AckAll would pass it.
	if seq > pt.last+1 && !pt.fillGap(ctx, ep, seq) {
		return consume.Held // m comes again after the ack wait
	}
	pt.last = seq
	pt.toIntake(ctx, intakeItem{m: m, subject: m.Subject(), data: m.Data(), seq: seq, ep: ep, taken: time.Now(), done: seq <= pt.skipThrough})
	return consume.Held
}

// toIntake passes an operation to the intake.
func (pt *partition) toIntake(ctx context.Context, it intakeItem) {
	pt.pending.Add(1)
	select {
	case pt.intake <- it:
	case <-ctx.Done():
		pt.pending.Add(-1)
	}
}

// fillGap takes the operations after pt.last and before seq from the
// stream itself. It reports false if one could not be read (the broker
// away), or when it has read for fillGapBudget of the failover time: the
// caller takes nothing more until it can, and the next message (or m's
// redelivery) goes on from the last one read. The loop does not pull
// while it reads, and a partition whose owner stops pulling for the
// failover time is pinned to another replica while this one still sends
// what it read (a gap of a few hundred operations read one by one on a
// loaded machine took longer than that: sent twice, by a replica never
// killed, in the crash test).
func (pt *partition) fillGap(ctx context.Context, ep *epoch, seq uint64) bool {
	p := pt.p
	began := time.Now()
	// Each read within the budget too, not only the loop between them: a
	// read may wait 10 s for a stream without a leader (an election, when
	// gaps come), and the loop did not pull meanwhile.
	gctx, cancel := context.WithTimeout(ctx, min(10*time.Second, p.cfg.Failover/fillGapBudget))
	defer cancel()
	info, err := p.opsStream.Info(gctx)
	if err != nil {
		return false
	}
	for s := pt.last + 1; s < seq; s++ {
		if time.Since(began) > p.cfg.Failover/fillGapBudget {
			return false
		}
		if s < info.State.FirstSeq {
			// Aged out of the log before anyone took it: nothing to send.
			s = min(info.State.FirstSeq, seq) - 1
			pt.last = s
			continue
		}
		// Not found only when the leader has nothing at s: a follower that
		// has not stored s yet would otherwise pass over an operation the
		// consumer delivers after it.
		raw, err := p.ops.stream.Msg(gctx, s)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			pt.last = s // deleted from the log
			continue
		case err != nil:
			return false
		}
		p.metrics.gapsFilled.Inc()
		pt.last = s
		pt.toIntake(ctx, intakeItem{subject: raw.Subject, data: raw.Data, seq: s, ep: ep, taken: time.Now(), done: s <= pt.skipThrough})
	}
	return true
}

// fillGapBudget: fillGap reads for at most the failover time over it.
const fillGapBudget = 4

// takeover starts a new epoch: the last one's queued sends are dropped and
// it never acknowledges again, and the consumer is reset to its ack floor.
func (pt *partition) takeover(ctx context.Context, pin string) {
	pt.pin = ""
	pt.pinned.Store("")
	if err := pt.reset(ctx); err != nil {
		pt.cur.Store(nil) // tried again at the next message
		pt.p.log.Warn("pusher: partition reset failed; will retry", "partition", pt.n, "err", err)
		return
	}
	if err := pt.p.checkRecorded(pt.resetRecord); err != nil {
		// Another replica changed the partition count (its consumers were
		// made again: hence this takeover). This epoch takes nothing: its
		// devices are hashed with the old count. The pusher stops.
		pt.releasing.Store(true)
		pt.cur.Load().cancel()
		return
	}
	pt.pin = pin
	// Another replica may have owned the partition since: nothing above
	// the floor is known done.
	pt.repairing, pt.skipThrough, pt.unpinnedAt = false, 0, time.Time{}
	pt.pinned.Store(pin)
	pt.p.metrics.takeovers.Inc()
	pt.p.log.Info("pusher: partition taken", "partition", pt.n, "from_seq", pt.resetSeq)
}

// reset cancels the current epoch (it acknowledges nothing more: an
// acknowledgement of it after the reset would carry a delivery sequence
// the broker takes over the new epoch's), resets the consumer to the
// broker's ack floor and starts a new epoch there, skipping what was
// delivered before the reset. On failure the cancelled epoch stays, and
// the caller tries again at a later message.
//
// The request waits at most half the failover time: the loop does not
// pull while it waits, and the pin lapses after the failover time without
// a pull. A replicated consumer answers a reset once its proposal commits,
// so a consumer leader that lost its quorum (it steps down after 10 s)
// left the request unanswered for its whole 10 s, and the partition lost
// its pin to another replica for nothing. A reset the broker applies after
// the request gave up is harmless: the next delivery's pin and sequence
// checks reset again.
func (pt *partition) reset(ctx context.Context) error {
	if old := pt.cur.Load(); old != nil {
		old.cancel()
	}
	rctx, cancel := context.WithTimeout(ctx, min(10*time.Second, pt.p.cfg.Failover/2))
	defer cancel()
	resp, err := pt.p.js.ResetConsumer(rctx, streams.Ops, pt.name)
	if err != nil {
		return err
	}
	pt.resetting, pt.resetSeq, pt.last, pt.resetAt = true, resp.ResetSeq, resp.ResetSeq-1, time.Now()
	pt.resetRecord = recordOf(resp.ConsumerInfo)
	pt.cur.Store(&epoch{})
	return nil
}

// resetAgainIfLost resets the consumer again when the partition has waited
// longer than the ack wait for the first delivery after its reset. Each
// delivery, a redelivery too, takes the next delivery sequence, so if that
// first one (sequence 1) never reached the loop (a pull the client gave
// up, a subscription the client library restarted), its redelivery comes
// with a higher sequence, like every message after it, and the partition
// would skip them all until another replica took it over. Pre-reset
// deliveries all arrive well within the ack wait. It resets only while the
// broker still pins this replica: one that stalled past the failover time
// is reading stale deliveries, and a reset would restart the delivery
// sequences under the new owner (see floorrepair.go). A failed check or
// reset is tried again at the next delivery.
func (pt *partition) resetAgainIfLost(ctx context.Context) {
	if time.Since(pt.resetAt) <= pt.p.cfg.Failover {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, pt.p.cfg.Failover/fillGapBudget)
	defer cancel()
	if !pt.pinnedTo(ictx, pt.pin) {
		return
	}
	pt.p.log.Warn("pusher: the first delivery after a reset never came; resetting again", "partition", pt.n, "reset_seq", pt.resetSeq)
	if err := pt.reset(ctx); err != nil {
		// The epoch reset cancelled was empty (nothing is taken while
		// resetting); a fresh one takes the first delivery if it comes
		// after all, and the next delivery otherwise tries again.
		pt.cur.Store(&epoch{})
		pt.p.log.Warn("pusher: partition reset failed; will retry", "partition", pt.n, "err", err)
	}
}

// consumerInfo asks the broker for the partition consumer's state (one
// request: the answer of Consumer is the consumer's info).
func (pt *partition) consumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	c, err := pt.p.opsStream.Consumer(ctx, pt.name)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

// pinnedTo reports whether the broker pins pin to the partition now
// (false when it cannot say).
func (pt *partition) pinnedTo(ctx context.Context, pin string) bool {
	info, err := pt.consumerInfo(ctx)
	if err != nil {
		return false
	}
	for _, g := range info.PriorityGroups {
		if g.Group == PriorityGroup && g.PinnedClientID == pin {
			return true
		}
	}
	return false
}

// runIntake expands the partition's operations in order until ctx ends.
func (pt *partition) runIntake(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-pt.intake:
			if it.done {
				pt.pass(it)
			} else {
				pt.expandOne(ctx, it)
			}
			pt.pending.Add(-1)
		}
	}
}

// expandOne expands it, trying again while the views cannot be made
// current, until it is done, its epoch ends or ctx ends.
func (pt *partition) expandOne(ctx context.Context, it intakeItem) {
	for !it.ep.cancelled.Load() {
		err := pt.expand(ctx, it)
		if err == nil || ctx.Err() != nil {
			return
		}
		// The views could not be made current (broker away): the
		// operation waits, and so does everything after it.
		pt.p.log.Warn("pusher: expand failed; will retry", "partition", pt.n, "seq", it.seq, "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
	}
}

// expand finds the partition's share of the operation's audience and
// schedules its sends. The channel is read from the operation's subject,
// so an operation this partition sends nothing (no subscriber, or none of
// its devices) is passed without decoding it and without a broker write:
// only a partition with a share writes a summary.
func (pt *partition) expand(ctx context.Context, it intakeItem) error {
	p := pt.p
	channelID, _, _, ok := streams.ParseOpSubject(it.subject)
	if !ok {
		// Not an operation's subject (ingest writes no other): its channel
		// is the envelope's.
		env, err := p.ops.decode(it.seq, it.data)
		if err != nil {
			pt.passMalformed(it, err)
			return nil
		}
		channelID = env.ChannelID
	}
	// Every subscription and route written before the operation was
	// appended is in memory once a sync begun after it was taken is done.
	if err := p.fresh.after(ctx, it.taken); err != nil {
		return err
	}
	all := p.audience.At(channelID, it.seq)
	share := make([]string, 0, len(all)/p.cfg.Partitions+1)
	for _, d := range all {
		if PartitionOf(d, p.cfg.Partitions) == pt.n {
			share = append(share, d)
		}
	}
	if len(share) == 0 {
		// Nobody of this partition is pushed: nothing to record either.
		pt.pass(it)
		return nil
	}
	env, err := p.ops.decode(it.seq, it.data)
	if err != nil {
		pt.passMalformed(it, err)
		return nil
	}
	op := &opRun{pt: pt, ep: it.ep, m: it.m, seq: it.seq, env: env, tmpl: p.ops.templates(it.seq), audience: len(all), left: len(share), taken: it.taken}
	pt.track(op)
	if err := p.window.acquire(ctx, len(share)); err != nil {
		return nil // stopping: the operation stays unacknowledged
	}
	p.metrics.tasks.Add(float64(len(share)))
	p.metrics.fanoutSeconds.Observe(time.Since(it.taken).Seconds())
	p.sched.schedule(op, share)
	return nil
}

// passMalformed passes an operation that can never be delivered (its
// envelope does not decode).
func (pt *partition) passMalformed(it intakeItem, err error) {
	pt.p.log.Error("pusher: malformed operation", "seq", it.seq, "err", err)
	pt.pass(it)
}

// pass lets the floor pass an operation this partition sends nothing. When
// every operation taken before it has been passed (the usual case: it is
// one of many that nobody of this partition is pushed), the floor moves to
// it at once, with no record of it kept; otherwise it waits behind them,
// recorded as done. Called by the intake only, which takes operations in
// sequence order, so nothing is taken between the check and the move.
// The first of ep.ops is never done (recorded passes every done one at the
// head), so a done one behind it is what track and recorded would leave.
func (pt *partition) pass(it intakeItem) {
	ep := it.ep
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if len(ep.ops) > 0 {
		ep.ops = append(ep.ops, &opRun{pt: pt, ep: ep, m: it.m, seq: it.seq, isDone: true})
		return
	}
	if it.m != nil { // AckAll of a later one covers one read from the stream
		ep.floor = floor{m: it.m, seq: it.seq}
		signal(pt.p.floorMoved)
	}
	ep.passed = it.seq
}

// track adds op to its epoch's operations awaiting the floor.
func (pt *partition) track(op *opRun) {
	op.ep.mu.Lock()
	op.ep.ops = append(op.ep.ops, op)
	op.ep.mu.Unlock()
}

// ackFloor acknowledges (AckAll) the last operation the floor passed, if
// it moved since the last call: one acknowledgement covers every
// operation finished since.
// The acknowledgement is sent under ep.mu, which cancel takes: an epoch
// cancelled before a reset sends none after it (one would carry a delivery
// sequence of before the reset, which the broker takes over the new
// epoch's: floorrepair.go).
//
// It returns the floor this replica's epoch has acknowledged (0: none, or
// the epoch ended), for the floors' record (floors.go).
func (pt *partition) ackFloor() uint64 {
	ep := pt.cur.Load()
	if ep == nil {
		return 0
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.cancelled.Load() {
		return 0
	}
	f := ep.floor
	if f.m == nil || f.seq <= ep.ackedSeq {
		return ep.ackedSeq
	}
	ep.ackedSeq = f.seq
	pt.loop.Settle(f.m, consume.Ack)
	return f.seq
}

// ackFloorSync acknowledges the floor, as ackFloor does (again, when
// ackFloor has), waits for the broker to have processed it (Loop.AckSync:
// the broker processes a consumer's acknowledgements in order, on a queue
// of its own, so every one sent before it too), and checks that the
// broker's ack floor has reached it. A hand-over unpins only after it: the
// next owner resets the consumer to the broker's ack floor, and an
// acknowledgement still queued then would leave that floor below what this
// replica sent, to be sent again. It reports false when the broker did not
// confirm in time, its floor is behind (an epoch whose acknowledgements it
// ignores: see checkFloor), or the epoch has ended.
func (pt *partition) ackFloorSync(ctx context.Context) bool {
	ep := pt.cur.Load()
	if ep == nil {
		return true // nothing taken, nothing acknowledged
	}
	ep.mu.Lock() // held through the round trip: cancel waits for it (a reset's acknowledgement rule)
	defer ep.mu.Unlock()
	if ep.cancelled.Load() {
		return false
	}
	f := ep.floor
	if f.m == nil {
		// Nothing to acknowledge with: this epoch passed no operation that
		// came as a message (what it read from the stream alone, fillGap,
		// the next owner sends again, as it always has).
		return true
	}
	actx, cancel := context.WithTimeout(ctx, ackSyncTimeout)
	defer cancel()
	if err := pt.loop.AckSync(actx, f.m); err != nil {
		pt.p.log.Warn("pusher: the floor's acknowledgement was not confirmed", "partition", pt.n, "seq", f.seq, "err", err)
		return false
	}
	ep.ackedSeq = max(ep.ackedSeq, f.seq)
	info, err := pt.consumerInfo(actx)
	if err != nil || info.AckFloor.Stream < f.seq {
		pt.p.log.Warn("pusher: the broker's ack floor is behind the partition's", "partition", pt.n, "seq", f.seq, "err", err)
		return false
	}
	return true
}

// ackSyncTimeout bounds ackFloorSync's wait for the broker.
const ackSyncTimeout = 2 * time.Second

// cancel ends the epoch: it acknowledges nothing more, and an
// acknowledgement under way has been sent when cancel returns.
func (ep *epoch) cancel() {
	ep.mu.Lock()
	ep.cancelled.Store(true)
	ep.mu.Unlock()
}

// opRun is one operation being delivered to one partition's share of its
// audience.
type opRun struct {
	pt       *partition
	ep       *epoch
	m        jetstream.Msg
	seq      uint64
	env      *ops.Envelope
	audience int
	taken    time.Time
	tmpl     *templates // the notification built once for every device (opCache.templates)

	// The scheduler's (under its lock).
	entity    string // entityKey, once scheduled
	ready     []*devQueue
	readyHead int
	inRing    bool

	mu        sync.Mutex
	left      int // sends not ended
	sent      int
	failed    int
	retrying  int
	failures  []delivery.Failure
	retried   []string
	abandoned bool // a send was cut short: the next owner redoes the operation

	isDone bool // recorded: the floor may pass it (under ep.mu)
}

// maxFailuresListed bounds the failures a summary lists one by one (its
// counts hold them all), so a summary stays far below a message's size.
const maxFailuresListed = 64

// ended records one delivery's end; the last one finishes the operation.
func (op *opRun) ended(o delivery.Outcome, provider, reason, device string) {
	op.mu.Lock()
	switch {
	case o == delivery.Sent:
		op.sent++
	case o == handedToRetry:
		op.retrying++
		if len(op.retried) < maxFailuresListed {
			op.retried = append(op.retried, device)
		}
	default:
		op.failed++
		if len(op.failures) < maxFailuresListed {
			op.failures = append(op.failures, delivery.Failure{DeviceKey: device, Provider: provider, Outcome: o, Reason: reason})
		}
	}
	op.left--
	last := op.left == 0
	op.mu.Unlock()
	if last {
		op.finish()
	}
}

// abandon records a send cut short by the pusher stopping: the operation
// is never recorded by this replica.
func (op *opRun) abandon() {
	op.mu.Lock()
	op.abandoned = true
	op.left--
	op.mu.Unlock()
}

// finish writes the partition's summary (its retry tasks are stored by
// now) and marks the operation recorded once the summary is.
func (op *opRun) finish() {
	op.mu.Lock()
	if op.abandoned || op.ep.cancelled.Load() {
		op.mu.Unlock()
		return
	}
	s := delivery.Summary{
		ChannelID: op.env.ChannelID, OpID: op.env.OpID, Seq: op.seq, EntityType: op.env.Op.Kind(), EntityID: op.env.EntityID,
		AcceptedAt: op.env.AcceptedAt, At: op.pt.p.now().UnixMilli(), Partition: op.pt.n, Audience: op.audience,
		Sent: op.sent, Failed: op.failed, Retrying: op.retrying, Failures: op.failures, Retried: op.retried,
	}
	op.mu.Unlock()
	op.pt.p.summaries.add(s, op.recorded)
}

// recorded lets the floor pass op, and every recorded one after it.
func (op *opRun) recorded() {
	ep := op.ep
	ep.mu.Lock()
	op.isDone = true
	n := 0
	for n < len(ep.ops) && ep.ops[n].isDone {
		r := ep.ops[n]
		if r.m != nil { // AckAll of a later one covers one read from the stream
			ep.floor = floor{m: r.m, seq: r.seq}
			signal(op.pt.p.floorMoved)
		}
		ep.passed = r.seq
		n++
	}
	if n > 0 {
		clear(ep.ops[:n])
		ep.ops = ep.ops[n:]
	}
	ep.mu.Unlock()
}

// decode returns the operation in data, remembering it by sequence for the
// retry queue (which reads it by sequence).
func (c *opCache) decode(seq uint64, data []byte) (*ops.Envelope, error) {
	if env, ok := c.peek(seq); ok {
		return env, nil
	}
	env := &ops.Envelope{}
	if err := json.Unmarshal(data, env); err != nil {
		return nil, err
	}
	c.put(seq, env)
	return env, nil
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// The fold of PUSHGO_OPS runs on every core. Entities are independent:
// an operation changes its entity's snapshot and indexes, adds its own
// history item (keyed by its sequence) and its op_id index key. So the
// operations are dealt to partitions by their subject, which names their
// entity (streams.OpSubject), or by their sequence on a channel's messages
// subject, where every operation is a message of its own: each partition
// folds its entities' operations in log order into a batch of its own,
// reading their snapshots through a cache of its own, with no lock.
//
// The log is cut into groups of consecutive sequences. At a cut every
// partition seals its batch for the group; the committer writes the sealed
// parts of one group, the op_id index records in log order and the applied
// sequence (the group's last) in one atomic Pebble batch, one group after
// the other. So the applied sequence is one watermark that is exact across
// a crash: the store holds every effect of every operation up to it and
// none of a later one, as a sequential fold commits it, and the store's
// contents do not depend on the partitions (tested against the sequential
// fold, Fold). The partitions fold the next group while one commits.
// Commits are not fsynced (the log is the source of truth): a crash may
// lose the last groups committed, never a part of one, and the fold
// resumes after the watermark that was written.
//
//	dispatcher (consume) ──► partition 0 … n-1 ──sealed parts──► committer ──► Pebble
//	  reads the log, deals     fold, seal at       one batch per group,
//	  by subject (messages      each cut           the applied sequence in it
//	  subject: by sequence),
//	  cuts groups

// foldBuffer is the fold's consumer buffer: what it pulls from the broker
// at once is twice this (make bench's raw consume pulls the same).
const foldBuffer = 1000

// partitionQueue bounds the operations dealt to a partition and not yet
// folded; groupsAhead the groups cut and not yet committed, beyond the one
// committing. Together they bound the memory of a fold far behind.
const (
	partitionQueue = 64 // of partMsg: up to 4,096 operations
	groupsAhead    = 2
)

// foldItem is one log entry dealt to a partition.
type foldItem struct {
	seq     uint64
	subject string
	data    []byte
}

// partMsg is what a partition receives: entries, then possibly a cut
// (group > 0) after them.
type partMsg struct {
	items []foldItem
	group uint64
}

// dealt is how many entries the dispatcher hands a partition at once (one
// channel operation for them all), unless the fold has caught up or a
// group is cut.
const dealt = 64

// sealedPart is a partition's part of a group.
type sealedPart struct {
	batch *store.Batch
	dead  int // dead letters in it
}

// group is a cut the committer commits.
type group struct {
	no      uint64 // 1, 2, … in log order
	last    uint64 // its last sequence: the applied sequence once committed
	pending uint64 // operations in the stream after it, as of its last
}

// subjectSeed spreads the subjects over the partitions.
var subjectSeed = maphash.MakeSeed()

// partitionOf is the partition of the entity a subject names. A channel's
// messages subject (streams.MessagesSubject) holds many messages, each its
// only operation: they are dealt by sequence, so a channel's messages are
// folded on every core.
func partitionOf(subject string, seq uint64, n int) int {
	if _, kind, entityID, _ := streams.ParseOpSubject(subject); kind == ops.KindMessage && entityID == "" {
		return int(seq % uint64(n))
	}
	return int(maphash.String(subjectSeed, subject) % uint64(n))
}

// groupFold is one run of the partitioned fold: its goroutines live until
// the consumer's handler returns (run).
type groupFold struct {
	p     *Projector
	st    *store.Store
	parts []chan partMsg
	out   []chan sealedPart
	cut   chan group
	// committed is the last group committed; the partitions' caches evict
	// only snapshots of committed groups.
	committed atomic.Uint64
	// wake tells the dispatcher that a group committed.
	wake chan struct{}
	// spare holds the item slices the partitions have folded, for the
	// dispatcher to deal into again: under write load it hands a
	// partition one or two items at a time, and a fresh slice of dealt
	// items for each was a twentieth of the gateway's allocation.
	spare chan []foldItem

	ctx    context.Context // ends when the fold fails or has stopped
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

// consumeOps folds PUSHGO_OPS messages from msgs with the partitioned
// fold, from after applied. It returns nil when ctx ends, after committing
// what was received; an error when the fold cannot go on (the consumer
// restarts from the applied sequence, which covers everything committed).
func (p *Projector) consumeOps(ctx context.Context, msgs <-chan jetstream.Msg, applied uint64) error {
	p.storeMu.RLock()
	st := p.store
	p.storeMu.RUnlock()
	n := p.cfg.FoldPartitions
	g := &groupFold{p: p, st: st, parts: make([]chan partMsg, n), out: make([]chan sealedPart, n),
		cut: make(chan group, groupsAhead), wake: make(chan struct{}, 1), spare: make(chan []foldItem, n*(partitionQueue+2))}
	g.ctx, g.cancel = context.WithCancelCause(context.Background())
	for i := range n {
		g.parts[i] = make(chan partMsg, partitionQueue)
		g.out[i] = make(chan sealedPart, groupsAhead+1)
		cache := store.NewCache(max(p.cfg.CachedSnapshots/n, 1000), p.cfg.CachedSnapshotBytes/int64(n), &g.committed)
		g.wg.Go(func() { g.partition(g.parts[i], g.out[i], cache) })
	}
	g.wg.Go(g.commit)
	err := g.dispatch(ctx, msgs, applied)
	g.cancel(errStopped)
	g.wg.Wait()
	return err
}

// errStopped ends the fold's goroutines once the dispatcher returned.
var errStopped = errors.New("fold stopped")

// failed reports why the fold's goroutines stopped early, or nil.
func (g *groupFold) failed() error {
	if err := context.Cause(g.ctx); err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return nil
}

// dispatch deals the messages to the partitions and cuts groups: when a
// group holds BatchSize operations; or, when no group is committing, as
// soon as a read waits for an operation not yet cut (WaitApplied) or the
// open group's oldest operation has waited MaxBatchDelay. Behind by a group or
// more (a rebuild, a backlog), the groups are cut full, or when idle after
// CatchUpDelay. Each group encodes the snapshots it touched, commits a
// Pebble batch and wakes the fold's goroutines: cutting one whenever the
// delivery channel ran dry made 2.6 operations a group under the bench's
// write load and 91 in a rebuild.
func (g *groupFold) dispatch(ctx context.Context, msgs <-chan jetstream.Msg, applied uint64) error {
	p := g.p
	last := applied // last dealt
	p.dealt.Store(applied)
	var (
		groupNo   uint64    // last group cut
		lastCut   = applied // the last sequence of the last group cut
		open      int       // operations dealt since the last cut
		opened    time.Time // when the open group got its first
		committed uint64    // the last group known committed
		pending   uint64
		held      = make([][]foldItem, len(g.parts)) // dealt, not yet handed over
	)
	for i := range held {
		held[i] = g.items()
	}
	// hand gives partition i what it holds, and the cut of group (when > 0).
	hand := func(i int, group uint64) error {
		if len(held[i]) == 0 && group == 0 {
			return nil
		}
		select {
		case g.parts[i] <- partMsg{items: held[i], group: group}:
			held[i] = g.items()
			return nil
		case <-g.ctx.Done():
			return g.failed()
		}
	}
	handAll := func() error {
		for i := range held {
			if err := hand(i, 0); err != nil {
				return err
			}
		}
		return nil
	}
	cutGroup := func() error {
		if open == 0 {
			return nil
		}
		groupNo++
		lastCut = last
		for i := range g.parts {
			if err := hand(i, groupNo); err != nil {
				return err
			}
		}
		select {
		case g.cut <- group{no: groupNo, last: last, pending: pending}:
		case <-g.ctx.Done():
			return g.failed()
		}
		open = 0
		return nil
	}
	// drain cuts what was dealt and waits until it is committed.
	drain := func() error {
		if err := cutGroup(); err != nil {
			return err
		}
		for g.committed.Load() < groupNo {
			select {
			case <-g.wake:
			case <-g.ctx.Done():
				if err := g.failed(); err != nil {
					return err
				}
				if g.committed.Load() < groupNo {
					return errors.New("fold stopped before its last group committed")
				}
			}
		}
		return nil
	}
	idle := func() bool { return committed >= groupNo }
	// deadline wakes the loop at an open group's delay.
	deadline := time.NewTimer(time.Hour)
	deadline.Stop()
	defer deadline.Stop()
	var (
		armed    bool
		armedFor time.Time
	)
	// settle cuts the open group or hands over what was dealt, as the
	// state asks; it runs after every event (a message, folded or
	// delivered again, or a commit), so an open group never waits for an
	// event that will not come.
	settle := func() error {
		committed = g.committed.Load()
		switch {
		case open == 0:
			return nil
		case open >= p.cfg.BatchSize:
			return cutGroup()
		}
		delay := p.cfg.MaxBatchDelay
		if pending >= uint64(p.cfg.BatchSize) { // catching up
			delay = p.cfg.CatchUpDelay
		} else if idle() && p.awaited.Load() > lastCut {
			// A read waits for an operation not yet cut: cut now. (Once
			// its operation is cut, it no longer hurries later groups.)
			return cutGroup()
		}
		if idle() && time.Since(opened) >= delay {
			return cutGroup()
		}
		if len(msgs) == 0 {
			// Fold what was dealt now, and wake at the group's deadline
			// even if no message, commit or read comes before it (a
			// commit under way wakes the loop when it ends).
			if due := opened.Add(delay); idle() && (!armed || due.Before(armedFor)) {
				deadline.Reset(time.Until(due))
				armed, armedFor = true, due
			}
			return handAll()
		}
		return nil
	}
	first := true
	// take deals one message.
	take := func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("%s: message metadata: %w", streams.Ops, err)
		}
		seq := md.Sequence.Stream
		pending = md.NumPending
		p.pending.Store(pending)
		if first {
			p.progress.started(last, pending+1)
			first = false
		}
		if seq <= last {
			return nil // delivered again after a consumer reset: folded already
		}
		if last > 0 && seq != last+1 && p.streamHolds(ctx, streams.Ops, last+1) {
			if err := drain(); err != nil {
				return err
			}
			return fmt.Errorf("%s: after %d: %w", streams.Ops, last, errGap)
		}
		subject := m.Subject()
		i := partitionOf(subject, seq, len(g.parts))
		held[i] = append(held[i], foldItem{seq: seq, subject: subject, data: m.Data()})
		if len(held[i]) >= dealt {
			if err := hand(i, 0); err != nil {
				return err
			}
		}
		if open == 0 {
			opened = time.Now()
		}
		open++
		last = seq
		p.dealt.Store(seq)
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			// Commit what was received; a failure only means a later
			// start folds it again.
			_ = drain()
			return nil
		case <-g.ctx.Done():
			return g.failed()
		case <-g.wake:
		case <-deadline.C:
			armed = false
		case <-p.hurry:
		case <-p.vanished:
			// A read waited its whole read wait for an operation the fold
			// never received: when the log holds nothing at all, every
			// operation up to its last sequence left it (its retention, a
			// purge) before the fold got there, and nothing will ever come
			// to move the applied sequence there. Idle, with nothing
			// received, the fold is past them all. (The committer
			// publishes a group's last sequence after marking it
			// committed: only once it has is the applied sequence this
			// loop's to move.)
			if open == 0 && idle() && len(msgs) == 0 && p.applied.Load() == last {
				if tail := p.vanishedTail(ctx, last); tail > last {
					p.log.Info("projector: the log holds no operation after the last folded; moving past the ones that left it",
						"last_folded", last, "log_last", tail)
					last, lastCut = tail, tail
					p.committed(tail) // before dealt: the lag (dealt - applied) never counts the vanished ones
					p.dealt.Store(tail)
				}
			}
		case m := <-msgs:
			if err := take(m); err != nil {
				return err
			}
			// Take what else has come, up to a handful, before looking at
			// the rest of the select: in a rebuild the channel is never
			// empty, and a select of six cases per operation was 3% of
			// the fold's CPU. settle still runs before a group would
			// exceed BatchSize.
		more:
			for n := 1; n < dealt && open < p.cfg.BatchSize; n++ {
				select {
				case m := <-msgs:
					if err := take(m); err != nil {
						return err
					}
				default:
					break more
				}
			}
		}
		if err := settle(); err != nil {
			return err
		}
	}
}

// partition folds the operations of its entities: each into its batch;
// at a cut it seals the batch as its part of the group and starts another.
func (g *groupFold) partition(in <-chan partMsg, out chan<- sealedPart, cache *store.Cache) {
	batch := g.st.NewBatchWith(cache)
	dead := 0
	defer func() { batch.Discard() }()
	for {
		var m partMsg
		select {
		case m = <-in:
		case <-g.ctx.Done():
			return
		}
		for _, it := range m.items {
			err := applyEntry(batch, it)
			var bad *entryError
			switch {
			case err == nil:
			case errors.As(err, &bad):
				// Never stop on one bad entry: record it and go on.
				g.p.setAside(batch, streams.Ops, it.seq, it.subject, bad)
				dead++
			default:
				if storeBroken(err) {
					g.p.requestRebuild(err)
				}
				g.cancel(fmt.Errorf("%s: %w", streams.Ops, err))
				return
			}
		}
		g.recycle(m.items)
		if m.group > 0 {
			batch.Seal(m.group)
			select {
			case out <- sealedPart{batch: batch, dead: dead}:
			case <-g.ctx.Done():
				return
			}
			batch, dead = g.st.NewBatchWith(cache), 0
		}
	}
}

// items is an empty slice to deal a partition's items into: a spare one
// when a partition has given one back.
func (g *groupFold) items() []foldItem {
	select {
	case s := <-g.spare:
		return s
	default:
		return make([]foldItem, 0, dealt)
	}
}

// recycle gives back the slice of items a partition has folded (each
// item was passed by value, none is referred to), emptied so that it
// holds no entry's bytes.
func (g *groupFold) recycle(s []foldItem) {
	if cap(s) == 0 {
		return
	}
	clear(s)
	select {
	case g.spare <- s[:0]:
	default:
	}
}

// commit commits the groups in order: the parts of each partition, the
// applied sequence with them.
func (g *groupFold) commit() {
	p := g.p
	parts := make([]*store.Batch, len(g.out))
	for {
		var gr group
		select {
		case gr = <-g.cut:
		case <-g.ctx.Done():
			return
		}
		dead := 0
		for i, ch := range g.out {
			select {
			case sp := <-ch:
				parts[i], dead = sp.batch, dead+sp.dead
			case <-g.ctx.Done():
				return
			}
		}
		if err := commitGroupSafely(g.st, parts, gr.last); err != nil {
			if storeBroken(err) {
				p.requestRebuild(err)
			}
			g.cancel(err)
			return
		}
		g.committed.Store(gr.no)
		p.groups.Add(1)
		p.committed(gr.last)
		if dead > 0 {
			p.heal.setAside[0].Add(uint64(dead))
			p.heal.held[0].Add(int64(dead))
		}
		p.progress.committed(gr.last, gr.pending)
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// commitGroupSafely commits a group, turning the store's fatal report (a
// panic, see store.FatalError) into an error.
func commitGroupSafely(st *store.Store, parts []*store.Batch, last uint64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*store.FatalError)
			if !ok {
				panic(r)
			}
			err = f
		}
	}()
	return st.CommitGroup(parts, last)
}

// vanishedTail is the log's last sequence when it is above last and the
// log holds no operation at all (each one left it, by its retention or a
// purge); else 0.
func (p *Projector) vanishedTail(ctx context.Context, last uint64) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := p.js.Stream(ctx, streams.Ops)
	if err != nil {
		return 0
	}
	if st := s.CachedInfo().State; st.Msgs == 0 && st.LastSeq > last {
		return st.LastSeq
	}
	return 0
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/consume"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// The projection is disposable: everything in it is folded from the log.
// So the projector heals itself instead of stopping:
//
//   - a log entry it cannot fold is set aside as a dead letter (foldloop.go)
//     and the fold goes on;
//   - a corrupt projection (a checksum that does not match, a value that
//     does not decode), found at start, by a read, by the fold or by Pebble
//     in the background, is folded again from the log (onto the live
//     entities of it whose operations have all left the log, carried
//     over when it can still be read: openStore);
//   - so is one whose store failed (a write the disk refused), or whose
//     fold keeps failing;
//   - at start, a projection holding a dead letter this version can fold
//     (an operation of a newer format, folded after an upgrade) is folded
//     again, so that no valid operation stays skipped.
//
// The projector stops for good only when the projection cannot be opened
// or written even after a rebuild, or keeps breaking (maxRebuilds within
// rebuildWindow): a disk the process cannot use.

// maxRebuilds automatic rebuilds within rebuildWindow end the projector:
// a projection that keeps breaking is a disk to look at, not a log to fold
// again.
const (
	maxRebuilds   = 3
	rebuildWindow = 10 * time.Minute
)

// deadLetterRecheck bounds the dead letters read again from the log at
// start (the most recent of each stream).
const deadLetterRecheck = 1000

// foldedStreams are the streams the projector folds, in the order of
// healState's per-stream counters.
var foldedStreams = [...]string{streams.Ops, streams.Receipts}

func streamIndex(stream string) int {
	if stream == streams.Receipts {
		return 1
	}
	return 0
}

// healState is the projector's self-healing state.
type healState struct {
	// rebuildReq carries why the projection must be rebuilt (a corrupt
	// file found by a read or in the background); capacity 1.
	rebuildReq chan error
	// rebuilding is set while a rebuild is under way (Ready reports it).
	rebuilding atomic.Pointer[error]
	// rebuilds counts the automatic rebuilds since start.
	rebuilds atomic.Uint64
	// held is the number of dead letters of each stream in the projection;
	// setAside counts those this process's folds set aside.
	held     [len(foldedStreams)]atomic.Int64
	setAside [len(foldedStreams)]atomic.Uint64
}

func newHealState() healState { return healState{rebuildReq: make(chan error, 1)} }

// requestRebuild asks the supervisor to rebuild the projection; it never
// blocks (a request already pending covers this one).
func (p *Projector) requestRebuild(err error) {
	select {
	case p.heal.rebuildReq <- err:
	default:
	}
}

// storeBroken reports whether err means the projection cannot be used any
// more: corrupt, or its store failed fatally.
func storeBroken(err error) bool {
	var f *store.FatalError
	return store.IsCorruption(err) || errors.As(err, &f)
}

// readFailed is the answer to a read the store failed: a corrupt
// projection answers 503 read_unavailable (retry: it is being rebuilt) and
// starts the rebuild; anything else is an internal error.
func (p *Projector) readFailed(err error) *apierr.Error {
	if storeBroken(err) {
		p.log.Error("projector: a read found the projection broken; rebuilding it from the log", "err", err)
		p.requestRebuild(err)
		return &apierr.Error{Code: apierr.ReadUnavailable, Detail: "the projection is being rebuilt from the log; retry later", RetryAfter: 1}
	}
	p.log.Error("projector: store read failed", "err", err)
	return apierr.New(apierr.InternalError)
}

// serveReqSafely is serveReq, but a read that panics never takes the
// process down: Pebble's fatal report (a store it cannot go on with)
// answers 503 read_unavailable and has the projection rebuilt; any other
// panic is an internal error of that read.
func (p *Projector) serveReqSafely(req *reads.Request) (resp reads.Response) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if f, ok := r.(*store.FatalError); ok {
			p.log.Error("projector: the store failed under a read; rebuilding the projection from the log", "err", f)
			p.requestRebuild(f)
			resp = reads.Response{ErrorCode: apierr.ReadUnavailable, Error: "the projection is being rebuilt from the log; retry later"}
		} else {
			p.log.Error("projector: a read panicked", "panic", r)
			resp = reads.Response{ErrorCode: apierr.InternalError, Error: "internal error"}
		}
	}()
	return p.serveReq(req)
}

// fail stops the projector for good with err and wakes the reads waiting
// on the fold (they fail now).
func (p *Projector) fail(err error) {
	p.log.Error("projector: stopped", "err", err)
	p.failed.CompareAndSwap(nil, &err)
	p.committed(p.applied.Load())
}

// supervise runs the folds and the pruning until ctx ends, rebuilding the
// projection whenever it breaks (see the top of this file). It returns
// when ctx ends or the projector stops for good (p.Err).
func (p *Projector) supervise(ctx context.Context) {
	var recent []time.Time
	for {
		err := p.runFolds(ctx)
		if ctx.Err() != nil {
			return
		}
		if store.DiskFull(err) {
			// Not a broken projection: a full disk. Rebuilt, it lost its
			// live entities whose operations have all left the log (the
			// disk had no room for the new copy beside it, so it was
			// deleted), and the new one failed the same way. Kept, it is
			// sound: the process ends, and started again with room it goes
			// on from the last operation it committed.
			p.fail(fmt.Errorf("%w: the projection is kept as it is and nothing is lost; free room under %s and start the process again", err, p.cfg.Dir))
			return
		}
		now := time.Now()
		for len(recent) > 0 && now.Sub(recent[0]) > rebuildWindow {
			recent = recent[1:]
		}
		if len(recent) >= maxRebuilds {
			p.fail(fmt.Errorf("%w (the projection broke again after %d rebuilds within %s: look at its disk)", err, len(recent), rebuildWindow))
			return
		}
		recent = append(recent, now)
		if err := p.rebuild(ctx, err); err != nil {
			if ctx.Err() == nil {
				p.fail(err)
			}
			return
		}
	}
}

// runFolds runs both folds and the pruning until ctx ends (nil), a fold
// fails for good, or a rebuild is requested (why).
func (p *Projector) runFolds(ctx context.Context) error {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pctx, pcancel := context.WithTimeout(gctx, 10*time.Second) // a broker away does not hold the folds back
	p.pruneOnce(pctx, false)
	pcancel()
	errs := make(chan error, len(foldedStreams))
	var wg sync.WaitGroup
	wg.Go(func() { p.prune(gctx) })
	for _, f := range []struct {
		name string
		loop *consume.Ordered
	}{{"fold of " + streams.Ops, p.opsFold}, {"fold of " + streams.Receipts, p.receiptsFold}} {
		wg.Go(func() {
			if err := f.loop.Run(gctx); err != nil {
				p.log.Error("projector: "+f.name+" failed", "err", err)
				errs <- fmt.Errorf("%s: %w", f.name, err)
			}
		})
	}
	var why error
	select {
	case <-ctx.Done():
	case why = <-errs:
	case why = <-p.heal.rebuildReq:
	}
	cancel()
	wg.Wait()
	return why
}

// rebuild replaces the projection with a new one, holding only the live
// entities whose operations have all left the log (carried over from the
// old one: openStore), and lets the folds fold it again from the first
// retained entry of each stream: reads stop
// while the store is swapped (a read answers read_unavailable, or another
// replica answers), then wait for the fold as after any start. Opening the
// new store is tried maxFoldRetries times.
func (p *Projector) rebuild(ctx context.Context, why error) error {
	p.heal.rebuilding.Store(&why)
	defer p.heal.rebuilding.Store(nil)
	p.heal.rebuilds.Add(1)
	p.log.Error("projector: REBUILDING THE PROJECTION from the log: it is corrupt, its store failed, or its fold keeps failing",
		"reason", why, "dir", p.cfg.Dir, "applied", p.applied.Load())
	p.stopServing()
	p.storeMu.Lock()
	old := p.store
	p.store = nil
	p.storeMu.Unlock()
	if old != nil {
		if err := discard(old); err != nil {
			p.log.Warn("projector: the broken projection did not close; abandoned", "err", err)
		}
	}
	p.applied.Store(0)
	p.receiptsApplied.Store(0)
	p.pending.Store(0)
	p.receiptsPending.Store(0)
	var err error
	for attempt := 1; ; attempt++ {
		// The logs as they are now: the fold may have failed because one
		// was created again, and the new projection records the one it
		// folds (sameLogs).
		if err = p.readLogs(ctx); err == nil {
			err = p.openStore(ctx, true)
		}
		if err == nil {
			break
		}
		if store.DiskFull(err) {
			return err // no room: another try finds none either (noRoomBeside)
		}
		if attempt >= maxFoldRetries {
			return fmt.Errorf("rebuild the projection: %w (tried %d times)", err, attempt)
		}
		p.log.Warn("projector: rebuild failed; trying again", "attempt", attempt, "err", err)
		select {
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select { // a request made while this one was served is served by it
	case <-p.heal.rebuildReq:
	default:
	}
	p.committed(0)
	p.primeProgress()
	p.log.Warn("projector: projection replaced; folding it again from the log")
	return p.startServing()
}

// discard closes a store about to be deleted, giving up after a while (a
// store whose disk failed may never close).
func discard(s *store.Store) error {
	done := make(chan error, 1)
	go func() { done <- s.Discard() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("close did not return within 10s")
	}
}

// openStore opens the projection as p.store and loads the positions it
// holds; fresh folds it again from the log. A projection that is corrupt,
// of an older layout, of another log, or holding a dead letter this
// version can fold is folded again (once: a new store that fails again
// is an error).
//
// A projection folded again is not deleted first: it is set aside
// (asideDir), and the live entities of it whose operations have all left
// the log are carried into the new store (carryOver) before the fold
// begins; then it is deleted. Folded from the log alone, the new store
// would lack them (a Thing not updated for a retention, an incident open
// as long), which the projection never rebuilt keeps and the write path
// reads. A projection set aside that is still there at start belongs to
// a rebuild that stopped before its carry-over committed (a crash, a
// stop): that rebuild is done again, from it.
func (p *Projector) openStore(ctx context.Context, fresh bool) error {
	if !p.cfg.InMemory {
		// A projection whose carry-over committed, left by a crash before
		// its deletion ended.
		if err := os.RemoveAll(spentDir(p.cfg.Dir)); err != nil {
			return fmt.Errorf("projector: remove %s: %w", spentDir(p.cfg.Dir), err)
		}
		switch _, err := os.Stat(asideDir(p.cfg.Dir)); {
		case err == nil:
			p.log.Warn("projector: a rebuild stopped before it carried the old projection's live entities over; rebuilding again from it",
				"dir", p.cfg.Dir, "aside", asideDir(p.cfg.Dir))
			fresh = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("projector: %w", err)
		}
	}
	droppedAside := false
	for attempt := 0; ; attempt++ {
		if fresh && !p.cfg.InMemory {
			if err := p.moveAside(); err != nil {
				return fmt.Errorf("projector: rebuild: %w", err)
			}
		}
		st, why, attrs, err := p.tryOpen(ctx)
		if err != nil && fresh && !p.cfg.InMemory && store.DiskFull(err) {
			return p.noRoomBeside(err)
		}
		if err != nil && fresh && !p.cfg.InMemory && !droppedAside && ctx.Err() == nil {
			if _, serr := os.Stat(asideDir(p.cfg.Dir)); serr == nil {
				// The new store cannot be opened beside the old one (a
				// disk too full for both): the old one goes, and the log
				// is folded without its entities, as before the carry-over,
				// rather than a start that fails for good.
				p.log.Warn("projector: the new projection cannot be opened beside the old one; deleting the old one and folding the log without it: its live entities whose operations have all left the log are lost",
					"dir", p.cfg.Dir, "err", err)
				for _, dir := range []string{asideDir(p.cfg.Dir), p.cfg.Dir} {
					if err := os.RemoveAll(dir); err != nil {
						return fmt.Errorf("projector: rebuild: remove %s: %w", dir, err)
					}
				}
				droppedAside = true
				continue
			}
		}
		if err == nil && why == "" && fresh && !p.cfg.InMemory {
			if err = p.carryOver(ctx, st); err != nil {
				_ = discard(st)
				if ctx.Err() != nil {
					return ctx.Err() // the projection set aside stays, for the next start
				}
				if store.DiskFull(err) {
					return p.noRoomBeside(err)
				}
				// The new store failed (a disk that refuses the write): the
				// log is folded without the carry-over, as before it, rather
				// than not at all.
				p.log.Warn("projector: the new projection refused the old one's live entities; folding the log without them: those whose operations have all left the log are lost",
					"dir", p.cfg.Dir, "err", err)
				for _, dir := range []string{asideDir(p.cfg.Dir), p.cfg.Dir} {
					if err := os.RemoveAll(dir); err != nil {
						return fmt.Errorf("projector: rebuild: remove %s: %w", dir, err)
					}
				}
				continue // a new store, with nothing set aside to carry
			}
		}
		switch {
		case err == nil && why == "":
			p.storeMu.Lock()
			p.store = st
			p.storeMu.Unlock()
			return nil
		case err != nil && (attempt > 0 || !store.IsCorruption(err)):
			return fmt.Errorf("projector: %w", err)
		case err != nil:
			p.heal.rebuilds.Add(1)
			p.log.Error("projector: THE PROJECTION IS CORRUPT; folding it again from the log", "dir", p.cfg.Dir, "err", err)
		case attempt > 0:
			return fmt.Errorf("projector: a new projection %s", why)
		default:
			p.heal.rebuilds.Add(1)
			p.log.Warn("projector: "+why+"; rebuilding from the log", append([]any{"dir", p.cfg.Dir}, attrs...)...)
		}
		fresh = true
	}
}

// asideDir is where a rebuild keeps the projection it replaces until its
// live entities are carried over; spentDir where it moves it once they
// are, to delete it. Both are beside the projection's directory (a rename
// within one file system), under names no projection slot takes.
func asideDir(dir string) string { return dir + ".aside" }
func spentDir(dir string) string { return dir + ".spent" }

// noRoomBeside is the end of a rebuild whose new projection the disk has
// no room for beside the old one: the old one stays set aside, and the
// next start with room goes on from it (openStore). Deleting it, as
// before, made room at the price of its live entities whose operations
// have all left the log, and on a disk full for other reasons (the
// broker's store) made none: they were lost and the rebuild failed all
// the same.
func (p *Projector) noRoomBeside(err error) error {
	return fmt.Errorf("projector: rebuild: %w: the new projection has no room beside the old one, which is kept at %s; free room there and start the process again: the rebuild goes on from it",
		err, asideDir(p.cfg.Dir))
}

// moveAside moves the projection's directory to asideDir, unless a rebuild
// that stopped before its carry-over committed left one there: that one
// is the projection to carry from, and the directory holds what the
// stopped rebuild wrote, which is deleted. A directory that cannot be
// renamed (a mount point) is deleted, as before the carry-over.
func (p *Projector) moveAside() error {
	dir, aside := p.cfg.Dir, asideDir(p.cfg.Dir)
	switch _, err := os.Stat(aside); {
	case err == nil:
		return os.RemoveAll(dir)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	err := os.Rename(dir, aside)
	switch {
	case err == nil:
		return syncDir(filepath.Dir(dir)) // the rename outlives a crash before the new store's first write
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	p.log.Warn("projector: the projection cannot be set aside; deleting it: its live entities whose operations have all left the log are lost",
		"dir", dir, "err", err)
	return os.RemoveAll(dir)
}

// syncDir makes the renames within dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// carryOver copies into st, the new (empty) store of a rebuild, every
// live entity of the projection set aside whose operations have all left
// PUSHGO_OPS (store.CarryLive), then deletes that projection. An error is
// st's (or ctx's): the projection set aside is kept, so a rebuild done
// again carries from it.
//
// It carries nothing, and says what may be lost, when the projection set
// aside cannot be read (corrupt, or of a layout whose snapshots this
// version does not decode) or is of another PUSHGO_OPS (one created
// again since: its sequences are not this log's). Its snapshots whose
// LastSeq is below the log's first sequence are the state of their
// entities after every operation below it, which the log and the
// projection agree on even when the projection folded past the log's last
// sequence (a broker restored from a backup): an operation the restored
// log lost is past its last sequence, so the snapshot of an entity it
// changed is not carried (Carried.PastLog; folded from the log's
// operations of it, or lost when it has none). A projection that had not
// folded up to the log's first sequence (stopped longer than a
// retention) carries its entities as it holds them, as it would have
// gone on with them.
func (p *Projector) carryOver(ctx context.Context, st *store.Store) error {
	aside := asideDir(p.cfg.Dir)
	if _, err := os.Stat(aside); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing set aside: a new projection
	}
	bounds := p.logBounds[streamIndex(streams.Ops)]
	first, last := bounds[0], bounds[1]
	lost := func(why string, args ...any) {
		p.log.Warn("projector: the rebuild carries none of the old projection's live entities over ("+why+"): those whose operations have all left "+streams.Ops+" are lost",
			append([]any{"aside", aside, "log_first_seq", first}, args...)...)
	}
	if first > 1 { // else no operation has left the log, and every entity is folded from it
		if err := p.carryFrom(ctx, st, aside, first, last, lost); err != nil {
			return err
		}
	}
	// The carry-over is committed and flushed: what is left cannot lose
	// it. A projection set aside that cannot be moved or deleted now only
	// makes the next start rebuild again from it (nothing lost); it is
	// not the new store's failure.
	spent := spentDir(p.cfg.Dir)
	if err := os.Rename(aside, spent); err != nil {
		p.log.Warn("projector: the old projection is not moved out of the way; the next start rebuilds again from it", "aside", aside, "err", err)
		return nil
	}
	if err := syncDir(filepath.Dir(spent)); err != nil {
		p.log.Warn("projector: the old projection's move is not synced", "dir", spent, "err", err)
	}
	if err := os.RemoveAll(spent); err != nil {
		p.log.Warn("projector: the old projection is not deleted; deleted at the next start", "dir", spent, "err", err)
	}
	return nil
}

// carryPasses bounds the carry-over's passes after the first (carryFrom).
const carryPasses = 8

// carryFrom is carryOver's copy from the projection in aside, a store it
// opens for the copy only, to read only (on a disk that may be full: Pebble
// writes nothing to it; a small block cache, no caches of its own).
func (p *Projector) carryFrom(ctx context.Context, st *store.Store, aside string, first, last uint64, lost func(string, ...any)) error {
	old, err := store.Open(aside, store.Options{ReadOnly: true, Logger: p.cfg.Logger, BlockCacheBytes: 8 << 20, CachedSnapshots: 1,
		SnapshotFilterKeys: -1, SelectionCacheBytes: -1})
	if err != nil {
		lost("it cannot be opened", "err", err)
		return nil
	}
	defer func() { _ = discard(old) }()
	switch created, err := old.LogCreated(streams.Ops); {
	case err != nil:
		lost("it cannot be read", "err", err)
		return nil
	case created != 0 && created != p.logsCreated[streams.Ops].UnixNano():
		// (0: a projection that never recorded it, folded by a version
		// before the record or never opened since by one that writes it,
		// as sameLogs takes it.)
		lost("it was folded from a "+streams.Ops+" created again since", "folded", time.Unix(0, created).UTC().Format(time.RFC3339Nano))
		return nil
	}
	start := time.Now()
	c, err := st.CarryLive(ctx, old, 0, first, last)
	// The log goes on losing operations while the carry runs (minutes for a
	// large projection), and the fold begins at its first sequence then:
	// the entities whose last operation left it meanwhile are carried by
	// another pass, over the snapshots from the first sequence read before
	// to the one now, until a pass ends with the log where it began.
	for pass := 0; err == nil && pass < carryPasses; pass++ {
		s, serr := p.js.Stream(ctx, streams.Ops)
		if serr != nil {
			break // the fold's own start finds the broker, or fails
		}
		now := s.CachedInfo().State.FirstSeq
		if now <= first {
			break
		}
		var more store.Carried
		more, err = st.CarryLive(ctx, old, first, now, last)
		c.Events, c.Things = c.Events+more.Events, c.Things+more.Things // (its Undecodable are the first pass's again)
		first = now
	}
	var src *store.CarrySourceError
	switch {
	case errors.Is(err, store.ErrCarryLayout):
		lost("its snapshots are of a layout this version does not read")
		return nil
	case errors.As(err, &src):
		p.log.Warn("projector: the old projection could not be read to its end: the rest of its live entities whose operations have all left "+streams.Ops+" are lost",
			"aside", aside, "err", err, "events", c.Events, "things", c.Things)
	case err != nil:
		return err
	}
	p.log.Info("projector: carried the old projection's live entities whose operations have all left the log over",
		"events", c.Events, "things", c.Things, "log_first_seq", first, "took", time.Since(start).Round(time.Millisecond))
	if c.Undecodable > 0 {
		p.log.Warn("projector: snapshots of the old projection that do not decode are not carried over: lost if their operations have all left the log",
			"snapshots", c.Undecodable)
	}
	if c.PastLog > 0 {
		p.log.Warn("projector: entities the old projection holds as changed by operations the log does not have (past its last sequence) are not carried over: those with no operation left in the log are lost",
			"entities", c.PastLog, "log_last_seq", last)
	}
	return nil
}

// tryOpen opens the store and reads its positions. why is not empty when
// the store opened but must be folded again; attrs then say more of it to
// the log line.
func (p *Projector) tryOpen(ctx context.Context) (st *store.Store, why string, attrs []any, err error) {
	st, err = store.Open(p.cfg.Dir, store.Options{InMemory: p.cfg.InMemory, Logger: p.cfg.Logger, BlockCacheBytes: p.cfg.BlockCacheBytes, MinFreeBytes: p.cfg.MinFreeBytes,
		SelectionCacheBytes: p.cfg.SelectionCacheBytes, OnCorruption: p.requestRebuild})
	if err != nil {
		return nil, "", nil, err
	}
	defer func() {
		if err != nil || why != "" {
			_ = discard(st)
			st = nil
		}
	}()
	current, err := st.LayoutCurrent()
	if err != nil {
		return st, "", nil, fmt.Errorf("layout version: %w", err)
	}
	if !current {
		// Folded by an older version whose indexes this one reads.
		return st, "projection layout changed", nil, nil
	}
	applied, err := st.Applied()
	if err != nil {
		return st, "", nil, fmt.Errorf("applied sequence: %w", err)
	}
	receipts, err := st.ReceiptsApplied()
	if err != nil {
		return st, "", nil, fmt.Errorf("receipts sequence: %w", err)
	}
	if why, attrs, err := p.sameLogs(st, [len(foldedStreams)]uint64{applied, receipts}); why != "" || err != nil {
		return st, why, attrs, err
	}
	for i, stream := range foldedStreams {
		held, n, err := st.DeadLetters(stream, deadLetterRecheck)
		if err != nil {
			return st, "", nil, fmt.Errorf("dead letters: %w", err)
		}
		p.heal.held[i].Store(int64(n))
		if seq := p.foldable(ctx, stream, held); seq != 0 {
			return st, fmt.Sprintf("this version folds the entry at %s sequence %d, which the projection holds as a dead letter", stream, seq), nil, nil
		}
	}
	p.applied.Store(applied)
	p.receiptsApplied.Store(receipts)
	return st, "", nil, nil
}

// readLogs reads when each folded stream was created and its first and
// last sequences, as its leader holds them (a stream info), and the
// operations' retention (which retention.go reads again as it prunes).
func (p *Projector) readLogs(ctx context.Context) error {
	created := map[string]time.Time{}
	for _, name := range foldedStreams {
		s, err := p.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("projector: stream %s: %w", name, err)
		}
		created[name] = s.CachedInfo().Created
		st := s.CachedInfo().State
		p.logBounds[streamIndex(name)] = [2]uint64{st.FirstSeq, st.LastSeq}
		if name == streams.Ops {
			p.retention.Store(s.CachedInfo().Config.MaxAge.Milliseconds())
		}
	}
	p.logsCreated = created
	return nil
}

// sameLogs reports why the projection must be folded again when one of
// the streams it folds is not the log it folded, and says so in attrs for
// the log line; a projection that recorded no creation times records them
// now. applied are the projection's positions in foldedStreams' order.
//
// Another log shows in two ways:
//
//   - the stream was created again since (a broker wiped, its storage
//     lost): its creation time is not the one recorded;
//   - the projection folded past the stream's last sequence (a broker
//     restored from a backup of its data directory, which keeps the
//     creation time; a broker syncing every second that lost its last
//     moments in a crash). JetStream keeps the last sequence when
//     messages leave the stream (retention, deletes, a purge, across
//     restarts), so a position above it was never this log's.
//
// Either way its positions name sequences of the log that was: resumed
// after them, the fold would wait for the new log to reach them and never
// fold what it holds below (a thing created then answered 404 for good),
// while the projection kept entities and history the log no longer has.
//
// Folded again from a log that has lost operations to its retention, a
// projection ahead of it keeps its live entities whose operations have
// all left the log (carryOver): their snapshots are below the log's first
// sequence, on which the log restored and the projection agree, so no
// operation the log lost is in them; an entity the lost operations
// changed is folded from what the log has of it, and lost when it has
// nothing. Before the carry-over the projector refused to start then (every
// such entity would have been lost), and waited for the operator.
func (p *Projector) sameLogs(st *store.Store, applied [len(foldedStreams)]uint64) (why string, attrs []any, err error) {
	for i, stream := range foldedStreams {
		created := p.logsCreated[stream] // readLogs reads every one
		folded, err := st.LogCreated(stream)
		if err != nil {
			return "", nil, fmt.Errorf("log of %s: %w", stream, err)
		}
		switch {
		case folded == 0:
			if err := st.SetLogCreated(stream, created.UnixNano()); err != nil {
				return "", nil, fmt.Errorf("log of %s: %w", stream, err)
			}
		case folded != created.UnixNano():
			return fmt.Sprintf("the projection folded a %s created %s, and the stream was created again %s",
				stream, time.Unix(0, folded).UTC().Format(time.RFC3339Nano), created.UTC().Format(time.RFC3339Nano)), nil, nil
		}
		if last := p.logBounds[streamIndex(stream)][1]; applied[i] > last {
			// Folded again from a log that has lost operations to its
			// retention, the projection keeps its live entities whose
			// operations all left the log (carryOver): those are below the
			// log's first sequence, so no operation the log lost (past its
			// last) is in them.
			return fmt.Sprintf("the projection folded %s up to sequence %d, past the stream's last sequence %d: it is a projection of another log (a broker restored from a backup, or its last moments lost in a crash)",
				stream, applied[i], last), []any{"stream", stream, "applied", applied[i], "last_seq", last}, nil
		}
	}
	return "", nil, nil
}

// foldable returns the sequence of the first dead letter whose entry,
// read again from the log, this version folds; 0 when none (or when the
// log cannot be read: the next start checks again). An entry is "left the
// log" only on the stream leader's word (leaderread.Stream.Msg): a
// follower still catching up answers direct gets once it is 90% in sync,
// and its "not found" would keep a foldable entry skipped until the next
// start.
func (p *Projector) foldable(ctx context.Context, stream string, held []store.DeadLetter) uint64 {
	if len(held) == 0 {
		return 0
	}
	s, err := p.js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	log := leaderread.New(p.js, s)
	for _, d := range held {
		m, err := log.Msg(ctx, d.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // left the log
		}
		if err != nil {
			return 0
		}
		if checkEntry(stream, m.Subject, m.Data, d.Seq) == nil {
			return d.Seq
		}
	}
	return 0
}

// DeadLetters lists the last limit dead letters of each folded stream (the
// entries the fold set aside, with why) and how many the projection holds
// in all. During a rebuild the list is empty.
func (p *Projector) DeadLetters(limit int) (items []store.DeadLetter, total int, err error) {
	p.storeMu.RLock()
	defer p.storeMu.RUnlock()
	if p.store == nil {
		return nil, 0, nil
	}
	for _, stream := range foldedStreams {
		ds, n, err := p.store.DeadLetters(stream, limit)
		if err != nil {
			return nil, 0, err
		}
		items, total = append(items, ds...), total+n
	}
	return items, total, nil
}

// Rebuilds is the number of automatic rebuilds of the projection since
// start.
func (p *Projector) Rebuilds() uint64 { return p.heal.rebuilds.Load() }

// primeProgress tells the catch-up state how far behind the logs (as
// readLogs read them) the store opened, before any read is served: the
// folds say so only at their first message, after the first prune, and
// until then a read a replica far behind could not reach waited its whole
// ReadWait and was answered a plain projection_lagging (not handed to
// another replica), and /send_status was answered from receipts far
// behind.
//
// What is left to fold is what the log holds after applied: its last
// sequence less the later of applied and its first less one (a log whose
// entries all aged out holds none, whatever its last sequence).
func (p *Projector) primeProgress() {
	left := func(stream string, applied uint64) uint64 {
		b := p.logBounds[streamIndex(stream)]
		from := applied
		if b[0] > 0 {
			from = max(applied, b[0]-1)
		}
		if b[1] <= from {
			return 0
		}
		return b[1] - from
	}
	if n := left(streams.Ops, p.applied.Load()); n > 0 {
		p.progress.started(p.applied.Load(), n)
	}
	if n := left(streams.Receipts, p.receiptsApplied.Load()); n > 0 {
		p.receiptsPending.Store(n)
	}
}

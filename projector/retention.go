package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pushgo/gateway/schemas/streams"
)

// prune keeps the projection in step with the log's retention: every
// interval it reads the stream's first sequence and deletes older history
// items, the send status of older operations, the final entities (CLOSED
// events, deleted Things) whose last operation is older, and the dead
// letters of entries that left the log (or the receipts stream). A live
// entity's snapshot is never pruned: its state outlives its operations,
// and the write path reads it once they have all aged out.
//
// Its passes, not the one before the folds start, also index the final
// entities of a projection folded before the final index (IndexFinal,
// once): a one-time pass over them that should not hold the folds back
// at an upgrade's start.
func (p *Projector) prune(ctx context.Context) {
	t := time.NewTicker(p.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.pruneOnce(ctx, true)
	}
}

// pruneOnce prunes once, to the log's first sequence now. runFolds calls
// it before the folds start too: a store that has not pruned yet (a new
// replica, a rebuild) took the receipts of operations that left the log
// (receipts are younger, and outlive them) as current, and answered their
// /send_status, where a live replica answers send_status_not_found, until its
// first prune a minute later. With backfill it also indexes, once, the
// final entities of a projection folded before the final index.
func (p *Projector) pruneOnce(ctx context.Context, backfill bool) {
	// Read before the log's last sequence: everything folded by then was
	// appended before it, so on the same log it is never past it.
	applied := p.applied.Load()
	s, err := p.js.Stream(ctx, streamName)
	if err != nil {
		return
	}
	if last := s.CachedInfo().State.LastSeq; applied > last {
		// The broker's log is another, shorter one (its data directory
		// restored from a backup while this projector ran, against an
		// external broker): the start's check (sameLogs) would find it
		// only at the next start, and until then nothing appended at or
		// below applied would be folded. Folded again (with its aged
		// live entities carried over), as at a start.
		p.requestRebuild(fmt.Errorf("the projection folded %s up to sequence %d, past the stream's last sequence %d: the broker's log is another (restored from a backup?)", streamName, applied, last))
		return
	}
	p.retention.Store(s.CachedInfo().Config.MaxAge.Milliseconds())
	// Nothing has left a log that starts at its first sequence: no prune,
	// and no record of one (the store stays what a fold of the log makes).
	if first := s.CachedInfo().State.FirstSeq; first > 1 {
		if h, ss, err := p.store.Prune(first); err != nil {
			p.pruneFailed("history and send status", err)
		} else if h+ss > 0 {
			p.log.Debug("projector: pruned history and send status", "items", h, "send_status", ss, "first_seq", first)
		}
		p.pruneFinal(ctx, first, backfill)
		p.pruneDeadLetters(streamName, first)
	}
	// The receipts fold sets entries aside too: theirs go as the
	// receipts stream's retention takes the entries.
	if r, err := p.js.Stream(ctx, streams.Receipts); err == nil {
		p.pruneDeadLetters(streams.Receipts, r.CachedInfo().State.FirstSeq)
	}
}

// pruneFinal deletes the final entities whose last operation is below
// first (store.PruneFinal), after indexing those of a projection folded
// before the final index when backfill (store.IndexFinal, once).
func (p *Projector) pruneFinal(ctx context.Context, first uint64, backfill bool) {
	n, err := p.store.PruneFinal(ctx, first)
	if err != nil {
		p.pruneFailed("closed events and deleted things", err)
		return
	}
	if backfill && !p.store.FinalIndexed() {
		p.log.Info("projector: indexing the closed events and deleted things of a projection folded before the final index (once)")
		m, err := p.store.IndexFinal(ctx, first)
		n += m
		if err != nil {
			p.pruneFailed("closed events and deleted things (indexing)", err)
			return
		}
		p.log.Info("projector: indexed the closed events and deleted things", "pruned", m, "first_seq", first)
	}
	if n > 0 {
		p.log.Debug("projector: pruned closed events and deleted things", "entities", n, "first_seq", first)
	}
}

// pruneDeadLetters deletes the dead letters of stream's entries below
// first (entries that left the stream).
func (p *Projector) pruneDeadLetters(stream string, first uint64) {
	if n, err := p.store.PruneDeadLetters(stream, first); err != nil {
		p.pruneFailed(stream+" dead letters", err)
	} else if n > 0 {
		p.heal.held[streamIndex(stream)].Add(-int64(n))
	}
}

// pruneFailed logs a failed prune; a broken store is rebuilt.
func (p *Projector) pruneFailed(what string, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return // stopped between chunks (the projector stops, or the pass before the folds ran out of time): the next pass goes on
	}
	p.log.Warn("projector: prune "+what, "err", err)
	if storeBroken(err) {
		p.requestRebuild(err)
	}
}

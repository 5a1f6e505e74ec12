package store

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Write stalls and slow disk operations. Pebble delays writes when its
// background work falls behind (memtables queued for a flush up to its
// limit, level 0 too deep): the fold's commit then waits, the projection
// lags the log, and reads that wait for an operation's fold (a barrier)
// wait with it, with nothing else to say why. Pebble's disk health check
// reports a write that is taking long. Both are logged as they happen and
// counted (Background), so a stall seen at a client can be put beside the
// store's own account.
type stallStats struct {
	began   atomic.Int64 // unix ns of the stall in progress; 0 when none
	stalls  atomic.Int64 // stalls begun
	stalled atomic.Int64 // ns of the stalls ended
	slow    atomic.Int64 // slow disk operations reported
}

// stallListener sets the store's hooks on l.
func (s *Store) stallListener(l *pebble.EventListener) {
	l.WriteStallBegin = s.writeStallBegin
	l.WriteStallEnd = s.writeStallEnd
	l.DiskSlow = s.diskSlow
}

// writeStallBegin logs before it counts, and sets the stall's start before
// its count: whoever sees the count (Background, a dashboard, a test) finds
// the stall already in the log and its time running.
func (s *Store) writeStallBegin(info pebble.WriteStallBeginInfo) {
	s.opts.Logger.Warn("projection store: writes stalled", "reason", info.Reason)
	s.stalls.began.Store(time.Now().UnixNano())
	s.stalls.stalls.Add(1)
}

func (s *Store) writeStallEnd() {
	began := s.stalls.began.Swap(0)
	if began == 0 {
		return
	}
	d := time.Duration(time.Now().UnixNano() - began)
	s.stalls.stalled.Add(int64(d))
	s.opts.Logger.Warn("projection store: writes resumed", "stalled", d)
}

func (s *Store) diskSlow(info pebble.DiskSlowInfo) {
	s.stalls.slow.Add(1)
	s.opts.Logger.Warn("projection store: slow disk operation", "path", info.Path, "op", info.OpType.String(),
		"bytes", info.WriteSize, "for", info.Duration)
}

// stallTotals are the counts since the store opened: stalls begun, the
// time writes were stalled (the stall in progress included) and slow disk
// operations.
func (s *Store) stallTotals() (stalls int64, stalled time.Duration, slow int64) {
	stalled = time.Duration(s.stalls.stalled.Load())
	if began := s.stalls.began.Load(); began != 0 {
		stalled += time.Duration(time.Now().UnixNano() - began)
	}
	return s.stalls.stalls.Load(), stalled, s.stalls.slow.Load()
}

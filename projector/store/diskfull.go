package store

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrDiskFull marks a store its disk takes no more writes: no space left
// (ENOSPC), a quota (EDQUOT) or a file size limit (EFBIG) reached. It is
// not corruption: what the store holds is sound, and it goes on once
// there is room again. Rebuilt instead, as a corrupt one is, the
// projection lost its live entities whose operations have all left the
// log, since a disk too full for the new copy beside the old one had the
// old one deleted.
var ErrDiskFull = errors.New("the projection's disk is full")

// diskFullErrnos are the errors of a disk that takes no more writes.
var diskFullErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG}

// DiskFull reports whether err is the store's disk refusing a write
// (ErrDiskFull), however it came: an error that wraps the system's, or a
// fatal report of Pebble's, which holds only its text.
func DiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrDiskFull) {
		return true
	}
	for _, errno := range diskFullErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	var f *FatalError
	if errors.As(err, &f) {
		for _, errno := range diskFullErrnos {
			if strings.Contains(f.Msg, errno.Error()) {
				return true
			}
		}
	}
	return false
}

// walRoom is the room Pebble takes at once for a write-ahead log: it
// preallocates each to 110% of a memtable (DB.walPreallocateSize), and
// opening a store starts one. A flush needs room of its own; minFreeSlack
// is a margin for it.
func walRoom(memTableSize uint64) uint64 { return memTableSize + memTableSize/10 }

const minFreeSlack = 16 << 20

// checkRoom refuses to open a store in dir with less than need bytes free
// on its disk: Pebble opened there blocked for good in its first write
// (the log said so 50 times a second, and no service of the process
// started), or panicked in a flush of its own goroutine. A system that
// cannot tell the free space opens as before.
func checkRoom(dir string, need uint64) error {
	free, err := freeBytes(dir)
	if err != nil || free >= need {
		return nil
	}
	return fmt.Errorf("%w: %d MiB free under %s, and the projection needs %d MiB to open (the write-ahead log Pebble preallocates, and a flush): free room there and start again",
		ErrDiskFull, free>>20, dir, need>>20)
}

// diskRefusal is the last flush the store's disk refused, until a flush
// succeeds again, and when a refusal was last logged.
type diskRefusal struct {
	err    atomic.Pointer[error]
	logged atomic.Int64 // unix ns
}

// refusalLogEvery spaces the log lines of a disk that keeps refusing: Pebble
// retries its flush at once, and logged each failure, 38 to 364 lines a
// second on a full disk.
const refusalLogEvery = 30 * time.Second

// backgroundError is Pebble's report of a background job that failed. A
// disk that refuses is logged once every refusalLogEvery (Pebble retries at
// once); any other failure is logged as Pebble logged it. DiskRefused
// follows the flushes alone (flushed): a compaction the disk refuses
// leaves the writes going.
func (s *Store) backgroundError(err error) {
	if !DiskFull(err) {
		s.opts.Logger.Error("projection store: background error", "err", err)
		return
	}
	now := time.Now().UnixNano()
	if last := s.refused.logged.Load(); now-last >= int64(refusalLogEvery) && s.refused.logged.CompareAndSwap(last, now) {
		s.opts.Logger.Error("projection store: the disk refuses its background writes; what cannot be flushed waits in memory until there is room",
			"err", err, "next_log_in", refusalLogEvery)
	}
}

// flushed is Pebble's report of a flush that ended: one the disk refused
// makes DiskRefused say so, one that succeeded ends it.
func (s *Store) flushed(err error) {
	switch {
	case DiskFull(err):
		s.refused.err.Store(&err)
	case err == nil && s.refused.err.Load() != nil:
		s.refused.err.Store(nil)
		s.refused.logged.Store(0)
		s.opts.Logger.Warn("projection store: the disk takes its flushes again")
	}
}

// DiskRefused is the disk's refusal of the store's last flush, until one
// succeeds, or nil. The
// store still takes writes meanwhile, into memtables it cannot flush:
// Pebble stalls them once a few are full.
func (s *Store) DiskRefused() error {
	if e := s.refused.err.Load(); e != nil {
		return *e
	}
	return nil
}

// roomToFlush reports whether the store's disk has room for a flush: it
// refuses none now, and has room for a new write-ahead log and the flush
// (or cannot tell: a store in memory, a system that does not say).
func (s *Store) roomToFlush() bool {
	if s.DiskRefused() != nil {
		return false
	}
	if s.dir == "" {
		return true
	}
	free, err := freeBytes(s.dir)
	return err != nil || free >= walRoom(s.memTable)+minFreeSlack
}

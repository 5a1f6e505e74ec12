package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// DiskFull tells a disk that takes no more writes, however it came, from
// corruption and other failures.
func TestDiskFullTellsAFullDiskFromCorruption(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{&FatalError{Msg: "pebble: error writing WAL: write /data/projection/000012.log: no space left on device"}, true},
		{&FatalError{Msg: "MANIFEST flush failed: write /data/projection/MANIFEST-000001: file too large"}, true},
		{&FatalError{Msg: "pebble: corrupt table 000042"}, false},
		{fmt.Errorf("fold of PUSHGO_OPS: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("commit: %w", syscall.EDQUOT), true},
		{fmt.Errorf("open: %w", ErrDiskFull), true},
		{ErrCorrupt, false},
		{errors.New("nats: timeout"), false},
		{nil, false},
	} {
		if got := DiskFull(c.err); got != c.full {
			t.Errorf("DiskFull(%v) = %v, want %v", c.err, got, c.full)
		}
	}
}

// A store is not opened on a disk without the room Pebble takes to open:
// Open answers ErrDiskFull at once, naming the room there is and the room
// it needs, and leaves the directory free for an open once there is room.
func TestOpenRefusesADiskWithoutRoom(t *testing.T) {
	dir := t.TempDir()
	free, err := freeBytes(dir)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("the free space is not read on this system: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{MinFreeBytes: int64(free + 1<<40)})
	if !errors.Is(err, ErrDiskFull) || !DiskFull(err) || !strings.Contains(err.Error(), "MiB free under "+dir) {
		t.Fatalf("Open with more room needed than the disk has: %v, want ErrDiskFull naming the room", err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open with room after a refusal: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A store whose disk refuses its flushes (no space left) says so
// (DiskRefused) and logs it once, not at each of Pebble's retries; once a
// flush succeeds it says so and DiskRefused is nil again. Its writes are
// kept meanwhile, and a Close on a disk that refuses does not flush (a
// flush there panicked inside Pebble).
func TestARefusedFlushIsReportedUntilOneSucceeds(t *testing.T) {
	var full atomic.Bool
	var refusals atomic.Int64
	full.Store(true)
	refuseTables := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() && op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
			refusals.Add(1)
			return &os.PathError{Op: "open", Path: op.Path, Err: syscall.ENOSPC}
		}
		return nil
	})
	var logs lockedBuffer
	s, err := Open("", Options{InMemory: true, memFS: errorfs.Wrap(vfs.NewMem(), refuseTables), memTableSize: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer full.Store(false) // first: Close waits for the flush
	value := bytes.Repeat([]byte{'v'}, 1024)
	for i := range 512 {
		if err := s.db.Set(fmt.Appendf(nil, "k/%08d", i), value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = s.db.Flush() }() // waits for a flush that succeeds
	deadline := time.Now().Add(30 * time.Second)
	for s.DiskRefused() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no refused flush reported in 30s")
		}
		time.Sleep(time.Millisecond)
	}
	if !DiskFull(s.DiskRefused()) {
		t.Fatalf("DiskRefused: %v, want a full disk", s.DiskRefused())
	}
	if s.roomToFlush() {
		t.Error("a store whose disk refuses its flushes would flush at Close")
	}
	// Pebble retries the flush at once: a few more refusals.
	for seen := refusals.Load(); refusals.Load() < seen+5; {
		if time.Now().After(deadline) {
			t.Fatal("Pebble tried no flush again in 30s")
		}
		time.Sleep(time.Millisecond)
	}
	if n := strings.Count(logs.String(), "the disk refuses its background writes"); n != 1 {
		t.Errorf("the refusal logged %d times, want once:\n%s", n, logs.String())
	}

	full.Store(false)
	for s.DiskRefused() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the refusal still reported 30s after the disk took tables again")
		}
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(logs.String(), "the disk takes its flushes again") {
		t.Errorf("the disk's return is not in the log:\n%s", logs.String())
	}
	if v, closer, err := s.db.Get(fmt.Appendf(nil, "k/%08d", 511)); err != nil || !bytes.Equal(v, value) {
		t.Fatalf("a write kept while the disk refused: %v", err)
	} else {
		closer.Close()
	}
}

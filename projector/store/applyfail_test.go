package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// holdingHandler is a log handler that holds the first record with
// message held until release is closed, after closing reached.
type holdingHandler struct {
	held    string
	once    atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (h *holdingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *holdingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *holdingHandler) WithGroup(string) slog.Handler            { return h }
func (h *holdingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.held && h.once.CompareAndSwap(false, true) {
		close(h.reached)
		<-h.release
	}
	return nil
}

// When the disk refuses the WAL's writes, the commit that meets the
// failure fails the store, and so does every commit after it: none waits
// for ever in Pebble's commit pipeline, which the failed commit left
// locked. A second commit that arrives while the first is failing (held
// here in its log line, before the store is marked failed) used to enter
// Pebble and wait there for good, and the fold that made it with it, so
// the projector never got to rebuild the store.
func TestCommitsAfterAWALFailureAllReturn(t *testing.T) {
	var refuse atomic.Bool
	var refused atomic.Int64
	walWrites := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if refuse.Load() && op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") {
			refused.Add(1)
			return errors.New("injected: the disk refuses the write")
		}
		return nil
	})
	h := &holdingHandler{held: "projection store: fatal failure", reached: make(chan struct{}), release: make(chan struct{})}
	s, err := Open("", Options{InMemory: true, memFS: errorfs.Wrap(vfs.NewMem(), walWrites), Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err == nil {
			t.Error("Close of a failed store returned no error")
		}
	}()
	commit := func(i, size int) error {
		b := s.db.NewBatch()
		_ = b.Set(fmt.Appendf(nil, "k/%08d", i), bytes.Repeat([]byte{'v'}, size), nil)
		return s.apply(b)
	}
	if err := commit(0, 10); err != nil {
		t.Fatal(err)
	}

	// The WAL writes its records in 32 KiB blocks from a goroutine of its
	// own, and a commit meets that goroutine's failure once it fills a
	// block after the goroutine has recorded it, which it does a moment
	// after the refused write (the injector's count comes first). So
	// commits of a little over a block each, a few milliseconds apart,
	// until one fails: at most six, well within the first memtable of
	// 256 KiB (Pebble cannot survive a WAL that fails while it switches
	// memtables: it ends the process).
	const blockAndABit = 33 << 10
	refuse.Store(true)
	if err := commit(1, blockAndABit); err != nil {
		t.Fatalf("the commit before any write was refused: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); refused.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the WAL wrote nothing within 30s")
		}
	}
	first := make(chan error, 1)
	go func() {
		for i := 2; i <= 6; i++ {
			time.Sleep(5 * time.Millisecond) // the WAL's goroutine records its failure
			if err := commit(i, blockAndABit); err != nil {
				first <- err
				return
			}
		}
		first <- errors.New("five commits after the WAL's refused write succeeded")
	}()
	select {
	case <-h.reached:
	case err := <-first:
		t.Fatalf("the first commit to fail did not report it: %v (writes refused %d)", err, refused.Load())
	case <-time.After(30 * time.Second):
		t.Fatalf("no commit failed within 30s (writes refused %d)", refused.Load())
	}

	// A second commit while the first is failing: wait until it waits.
	second := make(chan error, 1)
	go func() { second <- commit(-1, 10) }()
	deadline := time.Now().Add(30 * time.Second)
	for !commitWaitsOnALock() {
		if time.Now().After(deadline) {
			t.Fatal("the second commit never waited behind the first")
		}
		time.Sleep(time.Millisecond)
	}
	close(h.release)

	var f *FatalError
	if err := <-first; !errors.As(err, &f) {
		t.Fatalf("the commit that met the failure returned %v, want a *FatalError", err)
	}
	select {
	case err := <-second:
		if !errors.As(err, &f) {
			t.Fatalf("the commit after the failure returned %v, want a *FatalError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the commit after the failure never returned: it waits in Pebble's broken commit pipeline")
	}
	if err := commit(-2, 10); !errors.As(err, &f) {
		t.Fatalf("a later commit returned %v, want a *FatalError", err)
	}
}

// commitWaitsOnALock reports whether a goroutine waits on a mutex inside
// Store.apply.
func commitWaitsOnALock() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[sync.Mutex.Lock") && strings.Contains(g, "store.(*Store).apply(") {
			return true
		}
	}
	return false
}

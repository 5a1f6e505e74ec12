package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// lockedBuffer is a log sink for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A store whose flushes cannot write their tables fills its memtables and
// Pebble stalls the writes: the store says so in its log, counts the
// stall, and once the tables can be written, counts how long writes
// waited and says that they resumed.
func TestWriteStallIsLoggedAndCounted(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	letTablesBeWritten := func() { releaseOnce.Do(func() { close(release) }) }
	holdTables := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
			<-release // a flush's table waits here
		}
		return nil
	})
	var logs lockedBuffer
	s, err := Open("", Options{InMemory: true, memFS: errorfs.Wrap(vfs.NewMem(), holdTables), memTableSize: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if bg := s.Background(); bg.WriteStalls != 0 || bg.WriteStalled != 0 {
		t.Fatalf("a new store reports %d stalls (%s)", bg.WriteStalls, bg.WriteStalled)
	}

	// Ten memtables' worth of writes: the second full memtable waiting for
	// its flush stops them.
	var writeErr error
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		value := bytes.Repeat([]byte{'v'}, 1024)
		for i := range 10 << 10 {
			if writeErr = s.db.Set(fmt.Appendf(nil, "k/%08d", i), value, pebble.NoSync); writeErr != nil {
				return
			}
		}
	}()
	// Whatever fails below, the tables are let through and the writes end
	// before Close, which would wait for the flush.
	defer func() {
		letTablesBeWritten()
		<-wrote
	}()
	deadline := time.Now().Add(30 * time.Second)
	for s.Background().WriteStalls == 0 {
		select {
		case <-wrote:
			t.Fatalf("every write went through (err %v) with no table written: no stall", writeErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no write stall reported in 30s")
		}
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(logs.String(), "projection store: writes stalled") || !strings.Contains(logs.String(), "reason=") {
		t.Errorf("the stall is not in the log:\n%s", logs.String())
	}
	if bg := s.Background(); bg.WriteStalled <= 0 {
		t.Errorf("a stall in progress counts no time: %s", bg.WriteStalled)
	}

	letTablesBeWritten()
	<-wrote
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	bg := s.Background()
	if bg.WriteStalls < 1 || bg.WriteStalled <= 0 || s.stalls.began.Load() != 0 {
		t.Errorf("after the writes: %d stalls, %s stalled, one in progress %v; want ended stalls with their time",
			bg.WriteStalls, bg.WriteStalled, s.stalls.began.Load() != 0)
	}
	if !strings.Contains(logs.String(), "projection store: writes resumed") {
		t.Errorf("the stall's end is not in the log:\n%s", logs.String())
	}
}

package store

import (
	"fmt"
	"log/slog"
	"sync/atomic"
)

// pebbleLogger routes Pebble's messages to slog: its routine chatter
// ("Found 0 WALs") at debug level, errors as errors, and its fatal
// reports to the store (see FatalError).
type pebbleLogger struct {
	l     *slog.Logger
	fatal *atomic.Pointer[FatalError]
}

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	f := &FatalError{Msg: fmt.Sprintf(format, args...)}
	p.l.Error("projection store: fatal failure", "err", f.Msg)
	p.fatal.CompareAndSwap(nil, f)
	// Pebble's contract: Fatalf does not return.
	panic(f)
}

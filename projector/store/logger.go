package store

import (
	"fmt"
	"log/slog"
)

// pebbleLogger routes Pebble's messages to slog: its routine chatter
// ("Found 0 WALs") at debug level, errors as errors.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble's contract: Fatalf does not return.
	panic(fmt.Sprintf(format, args...))
}

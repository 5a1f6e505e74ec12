package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrNotReady is wrapped by Start's error when the server started but
// does not accept connections: it reported a fatal error first (the
// error quotes it: a port it cannot listen on, JetStream that cannot
// start) or was not ready in time.
var ErrNotReady = errors.New("broker: server not ready")

// ErrListen is wrapped by Start's error, beside ErrNotReady, when the
// server could not listen on one of its ports (the error says which and
// why): taken by another process, most often.
var ErrListen = errors.New("cannot listen")

// serverLog is the embedded server's logger. Its lines go to the
// configured slog.Logger (nil: dropped). The first fatal line is also
// kept for Start: the server reports a port it cannot listen on only by
// logging it as fatal (its own logger would exit the process) and then
// never becomes ready, so without it Start would wait out its whole
// timeout and say nothing of the cause.
type serverLog struct {
	l     *slog.Logger
	fatal chan string // the first fatal line; later ones are only logged
}

func newServerLog(l *slog.Logger) *serverLog {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &serverLog{l: l, fatal: make(chan string, 1)}
}

// log formats a line only when the logger takes its level.
func (a *serverLog) log(level slog.Level, format string, v []any) {
	if a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (a *serverLog) Noticef(format string, v ...any) { a.log(slog.LevelDebug, format, v) }
func (a *serverLog) Warnf(format string, v ...any)   { a.log(slog.LevelWarn, format, v) }
func (a *serverLog) Errorf(format string, v ...any)  { a.log(slog.LevelError, format, v) }
func (a *serverLog) Debugf(format string, v ...any)  {}
func (a *serverLog) Tracef(format string, v ...any)  {}

func (a *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}

// awaitReady waits up to timeout for srv to accept connections on every
// port it was given, and returns at once, wrapping ErrNotReady, when srv
// logs a fatal error first.
func awaitReady(srv *server.Server, log *serverLog, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if srv.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-log.fatal:
			// The server's words for it (server.go, route.go): "Error
			// listening on port: ...", "Error listening on router port: ...".
			if strings.HasPrefix(msg, "Error listening on") {
				return fmt.Errorf("%w: %w: %s", ErrNotReady, ErrListen, msg)
			}
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", ErrNotReady, timeout)
		}
	}
}

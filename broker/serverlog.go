package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrNotReady is wrapped by Start's error when the server started but
// does not accept connections: it could not listen on one of its ports
// (the error says which and why) or was not ready in time.
var ErrNotReady = errors.New("broker: server not ready")

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

func (a *serverLog) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *serverLog) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *serverLog) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
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
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", ErrNotReady, timeout)
		}
	}
}

package leaderread

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Why a leader's contact with its replicas (ConfirmNone's lease) is not
// enough on its own: a raft node notes when it last heard from a peer as
// the moment it processes the message, so a leader stopped (SIGSTOP, a
// stalled VM) and resumed processes what its peers sent before the stop,
// and for an instant reports them heard from just now, until it reads the
// new term's messages and steps down. Its clients saw the stop as a stall
// of their connection: every request and ping waited. A stall watch pings
// the connection's server, and ConfirmNone does not take a "none" within
// stallWindow of a stall the watch saw.

// stallPing is how often the watch pings its server.
const stallPing = 500 * time.Millisecond

// stallThreshold is how long a ping must wait for its answer for the
// watch to count a stall. A server stopped long enough for its streams to
// elect another leader (the followers' election timeout: 4 s at least)
// kept a ping of the watch waiting for at least 4 s less stallPing.
const stallThreshold = leaseBound

// stallWindow is how long after a stall ConfirmNone refuses a "none": the
// replicas a resumed leader heard from "just now" age past leaseBound
// within leaseBound of its resume, unless it heard from them again, in
// which case they told it of the new term.
const stallWindow = 2 * leaseBound

// stallWatch pings a connection's server every stallPing, one ping at a
// time, and notes the stalls.
type stallWatch struct {
	nc *nats.Conn
	// pingSince is when the ping waiting for its answer was sent (unix
	// nanoseconds), 0 between pings.
	pingSince atomic.Int64
	// lastStall is when the watch last saw a stall end (unix
	// nanoseconds), 0 never.
	lastStall atomic.Int64
	// ctx ends with the watch (stop cancels it), a ping under way too: a
	// hung broker does not hold up the writer's Close for a ping's bound.
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
}

// WatchStalls starts watching the stalls of the server the stream's reads
// go through, for ConfirmNone; the returned function stops it. For a
// process that answers on ConfirmNone (the log's writer): one ping every
// stallPing.
func (s *Stream) WatchStalls() (stop func()) {
	w := &stallWatch{nc: s.js.Conn(), done: make(chan struct{})}
	w.ctx, w.stop = context.WithCancel(context.Background())
	s.stalls.Store(w)
	go w.run()
	return func() {
		w.stop()
		<-w.done
		s.stalls.CompareAndSwap(w, nil)
	}
}

func (w *stallWatch) run() {
	defer close(w.done)
	t := time.NewTicker(stallPing)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		if w.nc.IsClosed() {
			return
		}
		sent := time.Now()
		w.pingSince.Store(sent.UnixNano())
		ctx, cancel := context.WithTimeout(w.ctx, stallWindow)
		err := w.nc.FlushWithContext(ctx)
		cancel()
		if w.ctx.Err() != nil {
			return
		}
		if err != nil || time.Since(sent) >= stallThreshold {
			// Unanswered (the server away, the connection reconnecting)
			// counts as a stall too: the next server may be a resumed one.
			w.lastStall.Store(time.Now().UnixNano())
		}
		w.pingSince.Store(0)
	}
}

// check returns an error when the connection's server stalled within
// stallWindow, or stalls now (a ping of ctx's own unanswered). It first
// pings the server, so that the answer to every ping sent before has
// been read: a ping of the watch still counted as waiting then waited
// from when it was sent.
func (w *stallWatch) check(ctx context.Context) error {
	if err := w.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: the broker did not answer a ping: %w", ErrUnconfirmed, err)
	}
	now := time.Now().UnixNano()
	if p := w.pingSince.Load(); p != 0 && time.Duration(now-p) >= stallThreshold {
		return fmt.Errorf("%w: the broker kept a ping waiting %s", ErrUnconfirmed, time.Duration(now-p).Round(time.Millisecond))
	}
	if l := w.lastStall.Load(); l != 0 && time.Duration(now-l) < stallWindow {
		return fmt.Errorf("%w: the broker stalled %s ago", ErrUnconfirmed, time.Duration(now-l).Round(time.Millisecond))
	}
	return nil
}

// Package consume runs the gateway's durable JetStream consumers with one
// loop: it creates (or binds) the consumer, pulls messages, hands each to a
// Handler and settles it as the handler decides (ack, nak with a delay,
// term). Transient failures (the broker reconnecting, the consumer deleted,
// a stream leader moving) make the loop recreate what it needs and go on
// with back-off; only a configuration the broker rejects ends it with an
// error. Running says whether messages are flowing, for readiness.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Decision says how a handled message is settled.
type Decision struct {
	kind  decisionKind
	delay time.Duration
}

type decisionKind uint8

const (
	ack decisionKind = iota
	nak
	term
	held
)

var (
	// Ack settles the message: it is done.
	Ack = Decision{kind: ack}
	// Term settles a message that can never be handled (malformed): it is
	// not redelivered.
	Term = Decision{kind: term}
	// Held leaves the message to the handler, which settles it later with
	// Loop.Settle (a pipeline that acks once a publish is confirmed).
	Held = Decision{kind: held}
)

// Nak hands the message back to be redelivered after delay (0: at once).
func Nak(delay time.Duration) Decision { return Decision{kind: nak, delay: delay} }

// Handler handles one message. ctx ends when the loop stops; a handler
// that sees it ended should return Nak(0) so another replica takes the
// message at once.
type Handler func(ctx context.Context, m jetstream.Msg) Decision

// Config configures a Loop. Stream, Consumer.Durable and Handler are
// required; zero durations take the documented defaults.
type Config struct {
	// Stream is the stream consumed.
	Stream string
	// Consumer is the durable consumer's configuration, created or updated
	// when the loop starts.
	Consumer jetstream.ConsumerConfig
	// Resume, when set, is the configuration for recreating the consumer
	// after it went missing while the loop ran, given the highest stream
	// sequence acked through this loop (0 if none). A consumer that starts
	// at DeliverNew uses it to start after what it settled, so nothing
	// appended while it was missing is skipped. An error means the
	// consumer must not be created now (the caller found that it no
	// longer belongs to this replica, or could not tell): nothing is
	// created, and the loop tries again after its back-off.
	Resume func(lastAcked uint64) (jetstream.ConsumerConfig, error)
	// Handler handles each message.
	Handler Handler
	// PullMaxMessages is how many messages are buffered. Default 256. At or
	// above the consumer's MaxAckPending it is raised to leave room for the
	// pulls' statuses beyond it (see validate).
	PullMaxMessages int
	// Heartbeat is the idle heartbeat of a pull (500ms to 15s); two missed
	// ones make the loop check that its consumer still exists. Default 2s.
	Heartbeat time.Duration
	// PriorityGroup, when set, makes the loop pull as a member of that
	// priority group of the consumer (one of its PriorityGroups). With the
	// pinned-client policy one puller at a time gets the messages, and
	// every message carries the pin id (header Nats-Pin-Id) of the pull it
	// answers; a puller keeps the pin by pulling again within the
	// consumer's PinnedTTL.
	PriorityGroup string
	// PullExpiry bounds one pull request (default 30 s). A pinned puller
	// needs it well under the PinnedTTL. Heartbeat must be at most half of it.
	PullExpiry time.Duration
	// RetryDelay is the first pause after a failure; it doubles up to
	// MaxRetryDelay. Defaults 250ms and 5s.
	RetryDelay, MaxRetryDelay time.Duration
	Logger                    *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.Stream == "":
		return errors.New("consume: Stream is required")
	case c.Consumer.Durable == "":
		return errors.New("consume: Consumer.Durable is required")
	case c.Handler == nil:
		return errors.New("consume: Handler is required")
	}
	if c.PullMaxMessages <= 0 {
		c.PullMaxMessages = 256
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.Heartbeat < 500*time.Millisecond || c.Heartbeat > 15*time.Second {
		return fmt.Errorf("consume: Heartbeat %s: must be 500ms to 15s", c.Heartbeat)
	}
	if c.PullExpiry > 0 && c.Heartbeat > c.PullExpiry/2 {
		return fmt.Errorf("consume: Heartbeat %s: must be at most half the PullExpiry %s", c.Heartbeat, c.PullExpiry)
	}
	// The client library's buffer holds PullMaxMessages, and the pulls'
	// statuses (idle heartbeats, the expiry's 408) land in it beside the
	// messages. When MaxAckPending is the tighter bound, a pull waits for
	// ack room with the buffer full of unsettled messages (a handler that
	// holds them, then stalls while others are settled and the broker
	// refills): the statuses, or a message after them, had no room and the
	// library dropped them ("slow consumer": a lost expiry left the loop
	// without a pull until its heartbeat check, a lost message was read
	// again or redelivered after the ack wait). Room for them.
	if m, room := c.Consumer.MaxAckPending, c.pullStatusRoom(); m > 0 && c.PullMaxMessages >= m && c.PullMaxMessages < m+room {
		c.PullMaxMessages = m + room
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 250 * time.Millisecond
	}
	if c.MaxRetryDelay <= 0 {
		c.MaxRetryDelay = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// pullStatusRoom is the buffer's room for pull statuses beyond the
// consumer's MaxAckPending: a few pulls (at most 4) open at once, each
// with an idle heartbeat every Heartbeat until it expires and one expiry
// status; at least 64. Heartbeat must be set.
func (c *Config) pullStatusRoom() int {
	expiry := c.PullExpiry
	if expiry <= 0 {
		expiry = 30 * time.Second // the client library's default
	}
	return max(64, 4*int(expiry/c.Heartbeat+1))
}

// Loop is one durable consumer's loop. Build it with New and run it with
// Run; Running, Err and Settle may be called from any goroutine.
type Loop struct {
	js  jetstream.JetStream
	cfg Config

	state
	pulled    bool               // the last pull got a message (Run's goroutine only)
	bound     bool               // a consumer was created or bound once (Run's goroutine only)
	cons      jetstream.Consumer // the handle bound last, which keeps the pin id (Run's goroutine only)
	lastAcked atomic.Uint64
	holdUntil atomic.Int64                              // Unix ns: no pulling before it (Hold)
	it        atomic.Pointer[jetstream.MessagesContext] // the pull in progress
}

// Hold stops the loop pulling until d from now: messages pulled and not
// yet handled are dropped unsettled (the broker redelivers them after the
// ack wait, or sooner to a consumer reset). A pinned puller that holds for
// longer than the consumer's PinnedTTL, or is unpinned meanwhile, lets
// another puller of its priority group be pinned; after the hold it pulls
// with a fresh handle, without its old pin id. The loop counts as running
// while it holds.
func (l *Loop) Hold(d time.Duration) {
	l.holdUntil.Store(time.Now().Add(d).UnixNano())
	if it := l.it.Load(); it != nil {
		(*it).Stop()
	}
}

// New validates cfg and returns a loop over js.
func New(js jetstream.JetStream, cfg Config) (*Loop, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Loop{js: js, cfg: cfg}, nil
}

// Name is the durable consumer's name.
func (l *Loop) Name() string { return l.cfg.Consumer.Durable }

// Run consumes until ctx ends, then stops pulling, hands back (nak) what
// was pulled and not handled, and returns nil. It returns an error only
// when the broker rejects the consumer's configuration: nothing a retry
// can fix.
func (l *Loop) Run(ctx context.Context) error {
	delay := l.cfg.RetryDelay
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		cons, err := l.consumer(ctx, attempt == 0)
		if err == nil {
			l.bound, l.cons = true, cons
			err = l.pull(ctx, cons)
			if ctx.Err() != nil {
				return nil
			}
			if wait := time.Until(time.Unix(0, l.holdUntil.Load())); wait > 0 {
				l.running.Store(true)
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return nil
				}
				// Bind again (the loop's attempt goes to 1: the consumer
				// exists, no create), with no back-off.
				attempt = 0
				// With a fresh handle: a hold hands the pin over, and the
				// kept one would pull with its pin id still.
				l.cons = nil
				continue
			}
			if l.pulled {
				delay = l.cfg.RetryDelay // it ran: start the back-off afresh
			}
		}
		if permanent(err) {
			l.setErr(err)
			return fmt.Errorf("consumer %s on %s: %w", l.Name(), l.cfg.Stream, err)
		}
		l.setErr(err)
		// Not running until a pull runs again: a hold said running while
		// it waited, and a rebind after it that failed left it so, and
		// /readyz green while nothing was pulled.
		l.running.Store(false)
		l.cfg.Logger.Warn("consume: consumer interrupted; recreating", "consumer", l.Name(), "stream", l.cfg.Stream, "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
		delay = min(2*delay, l.cfg.MaxRetryDelay)
	}
}

// consumer creates or updates the consumer on the first attempt; later it
// binds the existing one, with the handle bound last when there is one,
// or recreates it (from Resume, with a new handle) when it is gone. A
// consumer whose settings cannot be updated (another replica recreated it
// from a start sequence) is bound as it is.
func (l *Loop) consumer(ctx context.Context, first bool) (jetstream.Consumer, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if first {
		cons, err := l.js.CreateOrUpdateConsumer(cctx, l.cfg.Stream, l.cfg.Consumer)
		if permanent(err) {
			if have, berr := l.js.Consumer(cctx, l.cfg.Stream, l.Name()); berr == nil {
				l.cfg.Logger.Warn("consume: existing consumer kept as it is", "consumer", l.Name(), "stream", l.cfg.Stream, "err", err)
				return have, nil
			}
		}
		return cons, err
	}
	// The handle bound last is kept while its consumer exists: the client
	// library keeps the pin id on it and sends it with every pull. A new
	// handle has none, and the broker skips a puller without the current
	// pin until the pin expires (PinnedTTL, refreshed only by pulls with
	// its id), then may pin another replica: the partition stalled and
	// moved for nothing. Keeping it is safe: a pin gone stale meanwhile
	// (unpinned, expired, the consumer recreated) is answered 423, and the
	// library drops it and pulls without.
	var err error
	cons := l.cons
	if cons != nil {
		_, err = cons.Info(cctx)
	} else {
		cons, err = l.js.Consumer(cctx, l.cfg.Stream, l.Name())
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return cons, err
	}
	// From Resume only when a consumer this loop had went missing: one the
	// loop never had (its first creation failed for a moment: a timeout, a
	// broker away) is created from its configuration. From Resume(0) a new
	// pusher partition started at sequence 1 instead of DeliverNew, and the
	// log's history was pushed as new.
	cfg := l.cfg.Consumer
	if l.cfg.Resume != nil && l.bound {
		if cfg, err = l.cfg.Resume(l.lastAcked.Load()); err != nil {
			return nil, fmt.Errorf("consume: consumer %s missing, not created again: %w", l.Name(), err)
		}
	}
	l.cfg.Logger.Warn("consume: consumer missing; creating it again", "consumer", l.Name(), "stream", l.cfg.Stream, "after_seq", l.lastAcked.Load())
	cons, err = l.js.CreateConsumer(cctx, l.cfg.Stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) { // another replica was first
		return l.js.Consumer(cctx, l.cfg.Stream, l.Name())
	}
	return cons, err
}

// pull hands messages to the handler until ctx ends or the pull fails.
func (l *Loop) pull(ctx context.Context, cons jetstream.Consumer) error {
	l.pulled = false
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(l.cfg.PullMaxMessages), jetstream.PullHeartbeat(l.cfg.Heartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(true)}
	if l.cfg.PriorityGroup != "" {
		opts = append(opts, jetstream.PullPriorityGroup(l.cfg.PriorityGroup))
	}
	if l.cfg.PullExpiry > 0 {
		opts = append(opts, jetstream.PullExpiry(l.cfg.PullExpiry))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	l.it.Store(&it)
	defer l.it.Store(nil)
	if time.Now().UnixNano() < l.holdUntil.Load() {
		// Held since the last check: the iterator is stopped here (Hold
		// stops only one it finds stored, and this one was stored after
		// it looked), or its subscription and goroutines stayed for the
		// connection's life.
		it.Stop()
		return nil
	}
	// On shutdown, drain: stop pulling, and hand back what was pulled but
	// not handled, so another replica takes it now rather than after the
	// ack wait. Without a connection there is nothing to hand back to (the
	// broker redelivers after the ack wait), and a drain would wait out
	// the client's 10-second flush: stop at once.
	stop := context.AfterFunc(ctx, func() {
		if l.js.Conn().IsConnected() {
			it.Drain()
		} else {
			it.Stop()
		}
	})
	defer stop()
	defer it.Stop()
	l.running.Store(true)
	defer l.running.Store(false)
	l.setErr(nil)
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// Quiet, or gone? Only a consumer that still exists is kept.
				if _, ierr := cons.Info(ctx); ierr != nil {
					return fmt.Errorf("no heartbeat, and consumer info: %w", ierr)
				}
				continue
			}
			return fmt.Errorf("next: %w", err)
		}
		l.pulled = true
		if ctx.Err() != nil {
			_ = m.Nak()
			continue
		}
		l.Settle(m, l.cfg.Handler(ctx, m))
	}
}

// Settle settles m as d says (Held does nothing) and records an acked
// message's stream sequence for Resume. Handlers that return Held call it
// when they are done.
func (l *Loop) Settle(m jetstream.Msg, d Decision) {
	var err error
	switch d.kind {
	case ack:
		if err = m.Ack(); err == nil {
			l.acked(m)
		}
	case nak:
		if d.delay > 0 {
			err = m.NakWithDelay(d.delay)
		} else {
			err = m.Nak()
		}
	case term:
		err = m.Term()
	case held:
		return
	}
	if err != nil {
		// The broker redelivers an unsettled message after its ack wait.
		l.cfg.Logger.Debug("consume: settle failed", "consumer", l.Name(), "err", err)
	}
}

// AckSync acknowledges m and waits for the broker's answer, which it
// sends once it has processed the acknowledgement and every one queued
// before it for the consumer. Settle's Ack only sends it: the broker
// processes acknowledgements on a queue of the consumer's own, and may
// answer an API request sent later (a consumer reset, which restarts from
// the ack floor) before them. m may have been acknowledged already (Settle):
// the client library sends a message's acknowledgement once, so the
// repeat goes as a request of its own, which the broker answers alike (on
// a replicated consumer at once, without waiting for the first one's
// replication: a leader change in that moment may still lose it).
func (l *Loop) AckSync(ctx context.Context, m jetstream.Msg) error {
	err := m.DoubleAck(ctx)
	if errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		_, err = l.js.Conn().RequestWithContext(ctx, m.Reply(), ackBody)
	}
	if err != nil {
		return err
	}
	l.acked(m)
	return nil
}

// ackBody is an acknowledgement's body on the wire.
var ackBody = []byte("+ACK")

// acked records an acknowledged message's stream sequence for Resume.
func (l *Loop) acked(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	for {
		cur := l.lastAcked.Load()
		if md.Sequence.Stream <= cur || l.lastAcked.CompareAndSwap(cur, md.Sequence.Stream) {
			return
		}
	}
}

// permanent reports an error no retry can fix: the broker rejected the
// consumer's configuration, or the client library rejected an option.
func permanent(err error) bool {
	if errors.Is(err, jetstream.ErrInvalidOption) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == http.StatusBadRequest &&
		apiErr.ErrorCode != jetstream.JSErrCodeConsumerNotFound && apiErr.ErrorCode != jetstream.JSErrCodeStreamNotFound
}

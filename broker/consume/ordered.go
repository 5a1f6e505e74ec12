package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrRestart, returned (wrapped) by an OrderedConfig.Handle, restarts the
// consumer at once from After: the handler saw a gap it must not skip.
var ErrRestart = errors.New("restart the consumer")

// errUnavailable marks a consumer that could not be created: the broker
// may be briefly away.
var errUnavailable = errors.New("consumer unavailable")

// OrderedConfig configures an Ordered loop. Stream, After and Handle are
// required; zero values take the documented defaults.
type OrderedConfig struct {
	// Stream is the stream consumed.
	Stream string
	// After returns the last stream sequence handled for good (0: none):
	// every (re)start delivers from the one after it. The position lives
	// with the handler, not on the server.
	After func() uint64
	// Handle takes messages from msgs, in stream order, until ctx ends
	// (it then returns nil) or it fails. A failure restarts the consumer
	// from After; MaxFailures failures in a row with no progress of After
	// end the loop with the last one.
	Handle func(ctx context.Context, msgs <-chan jetstream.Msg) error
	// Buffer is the capacity of msgs and the messages pulled at once.
	// Default 1000.
	Buffer int
	// MaxFailures is how many failed handlings in a row, without progress,
	// are tried again before Run gives up. Default 3.
	MaxFailures int
	// Local, when set, is the feed of the messages this process appends
	// to the stream: once the loop has caught up with the stream's end, it
	// takes those from the feed instead of having the broker deliver them,
	// and reads the others from the stream (see LocalFeed).
	Local *LocalFeed
	// FeedBackoff bounds how long a loop with a Local feed stays on the
	// broker's consumer before it tries the feed again, when the feed
	// keeps missing sequences (other processes append to the stream as
	// well): each stint on the feed shorter than feedStint doubles the
	// stay, from minFeedBackoff; a longer stint ends it. Without it, every
	// run of another process's appends would cost a consumer's creation
	// and deletion. Default 30s.
	FeedBackoff time.Duration
	// RetryDelay is the pause after a failure; it grows linearly with the
	// failures (and doubles, up to 5s, while the consumer cannot be
	// created). Default 500ms.
	RetryDelay time.Duration
	Logger     *slog.Logger
}

func (c *OrderedConfig) validate() error {
	switch {
	case c.Stream == "":
		return errors.New("consume: Stream is required")
	case c.After == nil || c.Handle == nil:
		return errors.New("consume: After and Handle are required")
	}
	if c.Buffer <= 0 {
		c.Buffer = 1000
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 3
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 500 * time.Millisecond
	}
	if c.FeedBackoff <= 0 {
		c.FeedBackoff = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Ordered runs an ordered consumer (no state on the server, messages in
// stream order, recreated by the client library when the server loses it)
// under the same rules as Loop: transient failures restart it with
// back-off, a handler that keeps failing ends Run with an error.
type Ordered struct {
	js  jetstream.JetStream
	cfg OrderedConfig

	state
}

// NewOrdered validates cfg and returns an ordered loop over js.
func NewOrdered(js jetstream.JetStream, cfg OrderedConfig) (*Ordered, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Ordered{js: js, cfg: cfg}, nil
}

// Run consumes until ctx ends (it returns nil) or the handler fails
// MaxFailures times in a row without progress (it returns the failure).
func (o *Ordered) Run(ctx context.Context) error {
	failures := 0
	unavailable := o.cfg.RetryDelay
	for {
		start := o.cfg.After()
		err := o.once(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		o.setErr(err)
		var wait time.Duration
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrRestart):
			o.cfg.Logger.Warn("consume: restarting ordered consumer", "stream", o.cfg.Stream, "after", o.cfg.After(), "reason", err)
			continue
		case errors.Is(err, errUnavailable):
			o.cfg.Logger.Warn("consume: ordered consumer unavailable; retrying", "stream", o.cfg.Stream, "err", err, "retry_in", unavailable)
			wait, unavailable = unavailable, min(2*unavailable, 5*time.Second)
		default:
			unavailable = o.cfg.RetryDelay
			if o.cfg.After() > start {
				failures = 0
			}
			if failures++; failures > o.cfg.MaxFailures {
				return err
			}
			o.cfg.Logger.Warn("consume: handling failed; starting again after the last handled sequence", "stream", o.cfg.Stream,
				"after", o.cfg.After(), "attempt", failures, "err", err)
			wait = time.Duration(failures) * o.cfg.RetryDelay
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// once runs one ordered consumer from after start until the handler
// returns.
func (o *Ordered) once(ctx context.Context, start uint64) error {
	if o.cfg.Local != nil {
		return o.onceFed(ctx, start)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if start > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start + 1}
	}
	cons, err := o.js.OrderedConsumer(ctx, o.cfg.Stream, cfg)
	if err != nil {
		return fmt.Errorf("%s: ordered consumer: %w: %w", o.cfg.Stream, errUnavailable, err)
	}
	msgs := make(chan jetstream.Msg, 4*o.cfg.Buffer)
	quit := make(chan struct{}) // ends a callback blocked on msgs when the handler returns
	defer close(quit)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		case <-quit:
		}
	}, jetstream.PullMaxMessages(2*o.cfg.Buffer))
	if err != nil {
		return fmt.Errorf("%s: consume: %w: %w", o.cfg.Stream, errUnavailable, err)
	}
	defer cc.Stop()
	o.running.Store(true)
	defer o.running.Store(false)
	return o.cfg.Handle(ctx, msgs)
}

package consume

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// feedPoll is how often a loop on its local feed with nothing held
	// asks the stream for its last sequence while the stream has news, or
	// a reader waits (LocalFeed.Poke): how late another process's append
	// (or one whose PubAck was lost) then reaches the handler at most,
	// beyond a round trip. feedPollIdle: the interval doubles up to it
	// while each answer shows nothing new. At 50 ms throughout, an idle
	// all-in-one gateway asked its broker for the stream's info twenty
	// times a second, about half of the process's idle CPU (in a cluster,
	// requests to the stream's leader, from every replica).
	feedPoll     = 50 * time.Millisecond
	feedPollIdle = time.Second
	// consumerInactive removes a consumer left behind by a process that
	// died between two modes.
	consumerInactive = 30 * time.Second
	// feedStint and minFeedBackoff: see OrderedConfig.FeedBackoff.
	feedStint      = time.Second
	minFeedBackoff = 100 * time.Millisecond
)

// onceFed is once for a loop with a local feed: the handler's messages come
// from an ordered consumer until it has caught up with the stream's end,
// then from the feed while it holds each next sequence, and from an
// ordered consumer again from the first one it does not hold.
func (o *Ordered) onceFed(ctx context.Context, start uint64) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	stream, err := o.js.Stream(rctx, o.cfg.Stream)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: stream: %w: %w", o.cfg.Stream, errUnavailable, err)
	}
	hctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	msgs := make(chan jetstream.Msg, 4*o.cfg.Buffer)
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		if err := o.pump(hctx, stream, msgs, start+1); err != nil {
			stop(err)
		}
	}()
	o.running.Store(true)
	defer o.running.Store(false)
	herr := o.cfg.Handle(hctx, msgs)
	stop(nil)
	<-pumped
	if herr == nil && ctx.Err() == nil {
		if cause := context.Cause(hctx); !errors.Is(cause, context.Canceled) {
			return cause // the pump failed: the handler stopped for it
		}
	}
	return herr
}

// pump feeds msgs from next on, alternating between an ordered consumer
// and the local feed, until ctx ends or a consumer cannot be had.
func (o *Ordered) pump(ctx context.Context, stream jetstream.Stream, msgs chan<- jetstream.Msg, next uint64) error {
	last, err := o.lastSeq(ctx, stream)
	if err != nil {
		return err
	}
	fromFeed := last < next // nothing to catch up with
	var stay time.Duration  // the least time on the next consumer (FeedBackoff)
	for {
		if fromFeed {
			began := time.Now()
			next, err = o.fromFeed(ctx, stream, msgs, next)
			if time.Since(began) < feedStint {
				stay = min(max(2*stay, minFeedBackoff), o.cfg.FeedBackoff)
			} else {
				stay = 0
			}
		} else {
			next, err = o.fromConsumer(ctx, msgs, next, stay)
		}
		if err != nil {
			return err
		}
		fromFeed = !fromFeed
	}
}

// fromConsumer hands msgs the stream from next with an ordered consumer
// until, stay or more after it began, one message is the stream's last
// (nothing pending after it) or the feed holds the one after it, and
// returns the sequence after it.
func (o *Ordered) fromConsumer(ctx context.Context, msgs chan<- jetstream.Msg, next uint64, stay time.Duration) (uint64, error) {
	began := time.Now()
	cons, err := o.js.OrderedConsumer(ctx, o.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: next, InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return 0, fmt.Errorf("%s: ordered consumer: %w: %w", o.cfg.Stream, errUnavailable, err)
	}
	caughtUp := make(chan uint64, 1)
	var done atomic.Bool
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if done.Load() {
			return // after the switch: the feed, or the next consumer, has it
		}
		md, err := m.Metadata()
		if err != nil {
			return // a gap the handler sees and restarts at
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
		seq := md.Sequence.Stream
		// Caught up: nothing after seq yet, or the feed has what follows
		// (under a steady load the stream's end keeps moving on).
		// Once only: two callbacks may overlap (the library's ordered
		// consumer starts a new subscription on a reconnect while the old
		// one's may still run), and a second send would block for ever on
		// a delivery goroutine nobody owns.
		if held := o.cfg.Local.passed(seq); (held || md.NumPending == 0) && time.Since(began) >= stay && done.CompareAndSwap(false, true) {
			caughtUp <- seq
		}
	}, jetstream.PullMaxMessages(2*o.cfg.Buffer))
	if err != nil {
		return 0, fmt.Errorf("%s: consume: %w: %w", o.cfg.Stream, errUnavailable, err)
	}
	defer o.discard(cons, cc)
	select {
	case last := <-caughtUp:
		return last + 1, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// discard stops a consumer and deletes it from the server at once: an
// idle consumer left there is still woken by every append.
func (o *Ordered) discard(cons jetstream.Consumer, cc jetstream.ConsumeContext) {
	cc.Stop()
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.js.DeleteConsumer(dctx, o.cfg.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		o.cfg.Logger.Debug("consume: delete ordered consumer", "stream", o.cfg.Stream, "consumer", info.Name, "err", err)
	}
}

// fromFeed hands msgs the local feed's messages from next on while it
// holds each next one, and returns the first sequence it does not hold
// once the stream has it (the feed holds a later one, or the stream's last
// sequence has reached it).
func (o *Ordered) fromFeed(ctx context.Context, stream jetstream.Stream, msgs chan<- jetstream.Msg, next uint64) (uint64, error) {
	f := o.cfg.Local
	every, polled := feedPoll, time.Now() // the poll's interval, and when it last asked
	poll := time.NewTimer(every)
	defer poll.Stop()
	var target uint64 // the stream's last sequence at the last poll
	for {
		if m, ok := f.take(next); ok {
			select {
			case msgs <- &m:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			next++
			continue
		}
		// Offers come in sequence order (the PubAcks' order), so a later
		// one held means next is not coming from the feed. (Next itself
		// may have come since take.)
		if lo := f.lowest(); lo == next {
			continue
		} else if lo != 0 {
			return next, nil
		}
		select {
		case <-f.wake:
		case <-f.poke:
			if every > feedPoll {
				every = feedPoll
				poll.Reset(max(time.Until(polled.Add(every)), 0))
			}
		case <-poll.C:
			if target >= next && f.lowest() == 0 {
				// The stream had next a poll ago and the feed still has
				// not: appended by another process, or its PubAck lost.
				// (Not at the first sight: a PubAck comes a moment after
				// the append, and its offer with it.)
				return next, nil
			}
			var err error
			if target, err = o.lastSeq(ctx, stream); err != nil {
				return 0, err
			}
			polled, every = time.Now(), pollAfter(every, target >= next)
			poll.Reset(every)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// pollAfter is nextPoll; a test replaces it to count the polls or to
// space them out.
var pollAfter = nextPoll

// nextPoll is the interval after a poll whose answer did (news) or did
// not show the sequence the loop waits for: feedPoll after news (the next
// poll confirms that the feed will not bring it), else twice the last
// interval, up to feedPollIdle.
func nextPoll(every time.Duration, news bool) time.Duration {
	if news {
		return feedPoll
	}
	return min(2*every, feedPollIdle)
}

// lastSeq is the stream's last sequence.
func (o *Ordered) lastSeq(ctx context.Context, stream jetstream.Stream) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := stream.Info(ictx)
	if err != nil {
		return 0, fmt.Errorf("%s: stream info: %w: %w", o.cfg.Stream, errUnavailable, err)
	}
	return info.State.LastSeq, nil
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// fold consumes PUSHGO_OPS from after applied and folds it until ctx ends.
// The position lives in the store (in the same batch as the state it
// describes), so the consumer is an ordered one that keeps no state on the
// server: resuming after a crash starts exactly after the last committed
// batch, and a replica can be thrown away and rebuilt at will.
func (p *Projector) fold(ctx context.Context, applied uint64) error {
	return p.follow(ctx, streams.Ops, applied, p.apply, (*store.Batch).Commit, p.committed)
}

// foldReceipts consumes PUSHGO_RECEIPTS the same way, into /send_status.
func (p *Projector) foldReceipts(ctx context.Context, applied uint64) error {
	return p.follow(ctx, streams.Receipts, applied, applyReceipt, (*store.Batch).CommitReceipts, p.receiptsApplied.Store)
}

// errGap reports a message delivered after a sequence the fold has not
// seen, while the stream still holds that sequence.
var errGap = errors.New("sequence gap in delivery")

// errConsumer marks a failure to (re)create the consumer: the broker may be
// briefly unavailable, so the fold tries again rather than stopping.
var errConsumer = errors.New("consumer unavailable")

// follow runs consume, and runs it again from the last committed sequence
// whenever the consumer skipped messages the stream still holds: the fold
// must see every operation exactly once, in order.
func (p *Projector) follow(ctx context.Context, stream string, applied uint64,
	apply func(*store.Batch, jetstream.Msg, *jetstream.MsgMetadata) error,
	commit func(*store.Batch, uint64) error, committed func(uint64)) error {
	failures := 0
	for {
		last, err := p.consume(ctx, stream, applied, apply, commit, committed)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errGap):
			p.log.Warn("projector: consumer skipped messages; resuming from the last folded sequence", "stream", stream, "after", last)
		case errors.Is(err, errConsumer):
			p.log.Warn("projector: consumer unavailable; retrying", "stream", stream, "err", err)
			wait = time.Second
		default:
			// A batch that failed to fold or commit is folded again from the
			// last committed sequence a few times (a store hiccup passes);
			// one that keeps failing cannot go on.
			if last > applied {
				failures = 0
			}
			if failures++; failures > maxFoldRetries {
				return err
			}
			p.log.Warn("projector: fold failed; folding again from the last committed sequence", "stream", stream,
				"after", last, "attempt", failures, "err", err)
			wait = time.Duration(failures) * 500 * time.Millisecond
		}
		p.foldErr(stream, err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		applied = last
	}
}

// maxFoldRetries is how many times a failing batch is folded again before
// the fold stops for good.
const maxFoldRetries = 3

// consume runs one fold loop over stream: apply each message to a batch,
// commit the batch with the last sequence through commit, report it. It
// returns the last committed sequence.
func (p *Projector) consume(ctx context.Context, stream string, applied uint64,
	apply func(*store.Batch, jetstream.Msg, *jetstream.MsgMetadata) error,
	commit func(*store.Batch, uint64) error, committed func(uint64)) (uint64, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if applied > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: applied + 1}
	}
	cons, err := p.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return applied, fmt.Errorf("%s: ordered consumer: %w: %w", stream, errConsumer, err)
	}
	msgs := make(chan jetstream.Msg, 4*p.cfg.BatchSize)
	quit := make(chan struct{}) // ends a callback blocked on msgs when this loop returns
	defer close(quit)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		case <-quit:
		}
	}, jetstream.PullMaxMessages(2*p.cfg.BatchSize))
	if err != nil {
		return applied, fmt.Errorf("%s: consume: %w: %w", stream, errConsumer, err)
	}
	defer cc.Stop()
	p.folding(stream, true)
	defer p.folding(stream, false)

	batch := p.store.NewBatch()
	last, done := applied, applied // last folded into the batch; last committed
	var opened time.Time           // when the batch got its first operation
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		if err := commit(batch, last); err != nil {
			return err
		}
		committed(last)
		done = last
		batch = p.store.NewBatch()
		return nil
	}
	defer func() {
		// Fold what was received; a failure here only means a later start
		// folds it again.
		_ = flush()
		batch.Discard()
	}()
	for {
		select {
		case <-ctx.Done():
			return done, nil
		case m := <-msgs:
			md, err := m.Metadata()
			if err != nil {
				return done, fmt.Errorf("%s: message metadata: %w", stream, err)
			}
			seq := md.Sequence.Stream
			if seq <= last {
				continue // delivered again after a consumer reset: folded already
			}
			if last > 0 && seq != last+1 && p.streamHolds(ctx, stream, last+1) {
				if err := flush(); err != nil {
					return done, err
				}
				return done, errGap
			}
			if batch.Len() == 0 {
				opened = time.Now()
			}
			if err := apply(batch, m, md); err != nil {
				return done, fmt.Errorf("%s: %w", stream, err)
			}
			last = seq
			// Commit when the batch is full, as soon as the fold has caught
			// up, or when its oldest operation has waited MaxBatchDelay:
			// batches grow under load and stay small when idle, and reads
			// waiting on their barrier are never held back for long.
			if batch.Len() >= p.cfg.BatchSize || len(msgs) == 0 || time.Since(opened) >= p.cfg.MaxBatchDelay {
				if err := flush(); err != nil {
					return done, err
				}
			}
		}
	}
}

// streamHolds reports whether stream still holds seq (it is not before the
// first retained sequence). On doubt it answers true, which costs only a
// consumer restart.
func (p *Projector) streamHolds(ctx context.Context, stream string, seq uint64) bool {
	s, err := p.js.Stream(ctx, stream)
	if err != nil {
		return true
	}
	return s.CachedInfo().State.FirstSeq <= seq
}

// applyReceipt folds one receipt into the batch.
func applyReceipt(b *store.Batch, m jetstream.Msg, md *jetstream.MsgMetadata) error {
	var r delivery.Receipt
	if err := json.Unmarshal(m.Data(), &r); err != nil {
		return fmt.Errorf("seq %d: receipt: %w", md.Sequence.Stream, err)
	}
	if err := b.ApplyReceipt(&r); err != nil {
		return fmt.Errorf("seq %d: %w", md.Sequence.Stream, err)
	}
	b.Count()
	return nil
}

// apply folds one operation into the batch.
func (p *Projector) apply(b *store.Batch, m jetstream.Msg, md *jetstream.MsgMetadata) error {
	seq := md.Sequence.Stream
	p.pending.Store(md.NumPending)
	var env ops.Envelope
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		return fmt.Errorf("seq %d: envelope: %w", seq, err)
	}
	if err := fold.CheckEnvelope(&env); err != nil {
		return fmt.Errorf("seq %d: %w", seq, err)
	}
	return Fold(b, &env, m.Data(), seq)
}

// Fold applies one operation (env, decoded from raw) to the batch: the
// entity snapshot and its indexes, and the channel history. It is the whole
// of what an operation does to the projection.
func Fold(b *store.Batch, env *ops.Envelope, raw []byte, seq uint64) error {
	kind := env.Op.Kind()
	switch kind {
	case ops.KindEvent:
		prev, err := b.Event(env.ChannelID, env.EntityID)
		if err != nil {
			return fmt.Errorf("seq %d: read event: %w", seq, err)
		}
		next, err := fold.ApplyEvent(prev, env, seq)
		if err != nil {
			return err
		}
		if err := b.PutEvent(prev, next); err != nil {
			return err
		}
	case ops.KindThing:
		prev, err := b.Thing(env.ChannelID, env.EntityID)
		if err != nil {
			return fmt.Errorf("seq %d: read thing: %w", seq, err)
		}
		next, err := fold.ApplyThing(prev, env, seq)
		if err != nil {
			return err
		}
		if err := b.PutThing(prev, next); err != nil {
			return err
		}
	}
	b.PutHistory(env.ChannelID, kind, seq, reads.AppendItem(nil, seq, kind, raw))
	b.PutOp(env)
	return nil
}

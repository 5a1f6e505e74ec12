package projector

import (
	"context"
	"fmt"
	"time"

	"github.com/pushgo/gateway/broker/consume"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// folds builds the two fold loops: PUSHGO_OPS into the projection and
// PUSHGO_RECEIPTS into /send_status. Each is an ordered consumer that
// keeps no state on the server: the position lives in the store (in the
// same batch as the state it describes), so resuming after a crash starts
// exactly after the last committed batch, and a replica can be thrown away
// and rebuilt at will.
func (p *Projector) folds() (ops, receipts *consume.Ordered, err error) {
	mk := func(stream string, after func() uint64, apply func(*store.Batch, jetstream.Msg, *jetstream.MsgMetadata) error,
		commit func(*store.Batch, uint64) error, committed func(uint64)) (*consume.Ordered, error) {
		return consume.NewOrdered(p.js, consume.OrderedConfig{
			Stream: stream, After: after, Buffer: p.cfg.BatchSize, MaxFailures: maxFoldRetries, Logger: p.log,
			Handle: func(ctx context.Context, msgs <-chan jetstream.Msg) error {
				return p.consume(ctx, msgs, stream, after(), apply, commit, committed)
			},
		})
	}
	if ops, err = mk(streams.Ops, p.applied.Load, p.apply, (*store.Batch).Commit, p.committed); err != nil {
		return nil, nil, err
	}
	receipts, err = mk(streams.Receipts, p.receiptsApplied.Load, applyReceipt, (*store.Batch).CommitReceipts, p.receiptsApplied.Store)
	return ops, receipts, err
}

// maxFoldRetries is how many times a failing batch is folded again from
// the last committed sequence (a store hiccup passes) before the fold
// stops for good.
const maxFoldRetries = 3

// errGap reports a message delivered after a sequence the fold has not
// seen, while the stream still holds that sequence: the consumer is
// restarted from the last committed sequence, since the fold must see
// every operation exactly once, in order.
var errGap = fmt.Errorf("sequence gap in delivery: %w", consume.ErrRestart)

// consume folds messages from msgs: apply each to a batch, commit the
// batch with the last sequence through commit, report it. It returns nil
// when ctx ends, after committing what it holds.
func (p *Projector) consume(ctx context.Context, msgs <-chan jetstream.Msg, stream string, applied uint64,
	apply func(*store.Batch, jetstream.Msg, *jetstream.MsgMetadata) error,
	commit func(*store.Batch, uint64) error, committed func(uint64)) error {
	batch := p.store.NewBatch()
	last := applied      // last folded into the batch
	var opened time.Time // when the batch got its first operation
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		if err := commit(batch, last); err != nil {
			return err
		}
		committed(last)
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
			return nil
		case m := <-msgs:
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("%s: message metadata: %w", stream, err)
			}
			seq := md.Sequence.Stream
			if seq <= last {
				continue // delivered again after a consumer reset: folded already
			}
			if last > 0 && seq != last+1 && p.streamHolds(ctx, stream, last+1) {
				if err := flush(); err != nil {
					return err
				}
				return fmt.Errorf("%s: after %d: %w", stream, last, errGap)
			}
			if batch.Len() == 0 {
				opened = time.Now()
			}
			if err := apply(batch, m, md); err != nil {
				batch.Discard()
				batch = p.store.NewBatch() // what the batch held is folded again on restart
				return fmt.Errorf("%s: %w", stream, err)
			}
			last = seq
			// Commit when the batch is full, as soon as the fold has caught
			// up, or when its oldest operation has waited MaxBatchDelay:
			// batches grow under load and stay small when idle, and reads
			// waiting on their barrier are never held back for long.
			if batch.Len() >= p.cfg.BatchSize || len(msgs) == 0 || time.Since(opened) >= p.cfg.MaxBatchDelay {
				if err := flush(); err != nil {
					return err
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
	b.PutOp(env, seq)
	return nil
}

package projector

import (
	"context"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// fold consumes the stream from after applied and folds it until ctx ends.
// The position lives in the store (in the same batch as the state it
// describes), so the consumer is an ordered one that keeps no state on the
// server: resuming after a crash starts exactly after the last committed
// batch, and a replica can be thrown away and rebuilt at will.
func (p *Projector) fold(ctx context.Context, applied uint64) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if applied > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: applied + 1}
	}
	cons, err := p.js.OrderedConsumer(ctx, streams.Ops, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer: %w", err)
	}
	msgs := make(chan jetstream.Msg, 4*p.cfg.BatchSize)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*p.cfg.BatchSize))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()

	batch := p.store.NewBatch()
	var last uint64
	commit := func() error {
		if batch.Len() == 0 {
			return nil
		}
		if err := batch.Commit(last); err != nil {
			return err
		}
		p.committed(last)
		batch = p.store.NewBatch()
		return nil
	}
	defer func() {
		// Fold what was received; a failure here only means a later start
		// folds it again.
		_ = commit()
		batch.Discard()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			seq, err := p.apply(batch, m)
			if err != nil {
				return err
			}
			last = seq
			// Commit when the batch is full, or as soon as the fold has
			// caught up: batches grow under load and stay small when idle,
			// so reads waiting on their barrier are not held back.
			if batch.Len() >= p.cfg.BatchSize || len(msgs) == 0 {
				if err := commit(); err != nil {
					return err
				}
			}
		}
	}
}

// apply folds one operation into the batch and returns its sequence.
func (p *Projector) apply(b *store.Batch, m jetstream.Msg) (uint64, error) {
	md, err := m.Metadata()
	if err != nil {
		return 0, fmt.Errorf("message metadata: %w", err)
	}
	seq := md.Sequence.Stream
	p.pending.Store(md.NumPending)
	var env ops.Envelope
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		return 0, fmt.Errorf("seq %d: envelope: %w", seq, err)
	}
	if err := fold.CheckEnvelope(&env); err != nil {
		return 0, fmt.Errorf("seq %d: %w", seq, err)
	}
	if err := Fold(b, &env, m.Data(), seq); err != nil {
		return 0, err
	}
	return seq, nil
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
	return nil
}

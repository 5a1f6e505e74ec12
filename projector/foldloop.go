package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushgo/gateway/broker/consume"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// folds builds the two fold loops: PUSHGO_OPS into the projection and
// PUSHGO_RECEIPTS into /send_status. Each is an ordered consumer that
// keeps no state on the server: the position lives in the store (in the
// same batch as the state it describes), so resuming after a crash starts
// exactly after the last committed batch, and a replica can be thrown away
// and rebuilt at will.
func (p *Projector) folds() (ops, receipts *consume.Ordered, err error) {
	ops, err = consume.NewOrdered(p.js, consume.OrderedConfig{
		Stream: streams.Ops, After: p.applied.Load, Buffer: foldBuffer, MaxFailures: maxFoldRetries, Logger: p.log,
		Local: p.cfg.LocalOps,
		Handle: func(ctx context.Context, msgs <-chan jetstream.Msg) error {
			return p.consumeOps(ctx, msgs, p.applied.Load())
		},
	})
	if err != nil {
		return nil, nil, err
	}
	receipts, err = consume.NewOrdered(p.js, consume.OrderedConfig{
		Stream: streams.Receipts, After: p.receiptsApplied.Load, Buffer: foldBuffer, MaxFailures: maxFoldRetries, Logger: p.log,
		Handle: func(ctx context.Context, msgs <-chan jetstream.Msg) error {
			return p.consume(ctx, msgs, streams.Receipts, p.receiptsApplied.Load(), applyReceipt,
				(*store.Batch).CommitReceipts, p.receiptsCommitted)
		},
	})
	return ops, receipts, err
}

// maxFoldRetries is how many times a failing batch is folded again from
// the last committed sequence (a store hiccup passes) before the fold
// gives up and the projection is rebuilt (heal.go); also how many times a
// rebuild is tried.
const maxFoldRetries = 3

// errGap reports a message delivered after a sequence the fold has not
// seen, while the stream still holds that sequence: the consumer is
// restarted from the last committed sequence, since the fold must see
// every operation exactly once, in order.
var errGap = fmt.Errorf("sequence gap in delivery: %w", consume.ErrRestart)

// consume folds messages from msgs one at a time (the receipts; the
// operations have the partitioned fold, partfold.go): apply each to a
// batch, commit the batch with the last sequence through commit, report
// it. An entry that
// cannot be folded is set aside as a dead letter (in the same batch) and
// the fold goes on. It returns nil when ctx ends, after committing what it
// holds.
func (p *Projector) consume(ctx context.Context, msgs <-chan jetstream.Msg, stream string, applied uint64,
	apply func(*store.Batch, jetstream.Msg, *jetstream.MsgMetadata) error,
	commit func(*store.Batch, uint64) error, committed func(uint64)) error {
	batch := p.store.NewBatch()
	last := applied      // last folded into the batch
	var opened time.Time // when the batch got its first operation
	dead := 0            // dead letters in the batch
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		if err := commitSafely(commit, batch, last); err != nil {
			if storeBroken(err) {
				p.requestRebuild(err)
			}
			// A failed commit has taken the batch's writes (into a Pebble
			// batch of its own): committed again, on the way out, it held
			// the position and nothing else, and moved it past what it
			// never wrote. What it held is folded again on restart.
			batch.Discard()
			batch = p.store.NewBatch()
			dead = 0
			return err
		}
		committed(last)
		if dead > 0 {
			i := streamIndex(stream)
			p.heal.setAside[i].Add(uint64(dead))
			p.heal.held[i].Add(int64(dead))
			dead = 0
		}
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
			if stream == streams.Receipts {
				p.receiptsPending.Store(md.NumPending)
			}
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
				var bad *entryError
				if !errors.As(err, &bad) {
					batch.Discard()
					batch = p.store.NewBatch() // what the batch held is folded again on restart
					dead = 0
					if storeBroken(err) {
						p.requestRebuild(err)
					}
					return fmt.Errorf("%s: %w", stream, err)
				}
				// Never stop on one bad entry: record it and go on.
				p.setAside(batch, stream, seq, m.Subject(), bad)
				dead++
			}
			last = seq
			// Commit when the batch is full, as soon as the fold has caught
			// up, or when its oldest operation has waited MaxBatchDelay:
			// batches grow under load and stay small when idle, and reads
			// waiting on their barrier are never held back for long.
			if batch.Len() >= foldBuffer || len(msgs) == 0 || time.Since(opened) >= p.cfg.MaxBatchDelay {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

// setAside records an entry that cannot be folded as a dead letter in
// batch, where it commits with the applied sequence that passes it.
func (p *Projector) setAside(batch *store.Batch, stream string, seq uint64, subject string, bad *entryError) {
	p.log.Error("projector: log entry set aside as a dead letter: it cannot be folded",
		"stream", stream, "seq", seq, "subject", subject, "reason", bad.reason)
	batch.PutDeadLetter(store.DeadLetter{Stream: stream, Seq: seq, Subject: subject, Reason: bad.reason})
}

// commitSafely commits b, turning the store's fatal report (a panic, see
// store.FatalError) into an error.
func commitSafely(commit func(*store.Batch, uint64) error, b *store.Batch, last uint64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*store.FatalError)
			if !ok {
				panic(r)
			}
			err = f
		}
	}()
	return commit(b, last)
}

// entryError is a log entry the fold cannot fold, whatever the store
// holds: folding it again cannot succeed, so it is set aside (a dead
// letter) and the fold goes on.
type entryError struct{ reason string }

func (e *entryError) Error() string { return "entry cannot be folded: " + e.reason }

func badEntry(format string, args ...any) error {
	return &entryError{reason: fmt.Sprintf(format, args...)}
}

// recoverEntry turns a panic of the fold into the error *err: the store's
// fatal report stays what it is; anything else the fold of one entry
// raised makes that entry a dead letter (the process never stops on one).
func recoverEntry(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if f, ok := r.(*store.FatalError); ok {
		*err = f
		return
	}
	*err = badEntry("the fold failed on it: %v", r)
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

// decodeReceipt decodes and checks one PUSHGO_RECEIPTS entry.
func decodeReceipt(data []byte) (*delivery.Receipt, error) {
	var r delivery.Receipt
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, badEntry("receipt: %v", err)
	}
	switch r.Kind {
	case delivery.KindSummary, delivery.KindOutcome, delivery.KindExpanded:
	default:
		return nil, badEntry("receipt: unknown kind %q", r.Kind)
	}
	return &r, nil
}

// applyReceipt folds one receipt into the batch.
func applyReceipt(b *store.Batch, m jetstream.Msg, md *jetstream.MsgMetadata) (err error) {
	defer recoverEntry(&err)
	r, err := decodeReceipt(m.Data())
	if err != nil {
		return err
	}
	if err := b.ApplyReceipt(r); err != nil {
		return fmt.Errorf("seq %d: %w", md.Sequence.Stream, err)
	}
	b.Count()
	return nil
}

// decodeOp decodes and checks one PUSHGO_OPS entry (received on subject):
// an envelope of a version and an operation this fold knows, with valid
// ids, on the subject ingest appends it to.
func decodeOp(subject string, data []byte) (*ops.Envelope, error) {
	var env ops.Envelope
	if err := fold.DecodeEnvelope(data, &env); err != nil {
		return nil, badEntry("envelope: %v", err)
	}
	if err := fold.CheckEnvelope(&env); err != nil {
		return nil, badEntry("%v", err)
	}
	if !isOpSubject(subject, &env) {
		return nil, badEntry("appended to %q, not to its entity's subject %q",
			subject, streams.OpSubject(env.ChannelID, env.Op.Kind(), env.EntityID))
	}
	return &env, nil
}

// isOpSubject reports whether subject is streams.OpSubject of env, or
// streams.MessagesSubject of its channel for a message (where ingest
// appends those whose op_id it generated), without building either.
func isOpSubject(subject string, env *ops.Envelope) bool {
	rest, ok := strings.CutPrefix(subject, streams.OpsSubjectPrefix)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, env.ChannelID); !ok || len(rest) == 0 || rest[0] != '.' {
		return false
	}
	if rest, ok = strings.CutPrefix(rest[1:], string(env.Op.Kind())); !ok {
		return false
	}
	if rest == "" {
		return env.Op == ops.MessageCreate
	}
	return rest[0] == '.' && rest[1:] == env.EntityID
}

// checkEntry reports whether this version folds the entry of stream at
// seq, without the store (nil when it does): what decides whether a dead
// letter set aside by an older version is folded now.
func checkEntry(stream, subject string, data []byte, seq uint64) (err error) {
	defer recoverEntry(&err)
	if stream == streams.Receipts {
		_, err := decodeReceipt(data)
		return err
	}
	env, err := decodeOp(subject, data)
	if err != nil {
		return err
	}
	switch env.Op.Kind() {
	case ops.KindEvent:
		_, err = fold.ApplyEvent(nil, env, seq)
	case ops.KindThing:
		_, err = fold.ApplyThing(nil, env, seq)
	}
	return err
}

// applyEntry folds one operation into the batch; an *entryError when it
// cannot be folded.
func applyEntry(b *store.Batch, it foldItem) (err error) {
	defer recoverEntry(&err)
	env, err := decodeOp(it.subject, it.data)
	if err != nil {
		return err
	}
	return Fold(b, env, it.data, it.seq)
}

// Fold applies one operation (env, decoded from raw) to the batch: the
// entity snapshot and its indexes, and the channel history. It is the whole
// of what an operation does to the projection. An operation the fold
// cannot apply (its payload) is an error that leaves the batch untouched.
//
// A create folded onto a final snapshot (a CLOSED event, a deleted Thing)
// starts the entity anew, as onto none: ingest appends it only when the
// entity was not found, which for a final one means that its operations
// all left the log and a projection pruned it (store.PruneFinal), the
// retry of its create with the same op_id (the id is derived from it). A
// replica that has not pruned it yet, a rebuild of the trimmed log and
// the replica that pruned it then fold the same snapshot, and the one
// folded over is replaced with its index keys (PutEvent, PutThing).
func Fold(b *store.Batch, env *ops.Envelope, raw []byte, seq uint64) error {
	kind := env.Op.Kind()
	switch kind {
	case ops.KindEvent:
		prev, err := b.Event(env.ChannelID, env.EntityID)
		if err != nil {
			return fmt.Errorf("seq %d: read event: %w", seq, err)
		}
		base := prev
		if env.Op == ops.EventCreate && prev != nil && prev.State == ops.EventClosed {
			base = nil
		}
		next, err := fold.ApplyEvent(base, env, seq)
		if err != nil {
			return &entryError{reason: err.Error()}
		}
		if err := b.PutEvent(prev, next); err != nil {
			return err
		}
	case ops.KindThing:
		prev, err := b.Thing(env.ChannelID, env.EntityID)
		if err != nil {
			return fmt.Errorf("seq %d: read thing: %w", seq, err)
		}
		base := prev
		if env.Op == ops.ThingCreate && prev != nil && prev.State == ops.ThingDeleted {
			base = nil
		}
		next, err := fold.ApplyThing(base, env, seq)
		if err != nil {
			return &entryError{reason: err.Error()}
		}
		if err := b.PutThing(prev, next); err != nil {
			return err
		}
	}
	b.AppendHistory(env, raw, seq)
	b.PutOp(env, seq)
	return nil
}

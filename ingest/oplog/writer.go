// Package oplog appends validated operations to PUSHGO_OPS: it decides the
// lifecycle (404, 409), recognises retried op_ids, and appends with the
// entity's expected last subject sequence so that two writers racing on one
// entity, in one process or in several, cannot both win. A message whose
// op_id the gateway generated has no race to lose: it goes to its channel's
// messages subject with no expectation (appendMessage).
//
// In a cluster a direct get may be answered by a follower that has not yet
// applied a write another ingest replica got acknowledged a moment ago. So
// the entity's state on the happy path may come from any replica (a stale
// one is caught by the append's expected sequence, which the leader
// checks, and read again from the leader), but every answer that rests on
// a read and no compare-and-swap rests on the leader's (leaderread): not
// found (404), a conditional refusal (sequence_mismatch), an unchanged
// skip, a linked Thing's existence, a retry's original.
package oplog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/broker/storage"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// Options configure a Writer.
type Options struct {
	// AppendTimeout bounds one append: the reads and the publish until its
	// PubAck. Past it the client gets 503 and may retry with the same op_id.
	// Default 5s.
	AppendTimeout time.Duration
	// CachedEntities bounds the entity-state cache. Default 200,000
	// (about 40 MB).
	CachedEntities int
	// Appended, when set, is told of every operation the broker stored
	// (its sequence, subject and data, which nobody changes afterwards),
	// in the broker's order, from the goroutine that reads the PubAcks: it
	// must not block. The gateway hands them to the projector of the same
	// process (consume.LocalFeed), which then need not have the broker
	// deliver them.
	Appended func(seq uint64, subject string, data []byte)
	// FindOp, when set, finds a channel's operation by its op_id in the
	// projection (readfwd.Forwarder.FindOp), once the projector has folded
	// the subject it would be on (the entity's of kind and entityID, or the
	// channel's messages subject for a message, entityID ""). It is asked
	// only when an operation other than a create carries an op_id the
	// gateway generated (ids.IsGenerated): a sender sending back what a 503
	// gave it, for an operation appended without a message id, which the
	// broker's duplicate window does not know. A message is on the
	// channel's messages subject, where no expected sequence finds it; an
	// update or a close may have later operations of its entity after it
	// (or a close, which would refuse the retry as event_closed). Without
	// FindOp such an operation is appended as a new one (the writer's own
	// tests). Its answer's Seq is 0 when the channel has no such operation.
	FindOp func(ctx context.Context, channelID, opID string, kind ops.Kind, entityID string) (op reads.OpData, aerr *apierr.Error)
	// FindEntity, when set, reads the head of an entity from the
	// projection (readfwd.Forwarder.FindEntity). It is asked when the log
	// holds no operation of an entity an update, a close, a deletion or a
	// link names: its operations may all have aged out of PUSHGO_OPS
	// (PUSHGO_RETENTION) while the projection keeps its snapshot, and a
	// Thing not updated for a retention, or an incident open as long, is
	// still there for every reader. Without FindEntity (the writer's own
	// tests) such an entity is not found (404), as before it was asked.
	FindEntity func(ctx context.Context, channelID string, kind ops.Kind, id string) (reads.EntityHead, *apierr.Error)
	// ThingMarks, when set, is told of every Thing operation appended or
	// found already appended (its channel and sequence), for the reads
	// that select Things (readfwd.Forwarder.FollowThingWrites).
	ThingMarks *ThingMarks
	// Disk, when set, measures the disk under the embedded broker's store
	// (broker.Embedded.Disk). While it is full an append is refused 507
	// store_full before anything is published (a retry of one stored is
	// answered as the first time), and a publish the broker
	// did not answer is answered so too, not 503 "retry in 1 s": JetStream
	// answers no write it failed to store, and fails every one on a full
	// disk. Nil with an external broker.
	Disk func() storage.Disk
	// Now is the clock of accepted_at. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Writer appends operations. It is safe for concurrent use.
type Writer struct {
	js      jetstream.JetStream
	pub     *publisher
	ops     *leaderread.Stream
	opts    Options
	log     *slog.Logger
	stripes *stripes
	// stopWatch stops the log's stall watch (leaderread.Stream.WatchStalls).
	stopWatch func()
}

// New returns a Writer over PUSHGO_OPS, which streams.Ensure created.
func New(ctx context.Context, js jetstream.JetStream, opts Options) (*Writer, error) {
	if opts.AppendTimeout <= 0 {
		opts.AppendTimeout = 5 * time.Second
	}
	if opts.CachedEntities <= 0 {
		opts.CachedEntities = 200_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", streams.Ops, err)
	}
	pub, err := newPublisher(js.Conn(), opts.Appended)
	if err != nil {
		return nil, err
	}
	w := &Writer{js: js, pub: pub, ops: leaderread.New(js, s), opts: opts, log: opts.Logger, stripes: newStripes(4096, opts.CachedEntities)}
	// A "none" of the log is taken for a 404 only when its server has not
	// stalled a moment before (leaderread.Stream.ConfirmNone).
	w.stopWatch = w.ops.WatchStalls()
	return w, nil
}

// PublishAside publishes m, a message for another stream than the log (an
// alert key's claim in its bucket), through the writer's pipeline and
// waits for its PubAck, within the append timeout: what
// jetstream.PublishMsg does, without its request-reply per publish and its
// PubAck decoded with encoding/json (14 of the 20 µs of a claim, make
// bench's Dynatrace profile of 3 December). The broker's refusal is its
// *jetstream.APIError (cas.Lost tells a lost race). m is not handed to the
// local fold (Options.Appended); m.Reply is overwritten.
func (w *Writer) PublishAside(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	ctx, release := boundAppend(ctx, w.opts.AppendTimeout)
	defer release()
	return w.pub.publishAside(ctx, m)
}

// Close stops the writer's subscription to its publish acknowledgements.
// An Append after Close appends nothing and answers 503.
func (w *Writer) Close() {
	w.pub.close()
	w.stopWatch()
}

// Result is the outcome of an accepted operation.
type Result struct {
	OpID     string
	EntityID string
	ThingID  string
	// Seq is the stream sequence of the operation (of the original, when
	// Replayed).
	Seq uint64
	// Replayed is true when the op_id had already been accepted with the
	// same body: nothing was appended, the first answer is repeated.
	Replayed bool
	// Unchanged is true when the operation carried a ContentHash equal to
	// that of the open entity's latest operation: nothing was appended.
	Unchanged bool
}

// backoffStep is the unit of the jittered wait (cas.Backoff) after losing
// a compare-and-swap race to another process, so that two replicas
// hammering one entity take turns instead of colliding in lock step. The
// number of attempts is bounded by the append timeout, not by a count: a
// replica that keeps losing to a busy one gets through when the other's
// queue drains, or answers 503.
const backoffStep = 500 * time.Microsecond

// Append decides and appends v. On success the operation is durably in the
// stream (the PubAck was received) or was already there (Replayed).
// An operation refused 503 append_unavailable carries its op_id
// (apierr.Error.OpID), generated or the client's: the append may have
// landed, and only a retry with that op_id is answered as the first time.
func (w *Writer) Append(ctx context.Context, v *ops.Validated) (Result, *apierr.Error) {
	opID := v.OpID
	if opID == "" {
		opID = ids.NewOpID()
	}
	res, aerr := w.decideAndAppend(ctx, v, opID)
	if aerr != nil && aerr.Code == apierr.AppendUnavailable {
		withOpID := *aerr
		withOpID.OpID = opID
		return res, &withOpID
	}
	if aerr == nil && w.opts.ThingMarks != nil && v.Op.Kind() == ops.KindThing {
		w.opts.ThingMarks.Note(v.ChannelID, res.Seq)
	}
	return res, aerr
}

// decideAndAppend appends v with op_id opID: v.OpID, or one generated
// when the client sent none.
func (w *Writer) decideAndAppend(ctx context.Context, v *ops.Validated, opID string) (Result, *apierr.Error) {
	ctx, release := boundAppend(ctx, w.opts.AppendTimeout)
	defer release()

	clientOpID := v.OpID != ""
	if v.Op.IsCreate() {
		v.SetEntityID(ids.DeriveEntityID(v.ChannelID, string(v.Op), opID))
	}
	res := Result{OpID: opID, EntityID: v.EntityID, ThingID: v.ThingID}
	kind := v.Op.Kind()

	// refusal is why this operation is refused if it is new: its
	// validation's (a message's ttl passed, ops.Validated.RefuseIfNew), or
	// the Thing it links to (not found, deleted). It is kept until the
	// operation is known not to be a retry: one stored before its ttl
	// passed or its Thing was deleted is answered as the first time, like
	// any retry, and only a new one is refused.
	refusal := v.RefuseIfNew
	if refusal != nil && !clientOpID {
		return Result{}, refusal
	}
	if linked := cmp.Or(v.ThingID, v.PathThingID); linked != "" && kind != ops.KindThing && !v.LinkVerified {
		// A close may name a Thing deleted since its event began: both apps
		// close an event of a Thing through the Thing's path with its
		// thing_id (Apple AppEnvironment.swift closeEvent, Android
		// ChannelSubscriptionRepository.kt closeEvent), and an incident of a
		// decommissioned server could not be closed from either. The
		// deleted Thing is checked and not stored, as a path's: stored, it
		// re-linked an event of another Thing, or of none, to it. Creates
		// and updates still may not link to one.
		switch aerr := w.checkLinkedThing(ctx, v.ChannelID, linked); {
		case aerr == nil:
		case v.Op == ops.EventClose && aerr.Code == apierr.ThingDeleted:
			if p, ok := v.Payload.(*ops.EventPayload); ok {
				p.ThingID = ""
			}
			v.ThingID, res.ThingID = "", ""
		case !clientOpID || (aerr.Code != apierr.ThingNotFound && aerr.Code != apierr.ThingDeleted):
			return Result{}, aerr
		case refusal == nil:
			refusal = aerr
		}
	}

	if v.Op == ops.MessageCreate && !clientOpID {
		return w.appendMessage(ctx, v, res)
	}
	if clientOpID && (v.Op == ops.MessageCreate || !v.Op.IsCreate()) && w.opts.FindOp != nil && ids.IsGenerated(opID) {
		// The retry of an operation appended without a message id (its
		// op_id was generated): found in the projection, or appended now.
		// (A create's derived id finds its retry by itself.)
		entityID := v.EntityID
		if kind == ops.KindMessage {
			entityID = ""
		}
		op, aerr := w.opts.FindOp(ctx, v.ChannelID, opID, kind, entityID)
		if aerr != nil {
			return Result{}, aerr
		}
		if op.Seq != 0 && op.EntityType == kind && op.EntityID == v.EntityID {
			return w.replayIndexed(ctx, res, op.Seq, v.BodyHash)
		}
	}

	subject := streams.OpSubject(v.ChannelID, kind, v.EntityID)
	st := w.stripes.of(subject)
	st.mu.Lock()
	defer st.mu.Unlock()

	data, err := w.encode(v, opID)
	if err != nil {
		w.log.Error("oplog: encode operation", "op", v.Op, "err", err)
		return Result{}, apierr.New(apierr.InternalError)
	}

	fresh := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := cas.Backoff(ctx, attempt, backoffStep); err != nil {
				w.log.Warn("oplog: gave up after repeated conflicts", "subject", subject, "attempts", attempt)
				return Result{}, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "too many concurrent writers on this entity; retry with the same op_id", RetryAfter: 1}
			}
		}
		// A create reads nothing on its first attempt: its id is derived
		// from its op_id, so the entity exists only if that op_id was
		// used before (a retry), and the append's expected sequence (0)
		// makes the broker refuse that case (a lost race; a clustered
		// stream may answer a duplicate of the window first, with the
		// original's sequence), after which the leader is read and the
		// retry answered as before. Every /message, /event/create and
		// /thing/create saves a broker round trip that almost always
		// answered "none".
		var (
			cur    entityState
			leader bool
			aerr   *apierr.Error
		)
		switch {
		case v.Op.IsCreate() && !fresh && !clientOpID:
			// A generated op_id is new: nothing to look up.
		case v.Op.IsCreate() && !fresh:
			cur, _ = st.get(subject)
		default:
			cur, leader, aerr = w.state(ctx, st, entityRef{v.ChannelID, kind, v.EntityID, subject}, fresh, !v.Op.IsCreate())
		}
		if aerr != nil {
			return Result{}, aerr
		}
		if attempt == 0 && clientOpID && v.Op.IsCreate() && kind != ops.KindMessage && !cur.exists {
			if r, aerr, found := w.agedCreate(ctx, res, v, kind, subject); found {
				return r, aerr
			}
		}
		// A retry of the entity's latest operation. An op_id's scope is its
		// channel and route (the broker's duplicate key, a create's derived
		// id): the same op_id on another route of this entity (an update
		// sent with its create's op_id) is another operation.
		if clientOpID && cur.exists && cur.opID == opID && cur.op == v.Op {
			return w.replay(res, cur.seq, cur.bodyHash, v.BodyHash)
		}
		if v.Op.IsCreate() && cur.exists {
			// The derived id is taken: by this op_id's create, followed by
			// later operations (a late retry).
			return w.replayCreate(ctx, res, subject, v.BodyHash)
		}
		if refusal != nil {
			return w.replayOrRefuse(ctx, st, res, subject, v, opID, data, fresh, refusal)
		}
		if !v.Op.IsCreate() {
			if !cur.exists { // the leader's answer (confirmNone)
				return Result{}, notFound(kind)
			}
			// A close or a deletion is final, and a follower holds a prefix
			// of the leader's log: a closed state, however read, is the
			// leader's too.
			if cur.closed() {
				if clientOpID {
					if r, aerr, found := w.probeDuplicate(ctx, res, subject, v, opID, data); found {
						return r, aerr
					}
				}
				return Result{}, lifecycleConflict(kind)
			}
			// A cached state, or a follower's, may be behind another
			// replica's write: decide a skip or a conditional refusal only
			// on the leader's answer.
			if v.ExpectSeq != 0 && cur.seq != v.ExpectSeq {
				if !leader {
					fresh = true
					continue
				}
				return Result{}, &apierr.Error{Code: apierr.SequenceMismatch, Detail: apierr.Lookup(apierr.SequenceMismatch).Message}
			}
			// A skip appends nothing, so no compare-and-swap would catch a
			// stale state: confirm it on the leader. A refresh is appended
			// with the expected sequence, which catches it.
			same := v.ContentHash != "" && cur.contentHash == v.ContentHash
			if same && !leader && !v.RefreshIfUnchanged {
				fresh = true
				continue
			}
			if same && !v.RefreshIfUnchanged {
				res.Seq, res.Unchanged = cur.seq, true
				return res, nil
			}
			if p, ok := v.Payload.(*ops.EventPayload); ok && v.RefreshIfUnchanged && p.Refresh != same {
				p.Refresh = same // decided per attempt: another replica may have changed the content
				if data, err = w.encode(v, opID); err != nil {
					w.log.Error("oplog: encode operation", "op", v.Op, "err", err)
					return Result{}, apierr.New(apierr.InternalError)
				}
			}
		}

		ack, err := w.publish(ctx, subject, v, opID, data, cur.expectSeq(), clientOpID)
		if err == nil {
			if ack.Duplicate {
				// Same op_id within the dedup window, appended before under
				// another latest state: answer as the first time, or conflict.
				st.forget(subject)
				return w.replayAt(ctx, res, ack.Sequence, v.BodyHash)
			}
			if v.Op != ops.MessageCreate || clientOpID {
				// A message is never written again, and its state serves
				// only a retry of a client op_id: the cache keeps the
				// states of events and things, which updates read.
				st.put(subject, entityState{exists: true, seq: ack.Sequence, op: v.Op, opID: opID, bodyHash: v.BodyHash, contentHash: v.ContentHash}, w.stripes.perCap)
			}
			res.Seq = ack.Sequence
			return res, nil
		}
		st.forget(subject)
		if cas.Lost(err) || inProcess(err) {
			fresh = true // another process wrote this entity: re-read and re-decide
			continue
		}
		if errors.Is(err, errDiskFull) && clientOpID {
			// Refused before the broker saw it, whose duplicate check
			// would have answered a retry of an operation it holds: a
			// create decided from the cache, or an update followed by a
			// later one. Reads still work on a full disk: read the log
			// (a retry found is answered as the first time), then ask the
			// broker's duplicate window, which writes nothing.
			if !fresh {
				fresh = true
				continue
			}
			if !v.Op.IsCreate() {
				if r, aerr, found := w.probeDuplicate(ctx, res, subject, v, opID, data); found {
					return r, aerr
				}
			}
		}
		return Result{}, w.unavailable("append", subject, err)
	}
}

// entityRef names an entity and its subject in the log.
type entityRef struct {
	channelID string
	kind      ops.Kind
	id        string
	subject   string
}

// state returns the entity's latest state: from the cache unless fresh,
// else from the log, where a fresh read asks the stream's leader and
// another any replica. leader reports whether the state is the leader's
// answer (as a direct get is when the stream has one replica). With
// confirmNone, a state that says the entity does not exist always is the
// leader's: a follower's "none" is asked again of the leader, since the
// create may have been acknowledged through another replica a moment ago;
// and when the leader holds nothing of the entity either, the projection
// is asked (Options.FindEntity), which keeps the snapshots of entities
// whose operations all aged out of the log, once the log has lost
// operations (leaderread.Stream.Trimmed). st.mu MUST be held.
func (w *Writer) state(ctx context.Context, st *stripe, ref entityRef, fresh, confirmNone bool) (e entityState, leader bool, aerr *apierr.Error) {
	if !fresh {
		if e, ok := st.get(ref.subject); ok {
			return e, false, nil
		}
	}
	e, leader, err := w.readLatest(ctx, ref.subject, fresh, confirmNone)
	if err != nil {
		return entityState{}, false, w.unavailable("read", ref.subject, err)
	}
	if e.exists {
		st.put(ref.subject, e, w.stripes.perCap)
		return e, leader, nil
	}
	if confirmNone && leader && w.opts.FindEntity != nil && w.ops.Trimmed(ctx) {
		// Not cached: the next append puts the entity back in the log,
		// and a state from the projection is read again until then. A log
		// that never lost an operation holds every entity: its "none" is
		// the answer, with no projection read (nor a 503 while no
		// projector answers).
		return w.agedState(ctx, ref)
	}
	return e, leader, nil
}

// agedState is the state of an entity the log holds nothing of, from the
// projection: none when the projection has no snapshot of it either.
func (w *Writer) agedState(ctx context.Context, ref entityRef) (entityState, bool, *apierr.Error) {
	head, aerr := w.opts.FindEntity(ctx, ref.channelID, ref.kind, ref.id)
	if aerr != nil {
		return entityState{}, false, aerr
	}
	if head.LastSeq == 0 {
		return entityState{}, true, nil
	}
	e := entityState{exists: true, seq: head.LastSeq, aged: true}
	switch {
	case ref.kind == ops.KindEvent && head.State == ops.EventClosed:
		e.op = ops.EventClose
	case ref.kind == ops.KindEvent:
		e.op = ops.EventUpdate
	case head.State == ops.ThingDeleted:
		e.op = ops.ThingDelete
	default:
		e.op = ops.ThingUpdate
	}
	return e, true, nil
}

// readLatest reads the entity's latest operation from the leader when
// fromLeader, else from any replica, with a "none" confirmed by the leader
// when confirmNone (leaderread.Stream.ConfirmNone: a leader in contact
// with a quorum, not a deposed one); leader reports whether the answer is
// the leader's.
func (w *Writer) readLatest(ctx context.Context, subject string, fromLeader, confirmNone bool) (entityState, bool, error) {
	replicated := w.ops.Replicated(ctx)
	leader := fromLeader || !replicated
	var m *jetstream.RawStreamMsg
	var err error
	if !leader {
		m, err = w.ops.Direct().GetLastMsgForSubject(ctx, subject)
	}
	if leader || (confirmNone && errors.Is(err, jetstream.ErrMsgNotFound)) {
		m, err = w.ops.LastForSubject(ctx, subject) // a direct get when not replicated
		leader = true
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		if confirmNone && replicated {
			// A deposed leader, resumed before it heard of the new term,
			// answers "none" from its stale store (leaderread's package
			// comment): a 404 for an event created through the new
			// leader. Its "none" is taken only once the leader confirms it
			// in contact with a quorum; else 503, and the retry finds it.
			if cerr := w.ops.ConfirmNone(ctx, subject); cerr != nil {
				return entityState{}, false, cerr
			}
		}
		return entityState{}, leader, nil
	}
	if err != nil {
		return entityState{}, false, err
	}
	return stateOf(m), leader, nil
}

// checkLinkedThing requires the Thing an event or message links to to
// exist (404 thing_not_found) and not to be deleted (409 thing_deleted).
func (w *Writer) checkLinkedThing(ctx context.Context, channelID, thingID string) *apierr.Error {
	ref := entityRef{channelID, ops.KindThing, thingID, streams.OpSubject(channelID, ops.KindThing, thingID)}
	st := w.stripes.of(ref.subject)
	st.mu.Lock()
	cur, leader, aerr := w.state(ctx, st, ref, false, true)
	if aerr == nil && cur.exists && !cur.closed() && !leader {
		// Deleted is final, so a deletion however read can be trusted,
		// and "none" is the leader's already; "alive" cannot (another
		// replica may have deleted it, and no compare-and-swap checks the
		// link), so ask the leader.
		cur, _, aerr = w.state(ctx, st, ref, true, true)
	}
	st.mu.Unlock()
	switch {
	case aerr != nil:
		return aerr
	case !cur.exists:
		return apierr.Field(apierr.ThingNotFound, "thing_id")
	case cur.closed():
		return apierr.Field(apierr.ThingDeleted, "thing_id")
	}
	return nil
}

func (w *Writer) encode(v *ops.Validated, opID string) ([]byte, error) {
	// The payload's JSON is needed only until the envelope has copied it:
	// a pooled buffer holds it, where json.Marshal returned a copy of its
	// own for each operation.
	buf := payloadBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledPayload {
			payloadBufs.Put(buf)
		}
	}()
	// Deterministic: external_ids is a map, and equal operations should be
	// equal bytes in the log.
	if err := json.MarshalWrite(buf, v.Payload, json.Deterministic(true)); err != nil {
		return nil, err
	}
	payload := buf.Bytes()
	return appendEnvelope(make([]byte, 0, len(payload)+envelopeOverhead), ops.Envelope{
		V: ops.EnvelopeVersion, Op: v.Op, ChannelID: v.ChannelID, OpID: opID, EntityID: v.EntityID,
		AcceptedAt: w.opts.Now().UnixMilli(), BodyHash: v.BodyHash, Payload: payload,
	})
}

// payloadBufs pools encode's payload buffers; one grown past
// maxPooledPayload (a large integration report) is left to the collector.
var payloadBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledPayload = 64 << 10

// envelopeOverhead is about what an envelope adds to its payload.
const envelopeOverhead = 320

// appendEnvelope appends e as json.Marshal(e) writes it, byte for byte
// (TestEnvelopeEncodingIsTheJSONPackages), without reflection. e.Payload
// must be one valid JSON value as json.Marshal writes it (compact).
func appendEnvelope(dst []byte, e ops.Envelope) ([]byte, error) {
	var err error
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	for _, f := range [...]struct{ name, value string }{
		{`,"op":`, string(e.Op)}, {`,"channel_id":`, e.ChannelID}, {`,"op_id":`, e.OpID}, {`,"entity_id":`, e.EntityID},
	} {
		dst = append(dst, f.name...)
		if dst, err = jsontext.AppendQuote(dst, f.value); err != nil {
			return nil, err
		}
	}
	dst = append(dst, `,"accepted_at":`...)
	dst = strconv.AppendInt(dst, e.AcceptedAt, 10)
	dst = append(dst, `,"body_hash":`...)
	if dst, err = jsontext.AppendQuote(dst, e.BodyHash); err != nil {
		return nil, err
	}
	dst = append(dst, `,"payload":`...)
	if len(e.Payload) == 0 {
		return nil, errors.New("envelope without a payload")
	}
	dst = append(dst, e.Payload...)
	return append(dst, '}'), nil
}

// dedupID is the Nats-Msg-Id of an operation: unique per channel, route and
// op_id, which is exactly the scope of the idempotency contract.
func dedupID(channelID string, op ops.Name, opID string) string {
	return channelID + ":" + string(op) + ":" + opID
}

// appendMessage appends a message whose op_id the gateway generated to its
// channel's messages subject (streams.MessagesSubject), with no read, no
// lock and no expected sequence: the op_id is new, and nobody writes a
// message again, so there is nothing for a per-entity subject's
// compare-and-swap to catch. A sender can send the op_id back only after
// the answer that gave it, when the message is in the log: Append finds it
// then through the projection (Options.FindOp). One subject per channel
// instead of one per message spares the broker a subject's state for
// every message it keeps.
func (w *Writer) appendMessage(ctx context.Context, v *ops.Validated, res Result) (Result, *apierr.Error) {
	data, err := w.encode(v, res.OpID)
	if err != nil {
		w.log.Error("oplog: encode operation", "op", v.Op, "err", err)
		return Result{}, apierr.New(apierr.InternalError)
	}
	subject := streams.MessagesSubject(v.ChannelID)
	if w.DiskFull() != nil {
		return Result{}, w.unavailable("append", subject, errDiskFull)
	}
	ack, err := w.pub.publish(ctx, opMsg(subject, v, res.OpID, data, false))
	if err != nil {
		return Result{}, w.unavailable("append", subject, err)
	}
	res.Seq = ack.Sequence
	return res, nil
}

// publish appends an operation to its entity's subject, expecting
// expectSeq as the subject's last sequence (0: none).
func (w *Writer) publish(ctx context.Context, subject string, v *ops.Validated, opID string, data []byte, expectSeq uint64, clientOpID bool) (*jetstream.PubAck, error) {
	if w.DiskFull() != nil {
		return nil, errDiskFull
	}
	m := opMsg(subject, v, opID, data, clientOpID)
	m.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(expectSeq, 10)}
	return w.pub.publish(ctx, m)
}

// opMsg is the broker message of an operation: its data and the headers
// every operation carries.
func opMsg(subject string, v *ops.Validated, opID string, data []byte, clientOpID bool) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header[streams.HeaderOp] = []string{string(v.Op)}
	m.Header[streams.HeaderOpID] = []string{opID}
	m.Header[streams.HeaderBodyHash] = []string{v.BodyHash}
	if v.ContentHash != "" {
		m.Header[streams.HeaderContentHash] = []string{v.ContentHash}
	}
	if clientOpID {
		// Generated op_ids cannot be retried by the client, so only client
		// op_ids spend an entry of the broker's duplicate window.
		m.Header[jetstream.MsgIDHeader] = []string{dedupID(v.ChannelID, v.Op, opID)}
	}
	return m
}

// probeDuplicate answers a retried op_id whose entity has since been closed
// or deleted by another operation. It publishes with the op's Nats-Msg-Id
// and an expectation that can never be met, which the broker checks after
// the duplicate window: a known op_id comes back as a duplicate ack with
// the original sequence, and an unknown one is refused without being
// stored.
//
// Which expectation depends on the stream's replicas, asked each time
// (a probe is rare: a retry meeting a closed entity). A single replica
// checks the duplicate window before every expectation but the last
// Nats-Msg-Id, so that is the one. A replicated stream's leader checks
// the window and the expected last sequence before it proposes the
// message, and the last Nats-Msg-Id only when applying it; a message
// refused there (nats-server 2.15.2) leaves its id "in process", so that
// every later probe of it is answered 503, and stalls the stream: its
// next appends, of every entity, went unanswered for the half minute
// TestRefusedOpIDIsRefusedAgainOnACluster was first run with. So a
// replicated stream is probed with an expected last sequence no stream
// reaches, refused before anything is proposed.
//
// Only the broker's refusal of that expectation means "not a duplicate";
// any other failure answers 503, never a 409 for an op that may be stored.
func (w *Writer) probeDuplicate(ctx context.Context, res Result, subject string, v *ops.Validated, opID string, data []byte) (Result, *apierr.Error, bool) {
	info, err := w.ops.Direct().Info(ctx)
	if err != nil {
		return Result{}, w.unavailable("probe: stream info", subject, err), true
	}
	expect, refused := jetstream.WithExpectLastMsgID("pushgo-probe-never-matches"), jsErrCodeWrongLastMsgID
	if info.Config.Replicas > 1 {
		expect, refused = jetstream.WithExpectLastSequence(math.MaxInt64), jetstream.JSErrCodeStreamWrongLastSequence
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(streams.HeaderOp, string(v.Op))
	m.Header.Set(streams.HeaderOpID, opID)
	ack, err := w.js.PublishMsg(ctx, m, jetstream.WithMsgID(dedupID(v.ChannelID, v.Op, opID)), expect)
	var apiErr *jetstream.APIError
	switch {
	case err == nil && !ack.Duplicate:
		// Cannot happen (the expectation never matches); treat as unknown.
		return Result{}, w.unavailable("probe", subject, errors.New("probe was stored")), true
	case errors.As(err, &apiErr) && apiErr.ErrorCode == refused:
		return Result{}, nil, false
	case err != nil:
		return Result{}, w.unavailable("probe", subject, err), true
	}
	r, aerr := w.replayAt(ctx, res, ack.Sequence, v.BodyHash)
	return r, aerr, true
}

// replayOrRefuse answers an operation refused if new (refusal: its ttl
// passed, or its linked Thing refuses it): as the first time when it is a
// retry of an operation stored before, else with refusal; it appends
// nothing. cur, read with fresh, was neither its entity's latest operation
// nor, for a create, an entity already there. st.mu MUST be held.
func (w *Writer) replayOrRefuse(ctx context.Context, st *stripe, res Result, subject string, v *ops.Validated, opID string, data []byte, fresh bool, refusal *apierr.Error) (Result, *apierr.Error) {
	if v.Op.IsCreate() {
		// A create's id is derived from its op_id: it was stored if its
		// entity exists. A cached "none" may predate this process.
		if !fresh {
			cur, _, aerr := w.state(ctx, st, entityRef{subject: subject}, true, false) // the projection is not asked
			if aerr != nil {
				return Result{}, aerr
			}
			if cur.exists {
				return w.replayCreate(ctx, res, subject, v.BodyHash)
			}
		}
		return Result{}, refusal
	}
	// An earlier operation of the entity, within the dedup window.
	if r, aerr, found := w.probeDuplicate(ctx, res, subject, v, opID, data); found {
		return r, aerr
	}
	return Result{}, refusal
}

// replay answers a retried op_id from the hash recorded with the original.
func (w *Writer) replay(res Result, seq uint64, storedHash, bodyHash string) (Result, *apierr.Error) {
	if storedHash != bodyHash {
		return Result{}, apierr.New(apierr.OpIDConflict)
	}
	res.Seq, res.Replayed = seq, true
	return res, nil
}

// replayAt answers a retried op_id whose original is at seq.
func (w *Writer) replayAt(ctx context.Context, res Result, seq uint64, bodyHash string) (Result, *apierr.Error) {
	// seq is the broker's: the leader holds it even when a follower does
	// not yet (Msg asks the leader then).
	m, err := w.ops.Msg(ctx, seq)
	if err != nil {
		return Result{}, w.unavailable("read original", fmt.Sprint(seq), err)
	}
	return w.replay(res, seq, m.Header.Get(streams.HeaderBodyHash), bodyHash)
}

// replayIndexed answers an op_id the projection's index found at seq. The
// index may hold an operation retention has removed from the log a moment
// ago (the projection prunes after it): that one is answered as a replay,
// as replayCreate does, since its id is derived and no stored body is left
// to compare against.
func (w *Writer) replayIndexed(ctx context.Context, res Result, seq uint64, bodyHash string) (Result, *apierr.Error) {
	m, err := w.ops.Msg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		res.Seq, res.Replayed = seq, true
		return res, nil
	case err != nil:
		return Result{}, w.unavailable("read original", fmt.Sprint(seq), err)
	}
	return w.replay(res, seq, m.Header.Get(streams.HeaderBodyHash), bodyHash)
}

// agedCreate answers a create whose entity the log holds nothing of but
// the projection has: its operations all aged out of the log (or were
// purged), and the create is a retry of the one that made it, come back
// after the retention (its id is derived from its op_id), answered as a
// replay; there is no stored body left to compare. Appended, it would
// have made the entity again over its snapshot (a new created_at, the
// title it was created with, a push). found is false when the create is to
// be appended as before: the projection has no such entity, or the log
// still holds some of it (the append's expected sequence then refuses it,
// and the retry is answered from the log, its body compared), or no
// projector answered (a create is not refused for that; the aged retry is
// then appended, as before this check).
//
// Asked only once the log has lost operations (leaderread.Stream.Trimmed):
// a log that never did holds every entity, and a create then costs no
// projection read. After that, a create with the sender's op_id whose
// entity the writer's cache does not hold costs one (in process in the
// default binary, a read request to a projector otherwise), and the leader
// read of its subject only when the projection has the entity.
func (w *Writer) agedCreate(ctx context.Context, res Result, v *ops.Validated, kind ops.Kind, subject string) (Result, *apierr.Error, bool) {
	if w.opts.FindEntity == nil || !w.ops.Trimmed(ctx) {
		return Result{}, nil, false
	}
	head, aerr := w.opts.FindEntity(ctx, v.ChannelID, kind, v.EntityID)
	if aerr != nil {
		w.log.Debug("oplog: a create's aged entity not looked up", "subject", subject, "err", aerr.Error())
		return Result{}, nil, false
	}
	if head.LastSeq == 0 {
		return Result{}, nil, false
	}
	cur, _, err := w.readLatest(ctx, subject, true, true)
	if err != nil {
		// Appended, it could make the aged entity again: a retry (the
		// sender's op_id) decides it later.
		return Result{}, w.unavailable("read", subject, err), true
	}
	if cur.exists {
		return Result{}, nil, false
	}
	res.Seq, res.Replayed = head.LastSeq, true
	return res, nil, true
}

// replayCreate answers a retried create whose entity has later operations:
// the entity's first message is the create. If retention has removed it,
// the retry is answered as a replay: the derived id guarantees it cannot
// make a second entity, and no stored body is left to compare against.
func (w *Writer) replayCreate(ctx context.Context, res Result, subject, bodyHash string) (Result, *apierr.Error) {
	m, err := w.ops.NextForSubject(ctx, subject, 1)
	if err != nil {
		return Result{}, w.unavailable("read create", subject, err)
	}
	first := stateOf(m)
	if !first.op.IsCreate() {
		res.Seq, res.Replayed = first.seq, true
		return res, nil
	}
	return w.replay(res, first.seq, first.bodyHash, bodyHash)
}

func (w *Writer) unavailable(what, subject string, err error) *apierr.Error {
	if errors.Is(err, nats.ErrMaxPayload) {
		// Not "retry": the same operation is refused again. Validation
		// bounds an operation's content (ops.MaxContentBytes) well below
		// the broker's limit; this is the backstop.
		w.log.Warn("oplog: operation over the broker's message limit; refused", "step", what, "subject", subject)
		return apierr.New(apierr.OperationTooLarge)
	}
	if storage.Full(err) {
		// Not "retry": every write fails until an operator frees storage.
		w.log.Warn("oplog: the broker's storage is full; operation refused", "step", what, "subject", subject, "err", err)
		return storage.Refusal()
	}
	if errors.Is(err, errDiskFull) {
		// Not published: nothing of it was stored. A publish that was
		// made and went unanswered stays a 503 with its op_id, full disk
		// or not (it may have been stored: the disk measures full below
		// 1 MiB free, where writes still fit); its retry is answered 507
		// once the log shows it was not.
		if aerr := w.DiskFull(); aerr != nil {
			w.log.Warn("oplog: the disk under the broker's store is full; operation refused", "step", what, "subject", subject)
			return aerr
		}
		return storage.Refusal()
	}
	if errors.Is(err, leaderread.ErrUnconfirmed) {
		// The log's "none" was not confirmed (a deposed leader's, perhaps):
		// the client retries; nothing failed.
		w.log.Info("oplog: the log's \"none\" for the entity was not confirmed; answered retry", "step", what, "subject", subject, "err", err)
	} else {
		w.log.Warn("oplog: broker did not answer", "step", what, "subject", subject, "err", err)
	}
	return &apierr.Error{Code: apierr.AppendUnavailable, Detail: apierr.Lookup(apierr.AppendUnavailable).Message, RetryAfter: 1}
}

// errDiskFull is a publish not made: the disk under the broker's store is
// full (Options.Disk). It is checked at the publish, after the decision,
// so that a retry of an operation already stored is still answered as the
// first time (a 507 there told a client whose answer was lost that its
// stored write failed); unavailable answers it 507.
var errDiskFull = errors.New("oplog: the disk under the broker's store is full; not published")

// DiskFull is the refusal of a write while the disk under the embedded
// broker's store is full (Options.Disk): 507 store_full saying which disk,
// without Retry-After; nil while it is not (or with an external broker).
func (w *Writer) DiskFull() *apierr.Error { return DiskRefusal(w.opts.Disk) }

// DiskRefusal is 507 store_full naming the disk while disk (nil: not
// measured) says it is full, else nil.
func DiskRefusal(disk func() storage.Disk) *apierr.Error {
	if disk == nil {
		return nil
	}
	if d := disk(); d.Full() {
		return &apierr.Error{Code: apierr.StoreFull, Detail: d.Why()}
	}
	return nil
}

func notFound(k ops.Kind) *apierr.Error {
	if k == ops.KindEvent {
		return apierr.Field(apierr.EventNotFound, "event_id")
	}
	return apierr.Field(apierr.ThingNotFound, "thing_id")
}

func lifecycleConflict(k ops.Kind) *apierr.Error {
	if k == ops.KindEvent {
		return apierr.Field(apierr.EventClosed, "event_id")
	}
	return apierr.Field(apierr.ThingDeleted, "thing_id")
}

// inProcess reports whether the broker refused the publish because another
// one with the same Nats-Msg-Id (the same client op_id, sent through
// another replica a moment before) is between a replicated stream
// leader's proposal and its apply: the retry after a backoff finds it
// stored, and is answered as its replay, or finds it refused.
func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeMsgIDInProcess
}

// jsErrCodeMsgIDInProcess is JetStream's "duplicate message id is in
// process" error code.
const jsErrCodeMsgIDInProcess jetstream.ErrorCode = 10158

// jsErrCodeWrongLastMsgID is JetStream's "wrong last msg ID" error code
// (the client library names "wrong last sequence", 10071, but not this).
const jsErrCodeWrongLastMsgID jetstream.ErrorCode = 10070

// EventStatus is what the log (or, once the log lost its operations, the
// projection) says of an Event: whether it exists, whether it is closed,
// and when its close was appended (zero when the close is known from the
// projection only: it aged out of the log with the retention).
type EventStatus struct {
	Exists, Closed bool
	ClosedAt       time.Time
}

// EventStatus reads the state of a channel's Event on the log's leader, a
// "none" confirmed as an append's is, and from the projection when the log
// holds nothing of it (Options.FindEntity) once the log has lost
// operations. For the alert keys' sweep (alerts.Options.Keep): an open
// Event is never reported closed, whatever replica or cache is behind.
func (w *Writer) EventStatus(ctx context.Context, channelID, eventID string) (EventStatus, error) {
	ref := entityRef{channelID, ops.KindEvent, eventID, streams.OpSubject(channelID, ops.KindEvent, eventID)}
	m, err := w.ops.LastForSubject(ctx, ref.subject)
	switch {
	case err == nil:
		st := stateOf(m)
		if st.closed() {
			return EventStatus{Exists: true, Closed: true, ClosedAt: m.Time}, nil
		}
		return EventStatus{Exists: true}, nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return EventStatus{}, err
	}
	if w.ops.Replicated(ctx) {
		if err := w.ops.ConfirmNone(ctx, ref.subject); err != nil {
			return EventStatus{}, err
		}
	}
	if w.opts.FindEntity == nil || !w.ops.Trimmed(ctx) {
		return EventStatus{}, nil
	}
	st, _, aerr := w.agedState(ctx, ref)
	if aerr != nil {
		return EventStatus{}, aerr
	}
	return EventStatus{Exists: st.exists, Closed: st.exists && st.closed()}, nil
}

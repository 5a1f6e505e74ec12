// Package readfwd forwards validated reads from ingest's HTTP front to the
// projector replicas over NATS request-reply. Any number of replicas share
// a queue group, so a scaled deployment needs no path routing and no
// service discovery: one HTTP front, reads answered by whichever replica
// the broker picks.
package readfwd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// Local is a projector in this process (projector.Projector). A read it
// answers skips the broker's request and reply: four hops through a broker
// the write load keeps busy, for an answer the projector gives in
// microseconds.
type Local interface {
	// ServeLocal answers req as the projector answers it over NATS (after
	// its fold has committed req.MinSeq). ok is false while it serves no
	// reads (starting, rebuilding, closed): the read then goes to a
	// replica over the broker.
	ServeLocal(req *reads.Request) (resp reads.Response, ok bool)
}

// Forwarder sends reads to projectors. It is safe for concurrent use.
type Forwarder struct {
	local   Local              // the projector in this process, or nil
	nc      *nats.Conn         // the reads' own connection (ownConn)
	stream  jetstream.Stream   // its info is the leader's
	ops     *leaderread.Stream // reads of its messages as the leader holds them
	replies *replies
	timeout time.Duration
	log     *slog.Logger
	// receipts is the delivery receipts' stream (PUSHGO_RECEIPTS), whose
	// info, the leader's, is /send_status's barrier in them.
	receipts jetstream.Stream
	// thingWrites is the barrier of a Thing selection (FollowThingWrites),
	// or nil: the projection as it is.
	thingWrites ThingWrites
}

// ThingWrites knows the Thing writes this process acknowledged (an
// *oplog.ThingMarks).
type ThingWrites interface {
	// Last is a sequence at or after every Thing operation of channelID
	// this process appended (0 when none).
	Last(channelID string) uint64
}

// FollowThingWrites makes a Thing selection (reads.ThingsSelect) wait
// until the projector has folded every Thing write of the channel that tw
// knows of, so a Thing created through this process and acknowledged is
// selected by the next report. Call it before the first read.
func (f *Forwarder) FollowThingWrites(tw ThingWrites) { f.thingWrites = tw }

// New returns a Forwarder; timeout bounds one read end to end (default 5s).
// The reads go over a connection of their own, opened with nc's options
// (ownConn), and Close closes it. local, when not nil, is the projector of
// this process, asked first (the barrier still comes from the broker).
func New(ctx context.Context, nc *nats.Conn, timeout time.Duration, local Local, log *slog.Logger) (*Forwarder, error) {
	rc, err := ownConn(nc, "reads")
	if err != nil {
		return nil, fmt.Errorf("connect the reads: %w", err)
	}
	f, err := newForwarder(ctx, rc, timeout, log)
	if err != nil {
		rc.Close()
		return nil, err
	}
	f.local = local
	return f, nil
}

func newForwarder(ctx context.Context, nc *nats.Conn, timeout time.Duration, log *slog.Logger) (*Forwarder, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", streams.Ops, err)
	}
	receipts, err := js.Stream(ctx, streams.Receipts)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", streams.Receipts, err)
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := newReplies(nc)
	if err != nil {
		return nil, err
	}
	return &Forwarder{nc: nc, stream: s, ops: leaderread.New(js, s), receipts: receipts, replies: r, timeout: timeout, log: log}, nil
}

// ownConn opens a connection to the broker with nc's options (its
// servers, credentials, TLS, or in-process server), named after nc and
// purpose, for traffic that must not queue behind nc's: a connection is
// one socket and one read loop each way, and on the one the appends use a
// read's three round trips (its barrier, its request, its answer) waited
// behind the appends' publishes, their acknowledgements and the folds'
// deliveries, 10 to 50 ms each under write load for answers the broker
// and the projector give in microseconds. The caller closes it.
func ownConn(nc *nats.Conn, purpose string) (*nats.Conn, error) {
	opts := nc.Opts // set when nc connected, never changed after
	opts.Name = strings.TrimSpace(opts.Name + " " + purpose)
	return opts.Connect()
}

// Close stops receiving answers and closes the reads' connection; reads
// still waiting end with their context.
func (f *Forwarder) Close() error {
	err := f.replies.close()
	f.nc.Close()
	return err
}

// Read answers req from a projector, after the projector has folded every
// operation the read depends on that was appended before the read started:
// the entity's for a single-entity read, the channel's otherwise. The
// barrier is the stream leader's (leaderread; a stream info, which only
// the leader answers), never a follower's that may not hold the write
// yet, so a read reflects any write that got its 200 before, through any
// ingest replica. /send_status waits for the delivery receipts as well
// (receiptsBarrier).
func (f *Forwarder) Read(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error) {
	// One bound, deadline, for the barrier's round trip and the requests.
	// A selection's barrier asks no broker, and request applies the bound
	// when it leaves the process, so an answer from the in-process
	// projector makes no timer.
	deadline := time.Now().Add(f.timeout)
	selection := req.Route == reads.ThingsSelect && f.thingWrites != nil
	if !selection {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	// /send_status's barrier in the receipts is read beside the one in
	// the operations: the two round trips overlap.
	var receipts chan barrierRead
	if req.Route == reads.SendStatus {
		receipts = make(chan barrierRead, 1)
		go func() {
			seq, err := f.receiptsBarrier(ctx)
			receipts <- barrierRead{seq, err}
		}()
	}
	var barrier uint64
	var err error
	if selection {
		barrier = f.thingWrites.Last(req.ChannelID)
	} else if req.Route == reads.SendStatus && req.ChannelID == "" {
		// An op_id of any channel: the whole log's last sequence (one
		// stream info), so an operation answered 200 before is found.
		var info *jetstream.StreamInfo
		if info, err = f.stream.Info(ctx); err == nil {
			barrier = info.State.LastSeq
		}
	} else if subject := barrierSubject(req); subject != "" {
		barrier, err = f.lastSeq(ctx, subject)
	}
	if receipts != nil {
		r := <-receipts
		req.MinReceiptsSeq = r.seq
		if err == nil {
			err = r.err
		}
	}
	if err != nil {
		f.log.Warn("readfwd: barrier", "channel_id", req.ChannelID, "err", err)
		return nil, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: apierr.Lookup(apierr.BrokerUnavailable).Message, RetryAfter: 1}
	}
	data, aerr := f.request(ctx, req, barrier, deadline)
	if aerr != nil && aerr.Code == apierr.ProjectionLagging && req.Route == reads.ThingsSelect && barrier > 0 {
		// A projector more than its read wait behind this process's Thing
		// writes: the selection is answered from the projection as it is,
		// as before the marks, rather than a report refused for the lag.
		return f.request(ctx, req, 0, deadline)
	}
	return data, aerr
}

// barrierRead is a barrier read from the broker.
type barrierRead struct {
	seq uint64
	err error
}

// receiptsBarrier is /send_status's barrier in the delivery receipts: the
// receipts stream's last sequence as its leader holds it (a stream info,
// which only the leader answers, as the whole log's barrier), so the
// replica that answers has folded every receipt appended before the read
// started. Without it a replica a few receipts behind answered processing
// right after another had answered sent (the hand-on of a replica behind
// comes only past 10,000 receipts). 0 when the stream holds no receipt:
// every one aged out, and a replica that never folded them would wait for
// receipts no longer there to fold.
//
// Its cost is one more stream info for each /send_status, sent beside the
// operations' barrier, so no longer to wait: an answer of the leader's
// in-memory state, as the barrier of an op_id asked without channel_id
// already was. Sharing one info among the requests that arrive while it
// is in flight (each must wait for one sent after it arrived) would bound
// it by the round trip rather than the request rate; /send_status is a
// sender's occasional poll, and that is left until it is not.
func (f *Forwarder) receiptsBarrier(ctx context.Context) (uint64, error) {
	info, err := f.receipts.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", streams.Receipts, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	return info.State.LastSeq, nil
}

// FindOp looks the channel's operation with op_id opID up in the
// projection (reads.OpLookup), once the projector has folded every
// message of the subject the operation would be on: the event's or the
// Thing's (kind and entityID) for their operations, the channel's messages
// subject for a message (entityID ""). Seq 0 when the channel has none.
func (f *Forwarder) FindOp(ctx context.Context, channelID, opID string, kind ops.Kind, entityID string) (op reads.OpData, aerr *apierr.Error) {
	req := &reads.Request{Route: reads.OpLookup, ChannelID: channelID, OpID: opID}
	switch kind {
	case ops.KindEvent:
		req.EventID = entityID
	case ops.KindThing:
		req.ThingID = entityID
	}
	raw, aerr := f.Read(ctx, req)
	if aerr != nil && aerr.Code == apierr.RouteNotFound {
		// A projector of an older version, during an upgrade: the write
		// cannot be decided yet, and is not a 404.
		f.log.Warn("readfwd: op lookup not served by this projector version", "channel_id", channelID)
		return reads.OpData{}, &apierr.Error{Code: apierr.ReadUnavailable, Detail: apierr.Lookup(apierr.ReadUnavailable).Message, RetryAfter: 1}
	}
	if aerr != nil {
		return reads.OpData{}, aerr
	}
	if err := json.Unmarshal(raw, &op); err != nil {
		f.log.Error("readfwd: op lookup answer", "channel_id", channelID, "err", err)
		return reads.OpData{}, apierr.New(apierr.InternalError)
	}
	return op, nil
}

// FindEntity reads the head of the channel's entity of kind and id
// (reads.EntityHead) from the projection as it is, with no barrier: the
// writer asks only for an entity whose subject the log no longer holds any
// operation of, so whatever of it the projection has was folded at least
// a retention ago. The zero EntityHead when the projection has no such
// entity.
func (f *Forwarder) FindEntity(ctx context.Context, channelID string, kind ops.Kind, id string) (reads.EntityHead, *apierr.Error) {
	req := &reads.Request{Route: reads.ThingGet, ChannelID: channelID, ThingID: id}
	if kind == ops.KindEvent {
		req = &reads.Request{Route: reads.EventGet, ChannelID: channelID, EventID: id}
	}
	deadline := time.Now().Add(f.timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, aerr := f.request(ctx, req, 0, deadline)
	if aerr != nil && (aerr.Code == apierr.ThingNotFound || aerr.Code == apierr.EventNotFound) {
		return reads.EntityHead{}, nil
	}
	if aerr != nil {
		return reads.EntityHead{}, aerr
	}
	var head reads.EntityHead
	if err := json.Unmarshal(raw, &head); err != nil {
		f.log.Error("readfwd: entity head answer", "channel_id", channelID, "err", err)
		return reads.EntityHead{}, apierr.New(apierr.InternalError)
	}
	return head, nil
}

// request sends req with its barrier to a projector replica, by deadline
// (the read's) when it leaves the process. The answer may come in chunks
// (reads.Request.Chunks): one larger than the broker's max_payload is
// read whole, so no read fails for its size.
func (f *Forwarder) request(ctx context.Context, req *reads.Request, barrier uint64, deadline time.Time) (jsontext.Value, *apierr.Error) {
	req.MinSeq, req.Chunks = barrier, true
	if f.local != nil {
		// A local projector catching up hands the read to the replicas
		// (it is one of them, and may be asked again); so does one that
		// cannot serve it (rebuilding, its store failing), as a replica's
		// read_unavailable over the broker is asked again: answered to
		// the client, it was a 503 while another replica held the data.
		if resp, ok := f.local.ServeLocal(req); ok && !resp.CatchingUp && resp.ErrorCode != apierr.ReadUnavailable {
			return answerOf(resp)
		}
	}
	if d, ok := ctx.Deadline(); !ok || d.After(deadline) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, apierr.New(apierr.InternalError)
	}
	catchingUp, unavailable := 0, 0
	for {
		data, err := f.replies.request(ctx, reads.Subject(req.Route), b)
		if err != nil {
			f.log.Warn("readfwd: no answer", "route", req.Route, "err", err)
			return nil, &apierr.Error{Code: apierr.ReadUnavailable, Detail: apierr.Lookup(apierr.ReadUnavailable).Message, RetryAfter: 1}
		}
		// A success is taken out of its framing as it is: the projector
		// wrote the data from its stored bytes, and the HTTP front writes
		// it to the client as it is (reads/frame.go). Only an error is
		// decoded.
		if v, ok := reads.ResponseData(data); ok {
			return v, nil
		}
		var resp reads.Response
		if err := json.Unmarshal(data, &resp); err != nil {
			f.log.Error("readfwd: undecodable answer", "route", req.Route, "bytes", len(data), "err", err)
			return nil, apierr.New(apierr.InternalError)
		}
		// A replica that stopped serving (a rebuild, a stop) answers
		// unavailable what it was handed: asked again, the queue group
		// hands the read to another replica, when there is one.
		if resp.ErrorCode == apierr.ReadUnavailable && unavailable == 0 && ctx.Err() == nil {
			unavailable++ // once, also after answers of replicas catching up
			continue
		}
		// A replica catching up answered at once that it would not reach
		// the barrier in time; the queue group hands each ask to a replica
		// at random, so a few more find a caught-up one when there is one
		// (with two replicas, one catching up, all nine asks miss it one
		// read in 512), and with none the 503 comes in milliseconds.
		if resp.CatchingUp && catchingUp < maxCatchingUpAsks && ctx.Err() == nil {
			catchingUp++
			continue
		}
		return answerOf(resp)
	}
}

// maxCatchingUpAsks bounds the asks again after answers of replicas
// catching up (reads.Response.CatchingUp).
const maxCatchingUpAsks = 8

// answerOf is a projector's answer as the HTTP front takes it: the data,
// or the error (503s with Retry-After).
func answerOf(resp reads.Response) (jsontext.Value, *apierr.Error) {
	if resp.ErrorCode != "" {
		e := &apierr.Error{Code: resp.ErrorCode, Detail: resp.Error}
		if e.Status() == 503 {
			e.RetryAfter = 1
		}
		return nil, e
	}
	return resp.Data, nil
}

// barrierSubject is what a read must have seen: the entity's own subject
// for /thing/get and /event/get (a read of one entity waits only for that
// entity's writes), the channel's messages subject for an op lookup, the
// whole channel for lists and history, none ("") for the deadline scan.
func barrierSubject(req *reads.Request) string {
	switch req.Route {
	case reads.ThingGet:
		return streams.OpSubject(req.ChannelID, ops.KindThing, req.ThingID)
	case reads.EventGet:
		return streams.OpSubject(req.ChannelID, ops.KindEvent, req.EventID)
	case reads.OpLookup:
		// The subject the operation would be on: the entity's it names,
		// or the channel's messages subject.
		switch {
		case req.EventID != "":
			return streams.OpSubject(req.ChannelID, ops.KindEvent, req.EventID)
		case req.ThingID != "":
			return streams.OpSubject(req.ChannelID, ops.KindThing, req.ThingID)
		}
		return streams.MessagesSubject(req.ChannelID)
	case reads.ThingsSelect, reads.DeadlinesDue:
		// A selection reads the projection as it is: the last message of a
		// wildcard subject costs the broker a walk over every subject it
		// matches (100,000 Things: every report), and Dynatrace itself
		// selects from entities seen a while ago. Read waits for the Thing
		// writes this process acknowledged (FollowThingWrites), and
		// ReadConsistent is the fallback when that answer would be empty
		// (a Thing written through another replica). A deadline scan needs
		// no barrier: its close is conditional on the event's sequence.
		// Across channels, and a stale answer costs nothing: the close is
		// conditional on the event's last sequence.
		return ""
	}
	return streams.ChannelSubjects(req.ChannelID)
}

// lastSeq is the sequence of subject's last message as the stream's
// leader holds it (0 when none).
func (f *Forwarder) lastSeq(ctx context.Context, subject string) (uint64, error) {
	m, err := f.ops.LastForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// ReadConsistent answers req after the projector has folded every
// operation of the whole log appended before the call (one cheap stream
// info, no wildcard lookup); for reads whose usual barrier is none.
func (f *Forwarder) ReadConsistent(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error) {
	deadline := time.Now().Add(f.timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	info, err := f.stream.Info(ctx)
	if err != nil {
		f.log.Warn("readfwd: stream info", "err", err)
		return nil, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: apierr.Lookup(apierr.BrokerUnavailable).Message, RetryAfter: 1}
	}
	return f.request(ctx, req, info.State.LastSeq, deadline)
}

// Status asks every projector replica for its fold status with one
// request, and returns the best answer: at once the first of a replica
// whose fold runs within maxLag operations of the log's end, else, once
// the replicas have had statusGather after the first answer (or ctx
// ended), the one least behind, a running fold before a stopped one. So
// ingest is ready while any replica is. Asked of the one replica the queue
// group picked, a replica catching up (a restart, a rebuild) failed every
// ingest replica's /readyz about half the time, although reads went on,
// handed to a caught-up replica.
//
// Each replica answers on a subscription of its own beside the queue
// group's; the queue group hands the request to one of them as well, which
// then answers twice (a replica of a version before this answers only
// there). Asking the queue again after an answer out of the bound, as a
// read does, was the other way: it misses a caught-up replica by chance
// ((2/3)^8 of the checks, 4%, with two of three replicas catching up and
// eight asks), and a failed probe is what Kubernetes acts on. This costs
// one request and an answer of a few dozen bytes per replica, once per
// check (/readyz runs one at a time), and no wait in the usual case, the
// first answer within the bound.
func (f *Forwarder) Status(ctx context.Context, maxLag uint64) (reads.Status, error) {
	inbox := f.nc.NewInbox()
	sub, err := f.nc.SubscribeSync(inbox)
	if err != nil {
		return reads.Status{}, fmt.Errorf("projector status: subscribe to the answers: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	b, _ := json.Marshal(reads.Request{Route: reads.ProjectorStatus})
	// After the subscription on the same connection: the broker has it
	// before the request.
	if err := f.nc.PublishRequest(reads.Subject(reads.ProjectorStatus), inbox, b); err != nil {
		return reads.Status{}, fmt.Errorf("projector status: ask: %w", err)
	}
	var (
		best      reads.Status
		heard     bool  // best is an answer
		refusal   error // the first answer that was no status
		gathered  = ctx // the wait for more answers, once one came
		gathering bool
	)
	for {
		m, err := sub.NextMsgWithContext(gathered)
		if err != nil {
			switch {
			case heard:
				return best, nil
			case refusal != nil:
				return reads.Status{}, refusal
			}
			return reads.Status{}, fmt.Errorf("no projector answered: %w", err)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return reads.Status{}, fmt.Errorf("no projector answered: %w", nats.ErrNoResponders)
		}
		if !gathering {
			gathering = true
			var cancel context.CancelFunc
			gathered, cancel = context.WithTimeout(ctx, statusGather)
			defer cancel()
		}
		st, err := decodeStatus(m.Data)
		switch {
		case err != nil:
			if refusal == nil {
				refusal = err
			}
		case st.Error == "" && st.Lag <= maxLag:
			return st, nil
		case !heard || betterStatus(st, best):
			best, heard = st, true
		}
	}
}

// statusGather is how long Status waits for more answers after the first,
// when none so far is within the bound: the replicas answer from a few
// atomic loads, within a round trip of each other.
const statusGather = 250 * time.Millisecond

// decodeStatus reads one replica's answer to a status request: its status,
// or why it gave none (a replica not serving: rebuilding, stopping).
func decodeStatus(data []byte) (reads.Status, error) {
	var resp reads.Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return reads.Status{}, fmt.Errorf("projector status: undecodable answer: %w", err)
	}
	if resp.ErrorCode != "" {
		return reads.Status{}, fmt.Errorf("projector status: %s: %s", resp.ErrorCode, resp.Error)
	}
	var st reads.Status
	if err := json.Unmarshal(resp.Data, &st); err != nil {
		return reads.Status{}, fmt.Errorf("projector status: undecodable status: %w", err)
	}
	return st, nil
}

// betterStatus reports whether a is a better sign of readiness than b: a
// running fold before a stopped one, then the one less behind.
func betterStatus(a, b reads.Status) bool {
	if (a.Error == "") != (b.Error == "") {
		return a.Error == ""
	}
	return a.Lag < b.Lag
}

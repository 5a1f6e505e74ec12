package projector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// subscribeReads subscribes the read service on the projector's reads
// connection, opened the first time with the options of the connection
// the fold uses (the caller holds subMu). On the fold's connection, a
// read's request and its answer queued behind the operations the fold
// consumes, on one socket and one read loop each way: under write load a
// /thing/get spent 1 to 30 ms there for an answer served in 40 µs.
//
// Two subscriptions: the queue group's, where one replica answers each
// read, and the status subject's, where every replica answers (onStatus).
func (p *Projector) subscribeReads() ([]*nats.Subscription, error) {
	if p.readsNC == nil {
		opts := p.nc.Opts // set when nc connected, never changed after
		opts.Name = strings.TrimSpace(opts.Name + " projector reads")
		rc, err := opts.Connect()
		if err != nil {
			return nil, fmt.Errorf("connect the reads: %w", err)
		}
		p.readsNC = rc
	}
	queue, err := p.readsNC.QueueSubscribe(reads.SubjectPrefix+">", reads.QueueGroup, p.onRead)
	if err != nil {
		return nil, err
	}
	status, err := p.readsNC.Subscribe(reads.Subject(reads.ProjectorStatus), p.onStatus)
	if err != nil {
		_ = queue.Unsubscribe()
		return nil, fmt.Errorf("subscribe the status requests: %w", err)
	}
	// The broker has the subscriptions once this returns: a read sent on
	// another connection right after Start is answered, not refused for
	// want of a responder.
	if err := p.readsNC.Flush(); err != nil {
		_ = queue.Unsubscribe()
		_ = status.Unsubscribe()
		return nil, fmt.Errorf("subscribe the reads: %w", err)
	}
	return []*nats.Subscription{queue, status}, nil
}

// onStatus answers a status request (reads.ProjectorStatus) on the
// subscription of its own that every replica holds beside the queue
// group's, so that one request hears every replica and ingest's readiness
// takes the best answer (readfwd.Forwarder.Status). Asked of the one
// replica the queue group picked, a replica catching up (a restart, a
// rebuild) failed every ingest replica's /readyz about half the time,
// while its reads went on (handed to a replica caught up). The queue group
// still hands the request to one replica too, which answers it there as
// well: that is how a replica of a version without this subscription is
// heard, and a second answer costs the asker nothing. A status is a few
// atomic loads: it is answered on the subscription's goroutine, holding
// no place among the reads.
func (p *Projector) onStatus(m *nats.Msg) {
	p.localMu.RLock()
	serving := p.serving
	p.localMu.RUnlock()
	resp := reads.Response{ErrorCode: apierr.ReadUnavailable, Error: notServing}
	if serving {
		resp = p.serveReqSafely(&reads.Request{Route: reads.ProjectorStatus})
	}
	if err := m.Respond(encodeResponse(resp)); err != nil {
		p.log.Warn("projector: status answer not sent", "err", err)
		return
	}
	p.served.Add(1)
}

// notServing is the answer to a read delivered once serving stopped.
const notServing = "this projector is not serving reads now (rebuilding or stopping); retry"

// closeReads closes the reads connection, once no read is served.
func (p *Projector) closeReads() {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.readsNC != nil {
		p.readsNC.Close()
	}
}

// replyMaxPayload is the broker's max_payload on the connection answers
// go out on.
func (p *Projector) replyMaxPayload() int64 {
	p.subMu.Lock()
	rc := p.readsNC
	p.subMu.Unlock()
	if rc != nil {
		return rc.MaxPayload()
	}
	return p.nc.MaxPayload()
}

// onRead answers one read request. NATS calls subscription handlers one at
// a time, so each read runs on its own goroutine, bounded by the reads in
// flight (inflight; a full bound makes the request wait in the
// subscription, not fail); serveReq takes its place among
// MaxConcurrentReads once the read's barrier is folded.
//
// Once serving stopped (a rebuild about to swap the store, or a close
// after serving what was delivered) a request still delivered is answered
// read_unavailable at once: it read a store about to be discarded or nil,
// and each waited its read wait for a fold that had stopped, holding up
// the drain past its bound, after which reads ran on a closed store. The
// check and the goroutine's count are made under localMu, which
// stopServing and close take to end serving, so none is added once they
// wait.
func (p *Projector) onRead(m *nats.Msg) {
	p.localMu.RLock()
	if !p.serving {
		p.localMu.RUnlock()
		b, _ := json.Marshal(reads.Response{ErrorCode: apierr.ReadUnavailable, Error: notServing})
		_ = m.Respond(b)
		return
	}
	p.wg.Add(1)
	p.localMu.RUnlock()
	// The place among MaxConcurrentReads is taken by serveReq once the
	// read's barrier is folded: a read waiting for the fold (up to
	// ReadWait) held one, and this callback waited for one, so 64 such
	// waits held up every later read of the replica, /readyz's status
	// too, for 2 s. Here only the reads in flight are bounded.
	p.inflight <- struct{}{}
	go func() {
		defer func() { <-p.inflight; p.wg.Done() }()
		resp, chunks := p.serveSafely(m.Data)
		b := encodeResponse(resp)
		if err := p.reply(m, b, chunks); err != nil {
			p.log.Warn("projector: read answer not sent", "subject", m.Subject, "bytes", len(b), "err", err)
		}
		p.served.Add(1)
	}()
}

// encodeResponse is the answer on the wire: a success is framed by hand
// around its data (reads.EncodeResponse), which is never parsed again; an
// error is marshalled.
func encodeResponse(resp reads.Response) []byte {
	if resp.ErrorCode == "" && len(resp.Data) > 0 {
		return reads.EncodeResponse(resp.Data)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(reads.Response{ErrorCode: apierr.InternalError, Error: "encode response"})
	}
	return b
}

// reply sends the answer b to m's asker: in one message when it fits the
// broker's max_payload, else in chunks (reads.ChunkHeader) when the asker
// reads them, else as an error that says why.
func (p *Projector) reply(m *nats.Msg, b []byte, chunks bool) error {
	maxPayload := p.replyMaxPayload()
	if int64(len(b)) <= maxPayload || m.Reply == "" {
		return m.Respond(b)
	}
	if !chunks {
		p.rstats.refused.Add(1)
		b, _ = json.Marshal(reads.Response{ErrorCode: apierr.InternalError, Error: fmt.Sprintf(
			"the answer is %d bytes, over the broker's max_payload of %d, and the asker does not read answers in chunks (an ingest older than this projector)",
			len(b), maxPayload)})
		return m.Respond(b)
	}
	size := reads.ChunkBytes(maxPayload)
	n := (len(b) + size - 1) / size
	for i := range n {
		part := b[i*size : min((i+1)*size, len(b))]
		msg := &nats.Msg{Data: part, Header: nats.Header{reads.ChunkHeader: []string{reads.FormatChunk(i+1, n)}}}
		if err := m.RespondMsg(msg); err != nil { // on the connection the request came in on
			return fmt.Errorf("chunk %d of %d: %w", i+1, n, err)
		}
	}
	p.rstats.chunked.Add(1)
	return nil
}

// readStats counts what bounded the projector's answers (for /metrics).
type readStats struct {
	pagesCut atomic.Uint64 // pages ended by their byte budget before their limit
	chunked  atomic.Uint64 // answers sent in chunks
	refused  atomic.Uint64 // answers over max_payload to an asker that does not read chunks
	// Dynatrace entitySelector answers, from the selection cache or
	// evaluated over the store.
	selectionsCached, selectionsEvaluated atomic.Uint64
}

func (p *Projector) readCollectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64, labels ...string) prometheus.Collector {
		opts := prometheus.CounterOpts{Name: name, Help: help}
		if len(labels) == 2 {
			opts.ConstLabels = prometheus.Labels{labels[0]: labels[1]}
		}
		return prometheus.NewCounterFunc(opts, func() float64 { return float64(v.Load()) })
	}
	selections := func(answer string, v *atomic.Uint64) prometheus.Collector {
		return counter("pushgo_projector_selections_total",
			"Dynatrace entitySelector selections answered, by answer: cached (no Thing change a selector sees since it was evaluated) or evaluated over the projection.",
			v, "answer", answer)
	}
	return []prometheus.Collector{
		counter("pushgo_projector_read_pages_cut_total",
			"Pages of /channel/history, /channel/things or /channel/events ended by their byte budget (the broker's max_payload less 8 KiB) before their limit.",
			&p.rstats.pagesCut),
		counter("pushgo_projector_read_answers_chunked_total",
			"Read answers larger than the broker's max_payload sent in chunks.", &p.rstats.chunked),
		counter("pushgo_projector_read_answers_refused_total",
			"Read answers larger than the broker's max_payload refused to an asker that does not read chunks.", &p.rstats.refused),
		selections("cached", &p.rstats.selectionsCached),
		selections("evaluated", &p.rstats.selectionsEvaluated),
	}
}

// serveSafely decodes a read request and answers it with serveReqSafely.
func (p *Projector) serveSafely(data []byte) (resp reads.Response, chunks bool) {
	var req reads.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return fail(apierr.Fieldf(apierr.InvalidJSONData, "request", "%v", err)), false
	}
	return p.serveReqSafely(&req), req.Chunks
}

func (p *Projector) serveReq(req *reads.Request) reads.Response {
	// waitEnd ends the read's waits for its barriers, ReadWait after the
	// first began: the operations' and, for /send_status, the receipts'
	// share it.
	var waitEnd time.Time
	if applied := p.applied.Load(); req.MinSeq > applied { // folded already, most often: no timer to wait with
		if p.progress.outOfReach(applied, req.MinSeq, p.cfg.ReadWait) {
			// A replica catching up answers at once what it would answer
			// after its wait: the front asks again, and another replica,
			// caught up, answers (each of its reads took 2 s and a 503
			// here for the whole catch-up, half of them with two replicas).
			return catchingUp(p.progress.status())
		}
		waitEnd = time.Now().Add(p.cfg.ReadWait)
		ctx, cancel := context.WithDeadline(context.Background(), waitEnd)
		err := p.WaitApplied(ctx, req.MinSeq)
		cancel()
		if err != nil {
			e := apierr.New(apierr.ProjectionLagging)
			if !errors.Is(err, context.DeadlineExceeded) {
				e = apierr.New(apierr.ReadUnavailable)
			} else {
				select {
				case p.vanished <- struct{}{}: // have the fold look why
				default:
				}
			}
			return fail(e)
		}
	}
	if req.Route == reads.SendStatus {
		if resp, ok := p.awaitReceipts(req.MinReceiptsSeq, waitEnd); !ok {
			return resp
		}
	}
	if req.Route == reads.ChannelHistory {
		if aerr := p.checkAfter(req.After); aerr != nil {
			return fail(aerr)
		}
	}
	if req.Route != reads.ProjectorStatus { // a few atomic loads: never queued behind store reads
		p.reads <- struct{}{}
		defer func() { <-p.reads }()
	}
	data, aerr := p.answer(req)
	if aerr != nil {
		return fail(aerr)
	}
	return reads.Response{Data: data}
}

// awaitReceipts holds /send_status until the receipts fold has folded
// barrier (reads.Request.MinReceiptsSeq: the receipts stream's last
// sequence when the read started), waiting until waitEnd (ReadWait from
// now when zero): a replica a few receipts behind answered at once from
// what it had, processing right after another replica had answered sent.
// A replica far behind (over catchUpLag receipts, by its fold's last
// delivery or by the barrier: a rebuild, a new replica, a fold stalled)
// hands the read on at once, as one catching up with the operations
// does. ok is false with the answer when the read is not to be served:
// that hand-on, projection_lagging when the wait ran out, read_unavailable
// when the fold stopped.
func (p *Projector) awaitReceipts(barrier uint64, waitEnd time.Time) (resp reads.Response, ok bool) {
	applied := p.receiptsApplied.Load()
	behind := p.receiptsPending.Load()
	if barrier > applied {
		behind = max(behind, barrier-applied)
	}
	if behind > catchUpLag {
		return catchingUp(fmt.Sprintf("the delivery receipts: %d not yet folded", behind)), false
	}
	if barrier <= applied {
		return reads.Response{}, true
	}
	if waitEnd.IsZero() {
		waitEnd = time.Now().Add(p.cfg.ReadWait)
	}
	ctx, cancel := context.WithDeadline(context.Background(), waitEnd)
	defer cancel()
	if err := p.waitReceipts(ctx, barrier); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(apierr.New(apierr.ProjectionLagging)), false
		}
		return fail(apierr.New(apierr.ReadUnavailable)), false
	}
	return reads.Response{}, true
}

// checkAfter refuses a /channel/history cursor past the log's last
// operation (invalid_cursor): it names a sequence of another log (a broker
// restored from a backup or recreated, a sync=1s log's last moments lost),
// and answered, its page was empty with next_after the cursor itself, so a
// polling client skipped every new operation up to it, for good and in
// silence. /channel/stream refuses the same Last-Event-ID
// (ingest/livestream/resume.go).
//
// The read's barrier gives no bound above: it is the channel's last
// sequence, below the log's. The applied sequence gives one below that
// settles nearly every page: a cursor at or below it is within the log
// (the fold commits only the log's sequences, and a projection past its
// log's end is folded again at start: heal.go, sameLogs). A cursor the
// gateway handed out is a sequence of the channel's history (or the
// cursor asked with), so at most the channel's last sequence, the
// barrier, which the fold has reached by now: such a page costs one
// atomic load more and no broker round trip. Only a cursor beyond the
// applied sequence asks the stream's leader for the log's last sequence
// (a stream info, which only the leader answers): one of another log, or
// a replica's behind the log when every operation of the channel has left
// it (no barrier then). When the broker does not answer, the page is
// answered unchecked, as a stream's resume is.
func (p *Projector) checkAfter(after uint64) *apierr.Error {
	if after <= p.applied.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ReadWait)
	defer cancel()
	s, err := p.js.Stream(ctx, streams.Ops)
	if err != nil {
		p.log.Warn("projector: the log's last sequence could not be read; a history cursor past the applied sequence is not checked",
			"after", after, "applied", p.applied.Load(), "err", fmt.Errorf("stream %s: %w", streams.Ops, err))
		return nil
	}
	if last := s.CachedInfo().State.LastSeq; after > last {
		return apierr.Fieldf(apierr.InvalidCursor, "after",
			"%d is beyond the log's last operation (%d): the gateway's log is not the one that sequence came from (restored, recreated, or its last moments lost); read /channel/history again from the start", after, last)
	}
	return nil
}

// catchingUp is a replica's projection_lagging answered at once, marked
// for the front to ask another replica (reads.Response.CatchingUp); why
// says how far behind it is.
func catchingUp(why string) reads.Response {
	e := apierr.New(apierr.ProjectionLagging)
	return reads.Response{ErrorCode: e.Code, Error: e.Detail + " (" + why + ")", CatchingUp: true}
}

// inflightPerPlace bounds the reads a replica holds in flight (waiting
// for the fold, or for a place), per place of MaxConcurrentReads.
const inflightPerPlace = 64

// ServeLocal answers req in this process, as a read over NATS is answered
// (after the fold has committed req.MinSeq, within ReadWait): ingest in
// the same process asks here first and skips the broker's request and
// reply, four hops through a broker that the write load keeps busy. ok is
// false while the projector serves no reads (starting, rebuilding,
// closed); the read then goes to a replica over the broker.
func (p *Projector) ServeLocal(req *reads.Request) (resp reads.Response, ok bool) {
	p.localMu.RLock()
	defer p.localMu.RUnlock()
	if !p.serving {
		return reads.Response{}, false
	}
	resp = p.serveReqSafely(req)
	p.served.Add(1)
	p.servedLocal.Add(1)
	return resp, true
}

// ServedLocal is the number of reads this projector answered through
// ServeLocal.
func (p *Projector) ServedLocal() uint64 { return p.servedLocal.Load() }

// Read answers a validated read directly (the same as over NATS).
func (p *Projector) Read(req *reads.Request) (jsontext.Value, *apierr.Error) { return p.answer(req) }

func (p *Projector) answer(req *reads.Request) (jsontext.Value, *apierr.Error) {
	switch req.Route {
	case reads.ProjectorStatus:
		receipts := p.ReceiptsApplied()
		st := reads.Status{Applied: p.Applied(), Lag: p.Lag(), ReceiptsApplied: &receipts}
		if err := p.Err(); err != nil {
			st.Error = err.Error()
		}
		return encode(st)
	case reads.SendStatus:
		return p.sendStatus(req.ChannelID, req.OpID)
	case reads.OpLookup:
		op, err := p.store.Op(req.ChannelID, req.OpID)
		if err != nil {
			return nil, p.storeErr(err)
		}
		return encode(op)
	case reads.ThingGet:
		return p.snapshot(ops.KindThing, req.ChannelID, req.ThingID, apierr.ThingNotFound, "thing_id")
	case reads.EventGet:
		return p.snapshot(ops.KindEvent, req.ChannelID, req.EventID, apierr.EventNotFound, "event_id")
	case reads.ChannelThings, reads.ChannelEvents:
		kind := ops.KindThing
		if req.Route == reads.ChannelEvents {
			kind = ops.KindEvent
		}
		page, err := p.store.List(store.ListFilter{Kind: kind, ChannelID: req.ChannelID, State: req.State,
			ThingID: req.ThingID, Cursor: req.Cursor, Limit: limitOf(req.Limit), MaxBytes: p.pageBytes()})
		if err != nil {
			return nil, p.storeErr(err)
		}
		if page.Cursor != "" && len(page.Items) < limitOf(req.Limit) {
			p.rstats.pagesCut.Add(1)
		}
		// The snapshots go into the page as the store wrote them
		// (reads/frame.go), through a page buffer as history pages do.
		buf := getPageBuffer()
		defer putPageBuffer(buf)
		b, err := reads.AppendListPage(*buf, page.Items, page.Cursor, page.Cursor != "")
		if err != nil {
			return nil, apierr.New(apierr.InternalError)
		}
		*buf = b
		return bytes.Clone(b), nil
	case reads.DeadlinesDue:
		due, err := p.store.DueDeadlines(req.Before, limitOf(req.Limit), req.DueAfter)
		if err != nil {
			return nil, p.storeErr(err)
		}
		return encode(reads.DueData{Items: due})
	case reads.ThingsSelect:
		res, err := p.store.Select(req.ChannelID, req.Selector, reads.MaxSelected)
		if perr := (*entityselector.Error)(nil); errors.As(err, &perr) {
			return nil, apierr.Fieldf(apierr.InvalidEntitySelector, "entitySelector", "%s", perr.Message)
		}
		if err != nil {
			return nil, p.storeErr(err)
		}
		if res.Cached {
			p.rstats.selectionsCached.Add(1)
		} else {
			p.rstats.selectionsEvaluated.Add(1)
		}
		return encode(reads.SelectData{ThingIDs: res.ThingIDs, UnknownTypes: res.UnknownTypes, TooMany: res.TooMany})
	case reads.ChannelHistory:
		var kinds map[ops.Kind]bool
		if len(req.Kinds) > 0 {
			kinds = map[ops.Kind]bool{}
			for _, k := range req.Kinds {
				kinds[k] = true
			}
		}
		// The stored items go into the page as they are (reads/frame.go),
		// copied once from the store into a page buffer, then into the
		// answer.
		buf := getPageBuffer()
		defer putPageBuffer(buf)
		b, page, err := p.store.AppendHistory(reads.AppendHistoryHead(*buf), store.HistoryFilter{ChannelID: req.ChannelID,
			After: req.After, Limit: limitOf(req.Limit), MaxBytes: p.pageBytes(), Kinds: kinds, Now: time.Now().UnixMilli()})
		*buf = b
		if err != nil {
			return nil, p.storeErr(err)
		}
		if page.HasMore && page.Count < limitOf(req.Limit) && !page.PassedOver {
			p.rstats.pagesCut.Add(1) // by its byte budget
		}
		*buf = reads.AppendHistoryTail(*buf, page.NextAfter, page.HasMore, page.FirstSeq)
		return bytes.Clone(*buf), nil // sized as it is, not cleared first
	}
	return nil, apierr.New(apierr.RouteNotFound)
}

// sendStatus answers /send_status/{op_id}: the operation of channelID
// with op_id opID, or with channelID "" the one operation of any channel
// with that op_id (as PushGo, which keys send status by op_id alone). Two
// channels may have used one op_id (op_ids are unique per channel): then
// the answer is 409 op_id_ambiguous, and the sender adds channel_id.
func (p *Projector) sendStatus(channelID, opID string) (jsontext.Value, *apierr.Error) {
	if channelID == "" {
		chs, err := p.store.OpChannels(opID, 2)
		if err != nil {
			return nil, p.storeErr(err)
		}
		switch len(chs) {
		case 0:
			return nil, apierr.Field(apierr.SendStatusNotFound, "op_id")
		case 1:
			channelID = chs[0]
		default:
			return nil, apierr.Field(apierr.OpIDAmbiguous, "op_id")
		}
	}
	st, err := p.store.SendStatus(channelID, opID)
	if err != nil {
		return nil, p.storeErr(err)
	}
	if st == nil {
		return nil, apierr.Field(apierr.SendStatusNotFound, "op_id")
	}
	if r := p.retention.Load(); r > 0 {
		st.ExpiresAt = st.AcceptedAt + r
	}
	return encode(st)
}

func (p *Projector) snapshot(kind ops.Kind, channelID, id string, notFound apierr.Code, field string) (jsontext.Value, *apierr.Error) {
	b, err := p.store.Snapshot(kind, channelID, id)
	if err != nil {
		return nil, p.storeErr(err)
	}
	if b == nil {
		return nil, apierr.Field(notFound, field)
	}
	return b, nil
}

func (p *Projector) storeErr(err error) *apierr.Error { return p.readFailed(err) }

// pageBytes is the byte budget of a page: what one NATS message of the
// broker this projector is connected to holds, less room for the rest of
// the answer.
func (p *Projector) pageBytes() int { return reads.PageBytes(p.replyMaxPayload()) }

// pageBuffers holds the buffers pages are written into before
// they are copied, at their size, into the answer: one buffer of up to
// the broker's max_payload serves page after page, where a page was a
// thousand allocations (one per item) and a cleared megabyte.
var pageBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledPage is the largest page buffer kept for the next page (one
// grown by a single item far over the page budget is let go).
const maxPooledPage = 4 << 20

func getPageBuffer() *[]byte {
	b := pageBuffers.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

func putPageBuffer(b *[]byte) {
	if cap(*b) <= maxPooledPage {
		pageBuffers.Put(b)
	}
}

func limitOf(l int) int {
	if l <= 0 {
		return reads.DefaultLimit
	}
	return min(l, reads.MaxLimit)
}

func encode(v any) (jsontext.Value, *apierr.Error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, apierr.New(apierr.InternalError)
	}
	return b, nil
}

func fail(e *apierr.Error) reads.Response {
	return reads.Response{ErrorCode: e.Code, Error: e.Detail}
}

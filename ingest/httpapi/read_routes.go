package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/livestream"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// Reader answers validated reads (a projector, over NATS).
type Reader interface {
	Read(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error)
}

// Follower opens streams of a channel's operations from a sequence, then
// live (ingest/livestream): 429 over its caps, 503 without a broker.
type Follower interface {
	Open(ctx context.Context, channelID string, after uint64) (*livestream.Stream, *apierr.Error)
}

func (s *Server) routeReads() {
	e := s.echo
	e.POST("/thing/get", s.readRoute(reads.ThingGet))
	e.POST("/event/get", s.readRoute(reads.EventGet))
	e.POST("/channel/things", s.readRoute(reads.ChannelThings))
	e.POST("/channel/events", s.readRoute(reads.ChannelEvents))
	e.POST("/channel/history", s.readRoute(reads.ChannelHistory))
	e.GET("/send_status/:op_id", s.sendStatus)
	if s.opts.Follower != nil {
		e.GET("/channel/stream", s.channelStream)
	}
}

// readRoute: decode, validate, authorize the channel, forward.
func (s *Server) readRoute(r reads.Route) echo.HandlerFunc {
	return func(c *echo.Context) error {
		var body reads.Body
		if aerr := decodeJSON(c, &body); aerr != nil {
			return writeErr(c, aerr)
		}
		req, password, aerr := reads.Validate(r, &body)
		if aerr != nil {
			return writeErr(c, aerr)
		}
		ctx := c.Request().Context()
		if _, aerr := s.channels.Authorize(ctx, req.ChannelID, password); aerr != nil {
			return writeErr(c, aerr)
		}
		data, aerr := s.opts.Reader.Read(ctx, req)
		if aerr != nil {
			return writeErr(c, aerr)
		}
		return writeData(c, data)
	}
}

// sseHeartbeat keeps idle streams alive through proxies.
const sseHeartbeat = 15 * time.Second

// sseWriteTimeout drops a client that accepts no bytes for that long (its
// connection is gone, or it does not read); it resumes with Last-Event-ID.
const sseWriteTimeout = time.Minute

// answerWriteTimeout and answerWritePerMiB bound how long a read's answer
// may take to leave: 30 s, and 10 s more a MiB (variables for the tests).
var (
	answerWriteTimeout = 30 * time.Second
	answerWritePerMiB  = 10 * time.Second
)

// channelStream is GET /channel/stream: Server-Sent Events of the
// channel's operations, from after Last-Event-ID (or from the start of the
// retained history), then live. A Last-Event-ID beyond the log's end is
// refused (400 invalid_cursor); one whose next operations aged out gets a
// gap event first (id: the resume point, data: {"after", "first_seq"}).
// Credentials come in headers, never in the URL, so they stay out of
// access logs. Streams are capped (429
// too_many_streams with Retry-After); one that ends on an error says so in
// a last comment, and the client resumes with Last-Event-ID.
func (s *Server) channelStream(c *echo.Context) error {
	h := c.Request().Header
	chID, pw := h.Get("X-PushGo-Channel"), h.Get("X-PushGo-Password")
	id, aerr := ops.ValidateChannelID(&chID)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	password, aerr := ops.ValidatePassword(&pw)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	var after uint64
	if v := strings.TrimSpace(h.Get("Last-Event-ID")); v != "" {
		// At most reads.MaxSeq: the stream resumes at n+1, which the
		// largest uint64 would wrap to the channel's first operation.
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return writeErr(c, apierr.Fieldf(apierr.InvalidCursor, "Last-Event-ID", "must be a sequence number below 2^63"))
		}
		after = n
	}
	ctx := c.Request().Context()
	if _, aerr := s.channels.Authorize(ctx, id, password); aerr != nil {
		return writeErr(c, aerr)
	}
	st, aerr := s.opts.Follower.Open(ctx, id, after)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	defer st.Close()

	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	var buf []byte
	if first, ok := st.Gap(); ok {
		// The operations after Last-Event-ID and before first_seq aged
		// out of the log: said first. Its id is the resume point, so a
		// client that does not know the event drops it as a repeat.
		buf = fmt.Appendf(buf, "id: %d\nevent: gap\ndata: {\"after\":%d,\"first_seq\":%d}\n\n", after, after, first)
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return nil
		}
	}
	_ = rc.Flush()
	for {
		op, err := st.Next(ctx, sseHeartbeat)
		buf = buf[:0]
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, livestream.ErrClosed) {
				buf = append(buf, ": stream ended: the gateway is stopping; reconnect with Last-Event-ID\n\n"...)
				break
			}
			s.log.Warn("http: channel stream ended", "channel_id", id, "last_event_id", st.Last(), "err", err)
			buf = append(buf, ": stream ended: the log is unavailable; reconnect with Last-Event-ID\n\n"...)
		case op == nil:
			buf = append(buf, ": keep-alive\n\n"...)
		default:
			buf = append(buf, "id: "...)
			buf = strconv.AppendUint(buf, op.Seq, 10)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, op.Name...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, op.Item...)
			buf = append(buf, "\n\n"...)
		}
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, werr := w.Write(buf); werr != nil || err != nil {
			_ = rc.Flush()
			return nil
		}
		if !st.Buffered() {
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// sendStatus is GET /send_status/{op_id}[?channel_id=] (as PushGo 1.3,
// src/api/handlers/send_status.rs): the delivery progress of one operation,
// with PushGo's fields (op_id, status, model, entity_id, accepted_at,
// updated_at, expires_at) and ours (entity_type, deliveries). Without
// channel_id, as PushGo's, the op_id is looked up in every channel; an
// op_id two channels used is 409 op_id_ambiguous (op_ids are unique per
// channel only), and channel_id picks one. It takes no password, as
// PushGo: it reveals delivery counts only, to whoever holds the op_id.
func (s *Server) sendStatus(c *echo.Context) error {
	q := c.QueryParams()
	for k, vs := range q {
		if k != "channel_id" || len(vs) != 1 {
			return writeErr(c, apierr.Fieldf(apierr.InvalidQuery, k, "unknown or repeated query parameter"))
		}
	}
	opID := c.Param("op_id")
	if !ids.ValidOpID(opID) {
		return writeErr(c, apierr.Field(apierr.InvalidOpID, "op_id"))
	}
	ctx := c.Request().Context()
	req := &reads.Request{Route: reads.SendStatus, OpID: opID}
	if v, ok := q["channel_id"]; ok {
		ch, aerr := ops.ValidateChannelID(&v[0])
		if aerr != nil {
			return writeErr(c, aerr)
		}
		if _, ok, err := s.channels.Lookup(ctx, ch); err != nil {
			return writeErr(c, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "registry unavailable; retry", RetryAfter: 1})
		} else if !ok {
			return writeErr(c, apierr.New(apierr.ChannelNotFound))
		}
		req.ChannelID = ch
	}
	data, aerr := s.opts.Reader.Read(ctx, req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	return writeData(c, data)
}

// okPrefix and okSuffix frame data in the success envelope as writeOK's
// apierr.EncodeOK writes it ({"success":true,"data":...}).
var (
	okPrefix = []byte(`{"success":true,"data":`)
	okSuffix = []byte(`}`)
)

// writeData answers 200 with a projector's data in the success envelope,
// written around the data as it came and never parsed: the projector wrote
// it from its stored bytes in canonical form, so this is byte for byte
// what writeOK (a parse and a re-encode of a thousand-item page) wrote
// (schemas/reads/frame.go; TestReadAnswersAreWhatTheEncoderWrote).
func writeData(c *echo.Context, data jsontext.Value) error {
	if len(data) == 0 {
		return writeOK(c, data) // not an answer a projector gives: the encoder says what it is
	}
	w := c.Response()
	h := w.Header()
	h.Set("Content-Length", strconv.Itoa(len(okPrefix)+len(data)+len(okSuffix)))
	if h.Get(echo.HeaderContentType) == "" {
		h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	w.WriteHeader(http.StatusOK)
	// A client that does not read its answer is dropped after a while, as
	// a stream's is (sseWriteTimeout): it held the page (up to a MiB, a
	// large Thing's several) and a goroutine for as long as its
	// connection stayed open. The deadline is the connection's, so it is
	// cleared for the next request on it.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(answerWriteTimeout + time.Duration(len(data)>>20)*answerWritePerMiB))
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	// Three writes, no copy of the page: the server's buffered writer
	// passes a large one straight to the connection.
	for _, b := range [][]byte{okPrefix, data, okSuffix} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	// Flushed while the deadline holds: the server flushes its buffer
	// after the handler returns, past the deferred clear, and a small
	// answer (or a large one's tail) left so had no deadline.
	return rc.Flush()
}

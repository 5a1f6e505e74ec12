package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// Reader answers validated reads (a projector, over NATS).
type Reader interface {
	Read(ctx context.Context, req *reads.Request) (jsontext.Value, *apierr.Error)
}

// Follower follows a channel's operations from a sequence, then live.
type Follower interface {
	Follow(ctx context.Context, channelID string, after uint64, fn func(seq uint64, op ops.Name, item []byte) error) error
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
		return writeOK(c, data)
	}
}

// sseHeartbeat keeps idle streams alive through proxies.
const sseHeartbeat = 15 * time.Second

// channelStream is GET /channel/stream: Server-Sent Events of the
// channel's operations, from after Last-Event-ID (or from the start of the
// retained history), then live. Credentials come in headers, never in the
// URL, so they stay out of access logs.
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
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return writeErr(c, apierr.Fieldf(apierr.InvalidCursor, "Last-Event-ID", "must be a sequence number"))
		}
		after = n
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	if _, aerr := s.channels.Authorize(ctx, id, password); aerr != nil {
		return writeErr(c, aerr)
	}

	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	type event struct {
		seq uint64
		op  ops.Name
		raw []byte
	}
	events := make(chan event, 256)
	followErr := make(chan error, 1)
	go func() {
		followErr <- s.opts.Follower.Follow(ctx, id, after, func(seq uint64, op ops.Name, raw []byte) error {
			select {
			case events <- event{seq, op, raw}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-followErr
			return nil
		case err := <-followErr:
			if err != nil {
				s.log.Warn("http: channel stream ended", "channel_id", id, "err", err)
			}
			return nil
		case <-tick.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				cancel()
				<-followErr
				return nil
			}
		case ev := <-events:
			buf = buf[:0]
			buf = append(buf, "id: "...)
			buf = strconv.AppendUint(buf, ev.seq, 10)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, ev.op...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, ev.raw...)
			buf = append(buf, "\n\n"...)
			if _, err := w.Write(buf); err != nil {
				cancel()
				<-followErr
				return nil
			}
		}
		_ = rc.Flush()
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
	return writeOK(c, data)
}

package httpapi

import (
	"net/url"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// Response data of the write routes (spec sections 4, 5, 6).
func (s *Server) eventRoute(op ops.Name) echo.HandlerFunc {
	return func(c *echo.Context) error {
		var req ops.EventRequest
		if aerr := decodeJSON(c, &req); aerr != nil {
			return s.reject(c, op, aerr)
		}
		return s.event(c, op, &req)
	}
}

// event validates an event request and accepts it.
func (s *Server) event(c *echo.Context, op ops.Name, req *ops.EventRequest) error {
	v, aerr := ops.ValidateEvent(op, req, s.opts.Now().UnixMilli(), s.opts.Validation...)
	if aerr != nil {
		return s.reject(c, op, aerr)
	}
	return s.accept(c, v)
}

// thingEventRoute is /thing/{thing_id}/event/{create,update,close}: the
// event route with the thing_id of the path. A body that names another
// thing_id is refused 400 invalid_thing_id. A create that names none takes
// the path's (its link); an update or close that names none leaves the
// event's link as it is (a thing_id there re-links the event, and the
// path alone should not move it from the Thing it belongs to), but the
// path's Thing must be a thing id (400 invalid_thing_id), exist (404
// thing_not_found) and not be deleted (409 thing_deleted), as a link's.
func (s *Server) thingEventRoute(op ops.Name) echo.HandlerFunc {
	return func(c *echo.Context) error {
		var req ops.EventRequest
		if aerr := decodeJSON(c, &req); aerr != nil {
			return s.reject(c, op, aerr)
		}
		thingID, err := url.PathUnescape(c.Param("thing_id"))
		if err != nil {
			return s.reject(c, op, apierr.Fieldf(apierr.InvalidThingID, "thing_id", "the path's is not a valid escaped segment"))
		}
		pathThing := ""
		switch {
		case req.ThingID == nil && op == ops.EventCreate:
			req.ThingID = &thingID
		case req.ThingID == nil:
			// An update or close: the event's link stays, and the path's
			// Thing is checked as a link is (the writer).
			pathThing = strings.TrimSpace(thingID)
			if !ids.ValidEntityID(pathThing) {
				return s.reject(c, op, apierr.Fieldf(apierr.InvalidThingID, "thing_id", "the path's is not a thing id"))
			}
		case strings.TrimSpace(*req.ThingID) != strings.TrimSpace(thingID):
			return s.reject(c, op, apierr.Fieldf(apierr.InvalidThingID, "thing_id", "the body's (%q) is not the path's (%q)", *req.ThingID, thingID))
		}
		v, aerr := ops.ValidateEvent(op, &req, s.opts.Now().UnixMilli(), s.opts.Validation...)
		if aerr != nil {
			return s.reject(c, op, aerr)
		}
		v.PathThingID = pathThing
		return s.accept(c, v)
	}
}

func (s *Server) thingRoute(op ops.Name) echo.HandlerFunc {
	return func(c *echo.Context) error {
		var req ops.ThingRequest
		if aerr := decodeJSON(c, &req); aerr != nil {
			return s.reject(c, op, aerr)
		}
		v, aerr := ops.ValidateThing(op, &req, s.opts.Now().UnixMilli(), s.opts.Validation...)
		if aerr != nil {
			return s.reject(c, op, aerr)
		}
		return s.accept(c, v)
	}
}

func (s *Server) messagePost(c *echo.Context) error {
	var req ops.MessageRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return s.reject(c, ops.MessageCreate, aerr)
	}
	return s.message(c, &req)
}

// messageGet is GET /message (as PushGo): the fields as query parameters.
func (s *Server) messageGet(c *echo.Context) error {
	req, aerr := ops.MessageRequestFromQuery(FormValues(c.Request().URL.RawQuery))
	if aerr != nil {
		return s.reject(c, ops.MessageCreate, aerr)
	}
	return s.message(c, req)
}

func (s *Server) message(c *echo.Context, req *ops.MessageRequest) error {
	v, aerr := ops.ValidateMessage(req, s.opts.Now().UnixMilli(), s.opts.Validation...)
	if aerr != nil {
		return s.reject(c, ops.MessageCreate, aerr)
	}
	return s.accept(c, v)
}

// accept authorizes the channel, appends and answers. Every rejection
// happens before the append, so a rejected request changes nothing.
func (s *Server) accept(c *echo.Context, v *ops.Validated) error {
	ctx := c.Request().Context()
	if _, aerr := s.channels.Authorize(ctx, v.ChannelID, v.Password); aerr != nil {
		return s.reject(c, v.Op, aerr)
	}
	res, aerr := s.appender.Append(ctx, v)
	if aerr != nil {
		return s.reject(c, v.Op, aerr)
	}
	outcome := "appended"
	if res.Replayed {
		outcome = "replayed"
	}
	s.metrics.appends.WithLabelValues(string(v.Op), outcome).Inc()
	a := accepted{ChannelID: v.ChannelID, OpID: res.OpID, ID: res.EntityID}
	switch v.Op.Kind() {
	case ops.KindEvent:
		a.idKey = "event_id"
	case ops.KindThing:
		a.idKey = "thing_id"
	default:
		a.idKey, a.ThingID = "message_id", res.ThingID
	}
	return writeAccepted(c, a)
}

func (s *Server) reject(c *echo.Context, op ops.Name, aerr *apierr.Error) error {
	s.metrics.appends.WithLabelValues(string(op), "rejected").Inc()
	return writeErr(c, aerr)
}

package integrations

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/integrations/eventbus"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/wire"
)

// routeEventBus registers the cloud event bus push API (seed 004, spec
// section 2) under both of its spellings.
func (r *Routes) routeEventBus(e *echo.Echo) {
	e.POST(RouteEventBus, r.eventBus)
	e.POST(RouteEventBusNew, r.eventBus)
}

// eventBus records a batch of CloudEvents, each as an Event created and
// closed at once. The whole batch is decoded, checked and validated before
// anything is appended, so a rejected batch changes nothing; a batch that
// fails part-way (503) is safe to resend whole, since source+id makes every
// append idempotent, except for an event sent without an id: it is given a
// new one each time (the provider's rule), so it has no identity a resend
// could be recognised by, and a resend records it again.
func (r *Routes) eventBus(c *echo.Context) error {
	ctx := c.Request().Context()
	tok, aerr := r.d.Tokens.Authorize(ctx, c.Request().Header.Get("Authorization"), apitokens.ScopeEventsIngest)
	if aerr != nil {
		return writeBusAPIError(c, aerr)
	}
	release, ok := r.admit(c, tok.ChannelID, tok.ID)
	if !ok {
		return writeBusError(c, http.StatusServiceUnavailable, apierr.AppendUnavailable, eventbus.InternalError, "overloaded, retry", 1)
	}
	defer release()
	body, err := r.readBody(c)
	if errors.Is(err, errTooLarge) {
		return writeBusError(c, http.StatusRequestEntityTooLarge, apierr.PayloadTooLarge, eventbus.InvalidParameter, err.Error(), 0)
	}
	if errors.Is(err, errBodyTimeout) { // a slow network, not a bad batch: retried
		return writeBusError(c, http.StatusServiceUnavailable, apierr.AppendUnavailable, eventbus.InternalError, err.Error()+"; retry", 1)
	}
	if status, code, ok := encodingRefusal(err); ok {
		return writeBusError(c, status, code, eventbus.InvalidParameter, err.Error(), 0)
	}
	if err != nil {
		return writeBusError(c, http.StatusBadRequest, apierr.InvalidRequestBody, eventbus.InvalidParameter, "request body could not be read", 0)
	}
	batch, berr := eventbus.Decode(body)
	if berr != nil {
		return writeBusDecodeError(c, berr)
	}
	ch, found, err := r.d.Channels.Lookup(ctx, tok.ChannelID)
	if err != nil {
		r.log.Warn("eventbus: channel lookup failed", "channel_id", tok.ChannelID, "err", err)
		return writeBusError(c, http.StatusServiceUnavailable, apierr.BrokerUnavailable, eventbus.InternalError, "the channel registry is unavailable; retry", 1)
	}
	if !found {
		// The token outlived its channel: nothing it names can be written.
		return writeBusError(c, http.StatusForbidden, apierr.ChannelNotFound, eventbus.AuthorizationError, "the token's event bus does not exist", 0)
	}
	if berr := batch.ResolveBus(tok.ChannelID, ch.Name); berr != nil {
		return writeBusDecodeError(c, berr)
	}

	received := r.d.Now()
	occ := make([]occurrence, len(batch.Events))
	for i := range batch.Events {
		ev := &batch.Events[i]
		if ev.ID == "" {
			ev.ID = ids.NewSenderOpID()
		}
		if occ[i], aerr = prepareOccurrence(ev, tok.ChannelID, received); aerr != nil {
			return writeBusError(c, http.StatusBadRequest, aerr.Code, eventbus.InvalidParameterValue,
				"eventList["+strconv.Itoa(i)+"]: "+aerr.Detail, 0)
		}
	}
	if aerr := r.recordAll(ctx, occ); aerr != nil {
		return writeBusAPIError(c, aerr)
	}

	resp := eventbus.Response{Events: make([]eventbus.ResponseEvent, len(batch.Events))}
	for i := range batch.Events {
		ev := &batch.Events[i]
		if at := occ[i].at; at != ev.At(received).UnixMilli() {
			// Recorded before at another time (record): the answer
			// describes the Event as recorded.
			ev.Time, ev.TimeText = time.UnixMilli(at), ""
		}
		resp.Events[i] = ev.Response(tok.ChannelID, ch.Name, received)
	}
	r.log.Debug("eventbus: batch recorded", "channel_id", tok.ChannelID, "events", len(occ))
	return writeJSON(c, http.StatusOK, resp)
}

// occurrence is one CloudEvent's operations, validated.
type occurrence struct {
	eventID string
	create  *ops.Validated
	// unlinked is create without the Thing link, appended when the
	// subject names no live Thing; nil when create has no link.
	unlinked *ops.Validated
	close    *ops.Validated
	// at is when the Event happened (ms): the CloudEvent's time, or the
	// receive time it defaults to; once recorded, the time the Event was
	// recorded with (record).
	at int64
	// closeReq is close's request, for a close made again at another at.
	closeReq ops.EventRequest
}

// prepareOccurrence translates ev (its ID set) and validates the
// operations, without appending anything.
func prepareOccurrence(ev *eventbus.Event, channelID string, received time.Time) (occurrence, *apierr.Error) {
	o := ev.Occurrence(channelID, received)
	out := occurrence{eventID: o.EventID, at: ev.At(received).UnixMilli(), closeReq: o.Close}
	var aerr *apierr.Error
	if out.create, aerr = ops.ValidateIntegrationEvent(ops.EventCreate, &o.Create); aerr != nil {
		return occurrence{}, aerr
	}
	if o.Create.ThingID != nil {
		o.Create.ThingID = nil
		if out.unlinked, aerr = ops.ValidateIntegrationEvent(ops.EventCreate, &o.Create); aerr != nil {
			return occurrence{}, aerr
		}
	}
	if out.close, aerr = ops.ValidateIntegrationEvent(ops.EventClose, &o.Close); aerr != nil {
		return occurrence{}, aerr
	}
	return out, nil
}

// ebParallel bounds the CloudEvents of one batch recorded at once: a
// 100-event batch is 200 appends, too many to make one after the other
// within a sender's patience, and too many to let one request take every
// broker round trip of the gateway.
const ebParallel = 16

// recordAll records every occurrence, up to ebParallel at once; the
// occurrences of one CloudEvent sent twice in the batch (same op_id) are
// recorded one after the other, so they meet as a replay rather than as a
// race. It answers the first failure; the others are cancelled. Events
// recorded before a failure stay: resending the batch is safe.
func (r *Routes) recordAll(ctx context.Context, occ []occurrence) *apierr.Error {
	var groups [][]int
	index := make(map[string]int, len(occ))
	for i := range occ {
		g, ok := index[occ[i].create.OpID]
		if !ok {
			g = len(groups)
			index[occ[i].create.OpID] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}

	return r.lanes.each(ctx, len(groups), ebParallel, func(ctx context.Context, gi int) *apierr.Error {
		for _, i := range groups[gi] {
			if aerr := r.record(ctx, &occ[i]); aerr != nil {
				return aerr
			}
		}
		return nil
	})
}

// record appends an occurrence: the create (linked to the subject's Thing
// when it exists), then the close. A create that is already there answers
// Replayed, or op_id_conflict when a field differs from the first time
// (the receive time a CloudEvent sent without one defaults to, or a time
// sent differently); either way the Event exists, and the close is still
// made sure of: Replayed, op_id_conflict or event_closed (the broker's
// duplicate window has passed) all mean it is there. After a conflict
// o.at becomes the time the Event was recorded with (recordedAt), and the
// close is made at that time, as the first request made it.
func (r *Routes) record(ctx context.Context, o *occurrence) *apierr.Error {
	_, aerr := r.d.Appender.Append(ctx, o.create)
	if aerr != nil && o.unlinked != nil && (aerr.Code == apierr.ThingNotFound || aerr.Code == apierr.ThingDeleted) {
		_, aerr = r.d.Appender.Append(ctx, o.unlinked)
	}
	if aerr != nil && aerr.Code != apierr.OpIDConflict {
		r.log.Warn("eventbus: create failed", "channel_id", o.create.ChannelID, "event_id", o.eventID, "code", aerr.Code)
		return aerr
	}
	if aerr != nil {
		if aerr = r.recordedAt(ctx, o); aerr != nil {
			r.log.Warn("eventbus: recorded event not read", "channel_id", o.create.ChannelID, "event_id", o.eventID, "code", aerr.Code)
			return aerr
		}
	}
	_, aerr = r.d.Appender.Append(ctx, o.close)
	if aerr != nil && aerr.Code != apierr.EventClosed && aerr.Code != apierr.OpIDConflict {
		r.log.Warn("eventbus: close failed", "channel_id", o.close.ChannelID, "event_id", o.eventID, "code", aerr.Code)
		return aerr
	}
	return nil
}

// recordedAt sets o.at to the time o's Event was recorded with, read from
// the projection (after the Event's operations appended before the read,
// its create among them), and makes o.close again at that time when it
// differs: a CloudEvent sent again without a time defaults to its new
// receive time, which the Event never had, and neither the answer nor the
// close may carry it. An Event the projection no longer holds keeps o as
// it is.
func (r *Routes) recordedAt(ctx context.Context, o *occurrence) *apierr.Error {
	b, aerr := r.d.Reader.Read(ctx, &reads.Request{Route: reads.EventGet, ChannelID: o.create.ChannelID, EventID: o.eventID})
	if aerr != nil {
		if aerr.Code == apierr.EventNotFound {
			return nil
		}
		return aerr
	}
	var snap struct {
		StartedAt *int64 `json:"started_at"`
	}
	if err := json.Unmarshal(b, &snap); err != nil || snap.StartedAt == nil {
		return apierr.New(apierr.InternalError)
	}
	if *snap.StartedAt == o.at {
		return nil
	}
	req := o.closeReq
	at := wire.Millis(*snap.StartedAt)
	req.EventTime = &at
	v, aerr := ops.ValidateIntegrationEvent(ops.EventClose, &req)
	if aerr != nil {
		return aerr
	}
	o.close, o.at = v, *snap.StartedAt
	return nil
}

// writeBusError answers the provider's error body; requestId is the
// request's X-Request-Id (set by the server's middleware). counted is the
// code the errors metric counts: the catalog code of the refusal, or
// eventBusCode of the bus's own.
func writeBusError(c *echo.Context, status int, counted apierr.Code, code eventbus.Code, msg string, retryAfter int) error {
	countError(c, counted)
	if retryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	return writeJSON(c, status, eventbus.ErrorBody{
		RequestID: c.Response().Header().Get("X-Request-Id"), Code: code, Message: msg,
	})
}

// writeBusDecodeError answers a rejection of the body or of its bus.
func writeBusDecodeError(c *echo.Context, e *eventbus.Error) error {
	status := http.StatusBadRequest
	if e.Code == eventbus.AuthorizationError {
		status = http.StatusForbidden
	}
	return writeBusError(c, status, eventBusCode(e.Code), e.Code, e.Message(), 0)
}

// writeBusAPIError answers a gateway rejection (token, append) in the
// provider's shape: 401/403 AUTHORIZATION_ERROR, 503 INTERNAL_ERROR with
// Retry-After for an unavailable broker (the batch may be resent), 500
// INTERNAL_ERROR for a fault, and 400 INVALID_PARAMETER_VALUE for any
// other rejection of an operation.
func writeBusAPIError(c *echo.Context, e *apierr.Error) error {
	switch status := e.Status(); {
	case e.Code == apierr.InvalidAPIToken:
		return writeBusError(c, http.StatusUnauthorized, e.Code, eventbus.AuthorizationError, e.Detail, 0)
	case e.Code == apierr.ScopeMissing:
		return writeBusError(c, http.StatusForbidden, e.Code, eventbus.AuthorizationError, e.Detail, 0)
	case status == http.StatusTooManyRequests: // an address past its failed token checks
		return writeBusError(c, status, e.Code, eventbus.AuthorizationError, e.Detail, max(e.RetryAfter, 1))
	case status == http.StatusServiceUnavailable:
		return writeBusError(c, status, e.Code, eventbus.InternalError, e.Detail, max(e.RetryAfter, 1))
	case status >= 500:
		return writeBusError(c, http.StatusInternalServerError, e.Code, eventbus.InternalError, "internal error", 0)
	default:
		return writeBusError(c, http.StatusBadRequest, e.Code, eventbus.InvalidParameterValue, e.Detail, 0)
	}
}

package integrations

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/integrations/pagerduty"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/reads"
)

// PagerDuty Events API v2 (spec integrations.md section 5). Answers use
// PagerDuty's shapes: 202 {status, message, dedup_key}; errors {status,
// message, errors[]}. Back-pressure is a 429 with Retry-After, the answer
// PagerDuty clients are written to back off and retry on.

// pdAnswer is every answer's body.
type pdAnswer struct {
	Status   string   `json:"status"`
	Message  string   `json:"message"`
	DedupKey string   `json:"dedup_key,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// PagerDuty's own status and message strings.
const (
	pdInvalidStatus  = "invalid event"
	pdInvalidMessage = "Event object is invalid"
	pdThrottleStatus = "throttle event"
	pdThrottleMsg    = "Requests for this service are arriving too quickly. Please retry later."
)

func (r *Routes) routePagerDuty(e *echo.Echo) {
	e.POST(RoutePagerDutyEnqueue, r.pagerDuty)
}

// pdRead reads and validates the event. The token is in the body, so the
// body is read before anything is known of its sender: in a place of its
// client address's own (limits.Config.UnauthenticatedReadsPerAddr), within
// the body deadline, and apart from the places of authorized requests,
// which unauthenticated senders therefore cannot take. answered reports
// that the answer is written (err is its write error).
func (r *Routes) pdRead(c *echo.Context) (ev *pagerduty.Event, rep pagerduty.Report, answered bool, err error) {
	release, ok := r.preAuth.TakeClient(c.Request().Context())
	if !ok {
		closeAfter(c)
		return ev, rep, true, pdThrottle(c, apierr.RateLimited, 1, "too many requests of this address are sending their body")
	}
	defer release()
	body, err := r.readBody(c)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return ev, rep, true, pdInvalid(c, http.StatusRequestEntityTooLarge, apierr.PayloadTooLarge, err.Error())
		}
		if errors.Is(err, errBodyTimeout) { // a slow network, not a bad event: PagerDuty's clients retry a 429
			return ev, rep, true, pdThrottle(c, apierr.AppendUnavailable, 1, err.Error())
		}
		if status, code, ok := encodingRefusal(err); ok {
			return ev, rep, true, pdInvalid(c, status, code, err.Error())
		}
		return ev, rep, true, pdInvalid(c, http.StatusBadRequest, apierr.InvalidRequestBody, "reading the request body: "+err.Error())
	}
	// Validation comes before the token check because the token is in the
	// body: a body that cannot be read has no routing_key to check.
	ev, rep, inv := pagerduty.Parse(body, r.d.Now().UnixMilli(), ids.NewOpID)
	if inv != nil {
		return ev, rep, true, pdInvalid(c, http.StatusBadRequest, codePagerDutyInvalidEvent, inv.Errors...)
	}
	return ev, rep, false, nil
}

// pdInvalid answers status (400, 401, 403, 413, 415) as an invalid event;
// code is what the errors metric counts.
func pdInvalid(c *echo.Context, status int, code apierr.Code, errs ...string) error {
	countError(c, code)
	return writeJSON(c, status, pdAnswer{Status: pdInvalidStatus, Message: pdInvalidMessage, Errors: errs})
}

// pdThrottle answers 429 with Retry-After: every overload and every broker
// failure, which a PagerDuty client retries; code is what the errors
// metric counts.
func pdThrottle(c *echo.Context, code apierr.Code, retryAfter int, reason string) error {
	countError(c, code)
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(retryAfter, 1)))
	return writeJSON(c, http.StatusTooManyRequests, pdAnswer{Status: pdThrottleStatus, Message: pdThrottleMsg, Errors: []string{reason}})
}

// pdFail answers a catalog error from the token check or the tracker.
func pdFail(c *echo.Context, e *apierr.Error) error {
	switch s := e.Status(); {
	case e.Code == apierr.InvalidAPIToken:
		return pdInvalid(c, s, e.Code, "'routing_key' is not a valid integration token of this gateway (wrong or revoked)")
	case e.Code == apierr.ScopeMissing:
		return pdInvalid(c, s, e.Code, "the integration token in 'routing_key' lacks the "+apitokens.ScopeEventsIngest+" scope")
	case s == http.StatusServiceUnavailable || s == http.StatusTooManyRequests:
		return pdThrottle(c, e.Code, e.RetryAfter, e.Detail)
	case s < 500:
		return pdInvalid(c, s, e.Code, e.Detail)
	default:
		countError(c, e.Code)
		return writeJSON(c, s, pdAnswer{Status: "error", Message: "The event could not be processed", Errors: []string{e.Detail}})
	}
}

// pdKeepSeverity puts the severity of the Event key names into an
// acknowledge or resolve that named none. Where the Event cannot be read
// (none open: the report changes nothing anyway; the projection
// unavailable) the report keeps its default: a resolve is not refused for
// its severity. The read is not part of the tracker's append: a trigger
// that changes the severity at the same moment may be overwritten by the
// severity read just before it.
func (r *Routes) pdKeepSeverity(ctx context.Context, key alerts.Key, rep pagerduty.Report) pagerduty.Report {
	id, ok, err := r.d.Alerts.EventOf(ctx, key)
	if err != nil || !ok {
		return rep
	}
	// Read waits for the Event's own last operation (its subject's), not
	// for the whole log as ReadConsistent does: an acknowledge does not
	// wait on the projector's lag.
	b, aerr := r.d.Reader.Read(ctx, &reads.Request{Route: reads.EventGet, ChannelID: key.ChannelID, EventID: id})
	if aerr != nil {
		r.log.Debug("pagerduty: the Event's severity not read; the default kept", "channel_id", key.ChannelID, "event_id", id, "err", aerr.Detail)
		return rep
	}
	var ev struct {
		Severity string `json:"severity"`
	}
	if err := json.Unmarshal(b, &ev, json.RejectUnknownMembers(false)); err != nil || ev.Severity == "" {
		return rep
	}
	return rep.WithSeverity(ev.Severity)
}

// pagerDuty handles one enqueue: validate the event, authorize its
// routing_key, then trigger (open or update), acknowledge (update) or
// resolve (close) the Event of its dedup_key. A trigger of an acknowledged
// Event leaves it acknowledged and alerts no device (a background
// update), as PagerDuty does. acknowledge and resolve of
// a key with no open Event are accepted and change nothing.
func (r *Routes) pagerDuty(c *echo.Context) error {
	ctx := c.Request().Context()
	ev, rep, answered, err := r.pdRead(c)
	if answered {
		return err
	}
	tok, aerr := r.d.Tokens.AuthorizeToken(ctx, ev.RoutingKey, apitokens.ScopeEventsIngest)
	if aerr != nil {
		return pdFail(c, aerr)
	}
	release, ok := r.admit(c, tok.ChannelID, tok.ID)
	if !ok {
		return pdThrottle(c, apierr.AppendUnavailable, 1, "too many integration requests in flight")
	}
	defer release()

	key := alerts.Key{ChannelID: tok.ChannelID, Source: pagerduty.Source, Value: rep.DedupKey}
	if rep.KeepsSeverity {
		rep = r.pdKeepSeverity(ctx, key, rep)
	}
	var out alerts.Outcome
	switch rep.Action {
	case pagerduty.ActionTrigger:
		out, aerr = r.d.Alerts.Open(ctx, alerts.Report{Key: key, Event: rep.Event, ContentHash: contentHash(rep.Content),
			WhenAcknowledged: rep.Held, WhenAcknowledgedHash: contentHash(rep.HeldContent)})
	case pagerduty.ActionAcknowledge:
		out, aerr = r.d.Alerts.Acknowledge(ctx, key, rep.Event, contentHash(rep.Content))
	case pagerduty.ActionResolve:
		out, aerr = r.d.Alerts.Close(ctx, key, rep.Event)
	}
	if aerr != nil {
		r.log.Warn("pagerduty: event not applied", "channel_id", tok.ChannelID, "event_action", rep.Action,
			"error_code", aerr.Code, "err", aerr.Detail)
		return pdFail(c, aerr)
	}
	r.log.Debug("pagerduty: event applied", "channel_id", tok.ChannelID, "event_action", rep.Action,
		"event_id", out.EventID, "created", out.Created, "unchanged", out.Unchanged, "absent", out.Absent)
	return writeJSON(c, http.StatusAccepted, pdAnswer{Status: "success", Message: "Event processed", DedupKey: rep.DedupKey})
}

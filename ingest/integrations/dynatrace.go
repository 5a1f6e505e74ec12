package integrations

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/integrations/dynatrace"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/wire"
)

// Dynatrace events API v2 (seed 003, spec section 1).

// Result statuses of one event report.
const (
	dtOK                = "OK"
	dtInvalidEntityType = "INVALID_ENTITY_TYPE"
	dtInvalidMetadata   = "INVALID_METADATA"
	dtInvalidTimestamps = "INVALID_TIMESTAMPS"
)

// dtResults is the 201 answer: EventIngestResults.
type dtResults struct {
	ReportCount        int        `json:"reportCount"`
	EventIngestResults []dtResult `json:"eventIngestResults"`
}

type dtResult struct {
	CorrelationID *string `json:"correlationId"`
	Status        string  `json:"status"`
}

// dtError is Dynatrace's error envelope.
type dtError struct {
	Error dtErrorBody `json:"error"`
}

type dtErrorBody struct {
	Code                 int            `json:"code"`
	Message              string         `json:"message"`
	ConstraintViolations []dtConstraint `json:"constraintViolations,omitempty"`
}

type dtConstraint struct {
	Path              string  `json:"path"`
	Message           string  `json:"message"`
	ParameterLocation string  `json:"parameterLocation"`
	Location          *string `json:"location"`
}

func (r *Routes) routeDynatrace(e *echo.Echo) {
	e.POST(RouteDynatrace, r.dynatraceIngest)
	e.POST(RouteDynatraceEnv, r.dynatraceIngest)
	e.GET(RouteDynatraceGet, r.dynatraceGet)
	e.GET(RouteDynatraceEnvGet, r.dynatraceGet)
}

// dtFail answers Dynatrace's error envelope; code is what the errors
// metric counts.
func dtFail(c *echo.Context, status int, code apierr.Code, msg string, vs ...dynatrace.Violation) error {
	countError(c, code)
	body := dtError{Error: dtErrorBody{Code: status, Message: msg}}
	for _, v := range vs {
		body.Error.ConstraintViolations = append(body.Error.ConstraintViolations,
			dtConstraint{Path: v.Path, Message: v.Message, ParameterLocation: "PAYLOAD_BODY"})
	}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && c.Response().Header().Get("Retry-After") == "" {
		c.Response().Header().Set("Retry-After", "1")
	}
	return writeJSON(c, status, body)
}

// dtFailAPI answers a catalog error in Dynatrace's envelope.
func dtFailAPI(c *echo.Context, aerr *apierr.Error) error {
	msg := aerr.Detail
	switch aerr.Code {
	case apierr.InvalidAPIToken:
		msg = "Token Authentication failed"
	case apierr.ScopeMissing:
		msg = "Token is missing required scope. Use one of: " + apitokens.ScopeEventsIngest + " (Ingest events)"
	}
	if aerr.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(aerr.RetryAfter))
	}
	return dtFail(c, aerr.Status(), aerr.Code, msg)
}

// dtAuthorize checks the token and, on the /e/{environment}/ form, that
// the environment is the token's channel. When ok is false the answer has
// been written (err is its write error).
func (r *Routes) dtAuthorize(c *echo.Context, scope string) (tok apitokens.Token, ok bool, err error) {
	tok, aerr := r.d.Tokens.Authorize(c.Request().Context(), c.Request().Header.Get("Authorization"), scope)
	if aerr != nil {
		if aerr.Code == apierr.ScopeMissing {
			return tok, false, dtFail(c, http.StatusForbidden, apierr.ScopeMissing, "Token is missing required scope. Use one of: "+scope)
		}
		return tok, false, dtFailAPI(c, aerr)
	}
	if env := c.Param("environment"); env != "" {
		if id, valid := ids.NormalizeChannelID(env); !valid || id != tok.ChannelID {
			return tok, false, dtFail(c, http.StatusForbidden, codeDynatraceEnvironment, "the environment id in the URL is not this token's channel id")
		}
	}
	return tok, true, nil
}

func (r *Routes) dynatraceIngest(c *echo.Context) error {
	tok, ok, err := r.dtAuthorize(c, apitokens.ScopeEventsIngest)
	if !ok {
		return err
	}
	release, ok := r.admit(c, tok.ChannelID, tok.ID)
	if !ok {
		return dtFail(c, http.StatusServiceUnavailable, apierr.AppendUnavailable, "Too many concurrent requests; retry later")
	}
	defer release()
	body, err := r.readBody(c)
	if err != nil {
		if err == errTooLarge {
			return dtFail(c, http.StatusRequestEntityTooLarge, apierr.PayloadTooLarge, "Request body is larger than 1 MiB")
		}
		if err == errBodyTimeout {
			// A slow network, not a bad report: retried (503, Retry-After).
			return dtFail(c, http.StatusServiceUnavailable, apierr.AppendUnavailable, "Request body did not arrive in time; retry")
		}
		if status, code, ok := encodingRefusal(err); ok {
			return dtFail(c, status, code, err.Error())
		}
		return dtFail(c, http.StatusBadRequest, apierr.InvalidRequestBody, "Request body could not be read")
	}
	req, vs, err := dynatrace.Decode(body)
	if err != nil {
		return dtFail(c, http.StatusBadRequest, apierr.InvalidJSONSyntax, "Could not map JSON: "+err.Error())
	}
	if vs != nil {
		return dtFail(c, http.StatusBadRequest, codeDynatraceConstraints, "Constraints violated.", vs...)
	}
	now := r.d.Now().UnixMilli()
	rep, vs := dynatrace.Validate(req, now)
	if vs != nil {
		return dtFail(c, http.StatusBadRequest, codeDynatraceConstraints, "Constraints violated.", vs...)
	}
	ctx := c.Request().Context()

	things := []string{""} // the channel as a whole
	var unknownTypes []string
	if rep.Selector != nil {
		sel, aerr := r.selectThings(ctx, tok.ChannelID, rep.SelectorText)
		if aerr != nil {
			if aerr.Code == apierr.InvalidEntitySelector {
				return dtFail(c, http.StatusBadRequest, apierr.InvalidEntitySelector, "Constraints violated.", dynatrace.Violation{Path: "entitySelector", Message: strings.TrimPrefix(aerr.Detail, "entitySelector: ")})
			}
			return dtFailAPI(c, aerr)
		}
		if sel.TooMany {
			return dtFail(c, http.StatusBadRequest, apierr.InvalidEntitySelector, "Constraints violated.", dynatrace.Violation{Path: "entitySelector",
				Message: "selects more than " + strconv.Itoa(reads.MaxSelected) + " entities; narrow it"})
		}
		things, unknownTypes = sel.ThingIDs, sel.UnknownTypes
	}

	out := dtResults{EventIngestResults: []dtResult{}}
	if len(things) == 0 && len(unknownTypes) > 0 {
		out.EventIngestResults = append(out.EventIngestResults, dtResult{Status: dtInvalidEntityType})
		return writeJSON(c, http.StatusCreated, out)
	}
	status := dtOK
	switch {
	case rep.MetadataError != "":
		status = dtInvalidMetadata
	case !rep.TimestampsValid(now):
		status = dtInvalidTimestamps
	}
	results := make([]dtResult, len(things))
	if status != dtOK {
		for i := range results {
			results[i].Status = status
		}
		out.EventIngestResults = results
		return writeJSON(c, http.StatusCreated, out)
	}

	// One report per selected Thing, a few at a time: a selector may pick
	// hundreds, and each is its own append.
	first := r.lanes.each(ctx, len(things), 16, func(ctx context.Context, i int) *apierr.Error {
		id, aerr := r.dtReport(ctx, tok.ChannelID, rep, things[i])
		if aerr == nil {
			results[i] = dtResult{Status: dtOK}
			if id != "" { // "": an ended problem that had no open Event (dtEnded)
				results[i].CorrelationID = &id
			}
		}
		return aerr
	})
	if first != nil {
		// Reports already appended stay appended; the tool retries the
		// request, which refreshes them (problems) or adds info events
		// again (Dynatrace's info events are not idempotent either).
		r.log.Warn("dynatrace: report failed", "channel_id", tok.ChannelID, "code", first.Code)
		return dtFailAPI(c, first)
	}
	out.ReportCount, out.EventIngestResults = len(results), results
	return writeJSON(c, http.StatusCreated, out)
}

// selectThings evaluates the selector over the channel's Things in the
// projection once it holds every Thing write this ingest process
// acknowledged (readfwd.Forwarder.FollowThingWrites), which costs no broker
// round trip. An empty answer is asked again after the projection has
// caught up with the whole log, so a Thing created through another replica
// just before its first report is found; a non-empty one may miss a Thing
// created through another replica in the last milliseconds, as Dynatrace's
// own selection lags entity discovery. A projector too far behind this
// process's Thing writes answers from the projection as it is (the
// forwarder's fallback), not with a refusal.
func (r *Routes) selectThings(ctx context.Context, channelID, selector string) (reads.SelectData, *apierr.Error) {
	req := &reads.Request{Route: reads.ThingsSelect, ChannelID: channelID, Selector: selector}
	sel, aerr := decodeSelection(r.d.Reader.Read(ctx, req))
	if aerr != nil || len(sel.ThingIDs) > 0 {
		return sel, aerr
	}
	return decodeSelection(r.d.Reader.ReadConsistent(ctx, req))
}

func decodeSelection(b []byte, aerr *apierr.Error) (reads.SelectData, *apierr.Error) {
	if aerr != nil {
		return reads.SelectData{}, aerr
	}
	var sel reads.SelectData
	if err := json.Unmarshal(b, &sel); err != nil {
		return reads.SelectData{}, apierr.New(apierr.InternalError)
	}
	return sel, nil
}

// dtReport appends one report about thing ("" for the channel) and
// returns its correlation id: the event id, stable while a problem is open.
func (r *Routes) dtReport(ctx context.Context, channelID string, rep *dynatrace.Report, thing string) (string, *apierr.Error) {
	start := wire.Millis(rep.Start)
	msg := rep.Description()
	if msg == "" {
		msg = rep.Title
	}
	ev := ops.EventRequest{
		Title:     ptr(ops.Truncate(rep.Title, 256)),
		Message:   ptr(ops.Truncate(msg, 512)),
		Severity:  ptr(rep.Severity()),
		EventTime: &start,
		StartedAt: &start,
		Tags:      []string{"dynatrace", rep.EventType},
		Attrs:     rep.Attrs(),
	}
	if d := rep.Description(); d != "" {
		ev.Description = &d
	}
	if thing != "" {
		ev.ThingID = &thing
	}
	if rep.Problem {
		ev.Status = ptr("open")
		key := alerts.Key{ChannelID: channelID, Source: "dynatrace", Value: rep.EventType + "\x00" + rep.Title + "\x00" + thing}
		if rep.Deadline <= r.d.Now().UnixMilli() {
			return r.dtEnded(ctx, key, rep, ev)
		}
		deadline := rep.Deadline
		out, aerr := r.d.Alerts.Open(ctx, alerts.Report{
			Key:   key,
			Event: ev,
			// What the report says; its times only move the deadline.
			ContentHash:  contentHash([]any{rep.EventType, rep.Title, rep.Properties, thing}),
			Deadline:     &deadline,
			LinkVerified: thing != "",
		})
		return out.EventID, aerr
	}
	// Info events are created and closed at once.
	ev.Status = ptr("info")
	ev.ChannelID = &channelID
	v, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, &ev)
	if aerr != nil {
		return "", aerr
	}
	v.LinkVerified = thing != ""
	// A safety net: should the close below never land (the broker timed
	// out, the client went away), the gateway closes the event a minute
	// later instead of leaving an info event open forever.
	v.Payload.(*ops.EventPayload).Deadline = ptr(max(rep.Start, r.d.Now().UnixMilli()) + 60_000)
	created, aerr := r.d.Appender.Append(ctx, v)
	if aerr != nil {
		return "", aerr
	}
	// An info event spans startTime to endTime when the report names one
	// (a deployment from its start to its end), else an instant; it is
	// recorded closed either way.
	end := start
	if rep.EndSent {
		end = wire.Millis(rep.Deadline)
	}
	closeReq := ops.EventRequest{ChannelID: &channelID, EventID: &created.EntityID, Status: ptr("info"),
		Message: ev.Message, Severity: ev.Severity, EventTime: &end, EndedAt: &end}
	cv, aerr := ops.ValidateIntegrationEvent(ops.EventClose, &closeReq)
	if aerr != nil {
		return "", aerr
	}
	cv.ExpectSeq = created.Seq
	if _, aerr := r.d.Appender.Append(ctx, cv); aerr != nil && aerr.Code != apierr.EventClosed && aerr.Code != apierr.SequenceMismatch {
		return "", aerr
	}
	return created.EntityID, nil
}

// dtEnded handles a problem reported after its end (its endTime has
// passed when the report comes): the key's open Event is closed at
// that end, status "closed", unless it was opened after that end (a later
// occurrence: the end is a stale one, re-sent); with none open nothing is
// appended, and the result carries no correlation id. Such a report is a tool ending a
// problem (as Dynatrace closes an open event whose endTime is sent), or
// re-sending that end after it landed, or reporting a problem only once it
// was over: opened as a live problem, as it was before, each alerted
// devices to a problem already over, and the deadline scan closed it a
// second later.
func (r *Routes) dtEnded(ctx context.Context, key alerts.Key, rep *dynatrace.Report, ev ops.EventRequest) (string, *apierr.Error) {
	end := wire.Millis(rep.Deadline)
	out, aerr := r.d.Alerts.CloseEnded(ctx, key, ops.EventRequest{Status: ptr("closed"), Message: ev.Message,
		Severity: ev.Severity, EventTime: &end, EndedAt: &end})
	if aerr != nil || out.Absent {
		return "", aerr
	}
	return out.EventID, nil
}

// dtEvent is the answer of GET /api/v2/events/{correlationId}: the event
// in Dynatrace's Event shape, as far as PushGo keeps it.
type dtEvent struct {
	EventID       string            `json:"eventId"`
	CorrelationID string            `json:"correlationId"`
	EventType     string            `json:"eventType,omitempty"`
	Title         string            `json:"title"`
	StartTime     int64             `json:"startTime"`
	EndTime       *int64            `json:"endTime,omitempty"`
	Status        string            `json:"status"`
	EntityID      *dtEntity         `json:"entityId,omitempty"`
	Properties    []dtEventProperty `json:"properties"`
}

type dtEntity struct {
	EntityID dtEntityID `json:"entityId"`
}

type dtEntityID struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

type dtEventProperty struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// dynatraceGet is GET /api/v2/events/{correlationId} (scope events.read).
func (r *Routes) dynatraceGet(c *echo.Context) error {
	tok, ok, err := r.dtAuthorize(c, apitokens.ScopeEventsRead)
	if !ok {
		return err
	}
	id := c.Param("correlationId")
	if !ids.ValidEntityID(id) {
		return dtFail(c, http.StatusNotFound, apierr.EventNotFound, "No event with this correlation id")
	}
	b, aerr := r.d.Reader.Read(c.Request().Context(), &reads.Request{Route: reads.EventGet, ChannelID: tok.ChannelID, EventID: id})
	if aerr != nil {
		if aerr.Code == apierr.EventNotFound {
			return dtFail(c, http.StatusNotFound, apierr.EventNotFound, "No event with correlation id "+id)
		}
		return dtFailAPI(c, aerr)
	}
	var snap struct {
		EventID   string         `json:"event_id"`
		ThingID   string         `json:"thing_id"`
		Title     string         `json:"title"`
		State     string         `json:"state"`
		StartedAt int64          `json:"started_at"`
		EndedAt   *int64         `json:"ended_at"`
		Tags      []string       `json:"tags"`
		Attrs     map[string]any `json:"attrs"`
		Deadline  *int64         `json:"deadline"`
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		return dtFailAPI(c, apierr.New(apierr.InternalError))
	}
	ev := dtEvent{EventID: snap.EventID, CorrelationID: snap.EventID, Title: snap.Title, StartTime: snap.StartedAt,
		EndTime: snap.EndedAt, Status: "OPEN", Properties: []dtEventProperty{}}
	if snap.State == ops.EventClosed {
		ev.Status = "CLOSED"
	} else if snap.Deadline != nil {
		ev.EndTime = snap.Deadline
	}
	if len(snap.Tags) == 2 && snap.Tags[0] == "dynatrace" {
		ev.EventType = snap.Tags[1]
	}
	if snap.ThingID != "" {
		ev.EntityID = &dtEntity{EntityID: dtEntityID{ID: snap.ThingID, Type: "THING"}}
	}
	for k, v := range snap.Attrs {
		s, ok := v.(string)
		if !ok {
			vb, _ := json.Marshal(v)
			s = string(vb)
		}
		ev.Properties = append(ev.Properties, dtEventProperty{Key: k, Value: s})
	}
	slices.SortFunc(ev.Properties, func(a, b dtEventProperty) int { return strings.Compare(a.Key, b.Key) })
	return writeJSON(c, http.StatusOK, ev)
}

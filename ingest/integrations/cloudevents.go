package integrations

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/integrations/alertmanager"
	"github.com/pushgo/gateway/ingest/integrations/eventbus"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// CloudEvents 1.0 over HTTP (spec integrations.md section 3): binary mode
// (ce-* headers), structured mode (application/cloudevents+json) and
// batched mode (application/cloudevents-batch+json), parsed by the
// CloudEvents SDK and recorded exactly as the event bus records its
// CloudEvents (same translation, same source+id op_ids: one CloudEvent
// sent through either route is one Event). Answers use the PushGo
// envelope: CloudEvents defines no response body.

// ceAnswer is the 200 data: one item per CloudEvent, in request order.
type ceAnswer struct {
	Events []ceEvent `json:"events"`
}

type ceEvent struct {
	ID      string `json:"id"`
	Source  string `json:"source"`
	EventID string `json:"event_id"`
}

// routeCloudEvents registers POST /cloudevents, and OPTIONS for the
// webhook handshake.
func (r *Routes) routeCloudEvents(e *echo.Echo) {
	e.POST(RouteCloudEvents, r.cloudEvents)
	e.OPTIONS(RouteCloudEvents, r.cloudEventsHandshake)
}

// cloudEventsHandshake answers the abuse-protection handshake of the
// CloudEvents HTTP webhook spec (section 4.1), which a sender such as Azure
// Event Grid makes before it delivers: the origin it names may deliver,
// at any rate (the integration limits bound what it sends). It takes no
// token: it grants nothing, every delivery still needs one, and the spec's
// senders send none with it. Without WebHook-Request-Origin it is no
// handshake: 400.
func (r *Routes) cloudEventsHandshake(c *echo.Context) error {
	origin := strings.TrimSpace(c.Request().Header.Get("WebHook-Request-Origin"))
	if origin == "" {
		return httpapi.WriteError(c, apierr.Fieldf(apierr.InvalidRequestBody, "WebHook-Request-Origin", "required: the CloudEvents webhook handshake names the sender's origin"))
	}
	h := c.Response().Header()
	h.Set("Allow", "POST, OPTIONS")
	h.Set("WebHook-Allowed-Origin", origin)
	h.Set("WebHook-Allowed-Rate", "*")
	return c.NoContent(http.StatusOK)
}

// cloudEvents records the CloudEvents of one request, each as an Event
// created and closed at once. Every CloudEvent is parsed, checked and
// validated before anything is appended.
func (r *Routes) cloudEvents(c *echo.Context) error {
	ctx := c.Request().Context()
	var tok apitokens.Token
	var aerr *apierr.Error
	if h := c.Request().Header.Get("Authorization"); h == "" && c.QueryParam("token") != "" {
		// A Knative Trigger's subscriber or a Source's sink is a URI
		// alone: it sends no header of ours, so the token may come in
		// the URI (the gateway logs paths, never queries).
		tok, aerr = r.d.Tokens.AuthorizeToken(ctx, c.QueryParam("token"), apitokens.ScopeEventsIngest)
	} else {
		tok, aerr = r.d.Tokens.Authorize(ctx, h, apitokens.ScopeEventsIngest)
	}
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	release, ok := r.admit(c, tok.ChannelID, tok.ID)
	if !ok {
		return httpapi.WriteError(c, &apierr.Error{Code: apierr.AppendUnavailable,
			Detail: "too many integration requests in flight; retry", RetryAfter: 1})
	}
	defer release()
	body, err := r.readBody(c)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return httpapi.WriteError(c, &apierr.Error{Code: apierr.PayloadTooLarge, Detail: err.Error()})
		}
		if errors.Is(err, errBodyTimeout) { // a slow network, not a bad event: retried
			return httpapi.WriteError(c, &apierr.Error{Code: apierr.AppendUnavailable, Detail: err.Error() + "; retry", RetryAfter: 1})
		}
		if _, code, ok := encodingRefusal(err); ok {
			return httpapi.WriteError(c, &apierr.Error{Code: code, Detail: err.Error()})
		}
		return httpapi.WriteError(c, &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "reading the request body: " + err.Error()})
	}
	evs, aerr := parseCloudEvents(ctx, c.Request().Header, body)
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}

	received := r.d.Now()
	occ := make([]occurrence, len(evs))
	for i := range evs {
		if occ[i], aerr = prepareOccurrence(&evs[i], tok.ChannelID, received); aerr != nil {
			return httpapi.WriteError(c, &apierr.Error{Code: aerr.Code, Detail: ceField(len(evs), i) + aerr.Detail})
		}
	}
	if aerr := r.recordAll(ctx, occ); aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	ans := ceAnswer{Events: make([]ceEvent, len(evs))}
	for i := range occ {
		ans.Events[i] = ceEvent{ID: evs[i].ID, Source: evs[i].Source, EventID: occ[i].eventID}
	}
	r.log.Debug("cloudevents: recorded", "channel_id", tok.ChannelID, "events", len(evs))
	if !acceptsJSON(c.Request().Header.Values("Accept")) {
		// An event sink's success, as the CloudEvents webhook spec and
		// Knative's data plane have it: 202 and no body. Knative's broker
		// takes a 2xx body that is not a CloudEvent for a failed delivery
		// (502), and delivered each event again until it dead-lettered.
		return c.NoContent(http.StatusAccepted)
	}
	return httpapi.WriteOK(c, ans)
}

// acceptsJSON reports whether an Accept header names application/json
// itself (not */*) at a quality above 0: a client that asks for the
// answer's JSON, which lists the Events recorded.
func acceptsJSON(accept []string) bool {
	for _, h := range accept {
		for _, r := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
			if err != nil || mt != "application/json" {
				continue
			}
			if q, ok := params["q"]; !ok {
				return true
			} else if v, err := strconv.ParseFloat(q, 64); err == nil && v > 0 {
				return true
			}
		}
	}
	return false
}

// parseCloudEvents reads the CloudEvents of a request in any of the three
// modes with the SDK's HTTP binding, and translates each into an
// eventbus.Event, checked.
func parseCloudEvents(ctx context.Context, header http.Header, body []byte) ([]eventbus.Event, *apierr.Error) {
	msg := cehttp.NewMessage(header, io.NopCloser(bytes.NewReader(body)))
	var ces []event.Event
	enc := msg.ReadEncoding()
	if enc == binding.EncodingBatch || enc == binding.EncodingStructured {
		// The SDK's JSON reader takes invalid UTF-8 and lone surrogate
		// escapes (as U+FFFD) and numbers beyond a float64: the body is
		// held to the gateway's wire rules first.
		if aerr := checkJSONBody(body); aerr != nil {
			return nil, aerr
		}
	}
	if enc == binding.EncodingBinary {
		// The context attributes: the SDK would keep invalid UTF-8 or
		// percent-encode it (source), so it is refused where it stands.
		for name, vs := range header {
			if !strings.HasPrefix(strings.ToLower(name), "ce-") {
				continue
			}
			if len(vs) > 1 {
				// The SDK would take the first and drop the others.
				return nil, apierr.Fieldf(apierr.InvalidJSONData, strings.ToLower(name), "header is sent more than once")
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return nil, apierr.Fieldf(apierr.InvalidJSONData, strings.ToLower(name), "header is not valid UTF-8")
				}
			}
		}
	}
	switch enc {
	case binding.EncodingBatch:
		var err error
		if ces, err = binding.ToEvents(ctx, msg, msg.BodyReader); err != nil {
			return nil, apierr.Fieldf(apierr.InvalidJSONData, "body", "not a CloudEvents batch: %v", err)
		}
		// An empty batch is a valid one (the JSON batch format's own
		// example): nothing to record, answered with no events.
		if n := len(ces); n > MaxCloudEventsBatch {
			return nil, apierr.Fieldf(apierr.InvalidJSONData, "body", "a batch must hold at most %d CloudEvents, got %d", MaxCloudEventsBatch, n)
		}
	case binding.EncodingBinary, binding.EncodingStructured:
		ce, err := binding.ToEvent(ctx, msg)
		if err != nil {
			return nil, apierr.Fieldf(apierr.InvalidJSONData, "body", "not a CloudEvent: %v", err)
		}
		ces = []event.Event{*ce}
	default:
		return nil, apierr.Fieldf(apierr.InvalidJSONData, "body",
			"not a CloudEvent: send ce-* headers (binary mode) or Content-Type %s or %s",
			event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON)
	}
	out := make([]eventbus.Event, len(ces))
	for i := range ces {
		ev, aerr := fromCloudEvent(&ces[i], ceField(len(ces), i))
		if aerr != nil {
			return nil, aerr
		}
		out[i] = ev
	}
	return out, nil
}

// MaxCloudEventsBatch is the most CloudEvents a batched-mode body may
// hold: Azure Event Grid's largest batch (its "max events per batch", 1
// to 5,000). The event bus route's 100 is its provider's rule; here it
// refused Event Grid's batches of more with a 400, which Event Grid does
// not retry: the whole batch was lost. The body's size bounds it too.
const MaxCloudEventsBatch = 5000

// checkJSONBody holds a JSON body the SDK will read to wire.Decode's rules:
// valid JSON in UTF-8 (no lone surrogate escape), no member name twice in
// an object (a CloudEvent's own attributes compared case-insensitively, as
// the SDK lower-cases extension names and the event bus route compares
// them), not both data and data_base64, numbers within a float64's range.
// The SDK itself keeps the last of two "id" members, and of "severity" and
// "Severity" whichever came last.
func checkJSONBody(body []byte) *apierr.Error {
	if !jsontext.Value(body).IsValid() {
		// Which rule it broke, read again only for the answer: a repeated
		// name or text that is not Unicode names its member, as
		// wire.Classify does.
		if f, ok := wire.FindFault(body); ok {
			return apierr.Fieldf(apierr.InvalidJSONData, f.Field(), "not a CloudEvent: %s", f.Reason())
		}
		return apierr.Fieldf(apierr.InvalidJSONData, "body", "not a CloudEvent: not valid JSON")
	}
	if aerr := checkAttributeNames(body); aerr != nil {
		return aerr
	}
	if p, found := wire.NumberOutOfRange(body); found {
		return apierr.Fieldf(apierr.InvalidJSONData, wire.Dotted(p), "%s", wire.OutOfRangeReason)
	}
	return nil
}

// checkAttributeNames checks the members of each CloudEvent object of
// body, valid JSON (one object, or an array of them): no name twice in
// any letter case, and not both data and data_base64.
func checkAttributeNames(body []byte) *apierr.Error {
	d := jsontext.NewDecoder(bytes.NewReader(body))
	batch := d.PeekKind() == '['
	if batch {
		if _, err := d.ReadToken(); err != nil {
			return nil // valid JSON: unreachable; the SDK answers
		}
	}
	for i := 0; d.PeekKind() == '{'; i++ {
		prefix := ""
		if batch {
			prefix = "events[" + strconv.Itoa(i) + "]: "
		}
		if _, err := d.ReadToken(); err != nil {
			return nil
		}
		seen := map[string]bool{}
		for d.PeekKind() == '"' {
			tok, err := d.ReadToken()
			if err != nil {
				return nil
			}
			name := strings.ToLower(tok.String())
			if seen[name] {
				return apierr.Fieldf(apierr.InvalidJSONData, "body", "%snot a CloudEvent: attribute %q is repeated (names match case-insensitively)", prefix, name)
			}
			seen[name] = true
			if err := d.SkipValue(); err != nil {
				return nil
			}
		}
		if seen["data"] && seen["data_base64"] {
			return apierr.Fieldf(apierr.InvalidJSONData, "body", "%snot a CloudEvent: data and data_base64 are both set", prefix)
		}
		if _, err := d.ReadToken(); err != nil { // '}'
			return nil
		}
		if !batch {
			break
		}
	}
	return nil
}

// ceField names the i-th of n CloudEvents in an error detail ("" for a
// single one).
func ceField(n, i int) string {
	if n == 1 {
		return ""
	}
	return "events[" + strconv.Itoa(i) + "]: "
}

// fromCloudEvent translates a parsed CloudEvent into an eventbus.Event:
// the extension attributes that spell event bus fields (level, region,
// eventaliasen, ...) fill them, "severity" (a PushGo severity) overrides
// the level, and every other extension becomes a "ce.<name>" attr.
func fromCloudEvent(ce *event.Event, prefix string) (eventbus.Event, *apierr.Error) {
	if err := ce.Validate(); err != nil {
		return eventbus.Event{}, &apierr.Error{Code: apierr.InvalidJSONData, Detail: prefix + "not a valid CloudEvent: " + err.Error()}
	}
	// Trimmed like the event bus's members, so that both routes derive the
	// same op_id from one CloudEvent.
	ev := eventbus.Event{
		ID: strings.TrimSpace(ce.ID()), Source: strings.TrimSpace(ce.Source()), Type: strings.TrimSpace(ce.Type()),
		SpecVersion: ce.SpecVersion(), Subject: strings.TrimSpace(ce.Subject()),
		DataContentType: strings.TrimSpace(ce.DataContentType()), Time: ce.Time(), Extensions: map[string]string{},
	}
	if ev.ID == "" {
		return eventbus.Event{}, apierr.Fieldf(apierr.InvalidJSONData, strings.TrimSuffix(prefix, ": ")+"id", "is required")
	}
	if s := ce.DataSchema(); s != "" {
		ev.Extensions["dataschema"] = s
	}
	for name, v := range ce.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			return eventbus.Event{}, &apierr.Error{Code: apierr.InvalidJSONData, Detail: prefix + name + ": " + err.Error()}
		}
		s = strings.TrimSpace(s)
		switch name {
		case "severity":
			// Extensions are free-form: one of the monitoring words
			// Alertmanager's labels use (error, warning, info, ...) sets
			// the Event's severity as there, and any other word is kept
			// as the attr it names, the severity left to the level; the
			// whole event was refused 400 for either, which no sender
			// retries.
			if sv, ok := eventbus.ParseSeverity(s); ok {
				ev.Severity = sv
			} else if sv, ok := monitoringSeverity(s); ok {
				ev.Severity = sv
			} else {
				ev.Extensions[name] = s
			}
		case "level":
			if l, ok := eventbus.ParseLevel(s); ok {
				ev.Level = l
			} else {
				ev.Extensions[name] = s
			}
		case "resourcetype":
			ev.ResourceType = s
		case "accountid":
			ev.AccountID = s
		case "eventsourcealias":
			ev.EventSourceAlias = s
		case "eventalias":
			ev.EventAlias = s
		case "eventaliasen":
			ev.EventAliasEn = s
		case "region":
			ev.Region = s
		case "recvtimestamp":
			ev.RecvTimestamp = s
		default:
			ev.Extensions[name] = s
		}
	}
	data, berr := ceData(ce, &ev)
	if berr != nil {
		return eventbus.Event{}, ceError(berr, prefix)
	}
	ev.Data = data
	if berr := ev.Check(""); berr != nil {
		return eventbus.Event{}, ceError(berr, prefix)
	}
	return ev, nil
}

// monitoringSeverity maps the severity words of monitoring tools that are
// not PushGo's as Alertmanager's labels.severity is mapped (error, major
// → high; warning → normal; info, none → low); false for any other.
func monitoringSeverity(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "error", "major", "warning", "info", "none":
		return alertmanager.Severity(s), true
	}
	return "", false
}

// ceData is a CloudEvent's data as the Event's attrs take it. A JSON
// object, or a string holding one, is read as the event bus reads its
// data. Any other data, which CloudEvents allows and its senders do not
// send again when refused (a string, an array, a number; a text body in
// binary mode; text that is not JSON, with a JSON content type or none),
// is the one member "data" (its text, or its JSON), or "data_base64" for
// bytes that are not UTF-8 text; its content type, when not JSON data, is
// then kept as the extension "datacontenttype".
func ceData(ce *event.Event, ev *eventbus.Event) (jsontext.Value, *eventbus.Error) {
	raw := ce.Data()
	if len(raw) == 0 {
		return nil, nil
	}
	ct := ev.DataContentType
	if v := jsontext.Value(raw); (ct == "" || eventbus.IsJSONContentType(ct)) && v.IsValid() {
		switch v.Kind() {
		case '{', 'n':
			return eventbus.NormalizeData(v, "data")
		case '"':
			if d, err := eventbus.NormalizeData(v, "data"); err == nil {
				return d, nil // a string holding an object
			}
			var text string
			if err := json.Unmarshal(v, &text); err != nil || strings.TrimSpace(text) == "" {
				return nil, nil
			}
			return wrapData("data", text)
		}
		return eventbus.NormalizeData(append(append([]byte(`{"data":`), v...), '}'), "data")
	}
	// Not JSON, said so or not: a binary-mode body without a content type,
	// data_base64 without datacontenttype (the Go SDK's SetData of bytes),
	// text under a JSON content type (the JS SDK's binary mode), kept as
	// sent rather than refused (no sender retries a 400) or dropped.
	if ct != "" {
		ev.Extensions["datacontenttype"] = ct
	}
	ev.DataContentType = ""
	if strings.TrimSpace(string(raw)) == "" {
		return nil, nil
	}
	if utf8.Valid(raw) {
		return wrapData("data", string(raw))
	}
	return wrapData("data_base64", base64.StdEncoding.EncodeToString(raw))
}

// wrapData is the data object {name: text}.
func wrapData(name, text string) (jsontext.Value, *eventbus.Error) {
	b, err := json.Marshal(map[string]string{name: text})
	if err != nil {
		return nil, &eventbus.Error{Code: eventbus.InvalidParameterValue, Field: "data", Reason: "must be valid UTF-8 text"}
	}
	return eventbus.NormalizeData(b, "data")
}

// ceError turns a check's rejection into the catalog code of its field.
func ceError(e *eventbus.Error, prefix string) *apierr.Error {
	code := apierr.InvalidJSONData
	switch e.Field {
	case "severity", "level":
		code = apierr.InvalidSeverity
	case "time":
		code = apierr.InvalidTimestamp
	}
	return &apierr.Error{Code: code, Detail: fmt.Sprintf("%s%s", prefix, e.Message())}
}

package integrations

import (
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/integrations/eventbus"
	"github.com/pushgo/gateway/schemas/apierr"
)

// Codes counted by pushgo_http_errors_total{route,code} for the refusals
// of a tool's own rules that no catalog code names. They are metric label
// values only (never answered: each tool's answer keeps its own shape),
// stable, and prefixed with the tool so they cannot be mistaken for
// catalog codes. Every other error answer of these routes is counted by
// the catalog code it stands for (invalid_api_token, scope_missing,
// payload_too_large, append_unavailable, event_not_found, ...).
const (
	// codeDynatraceConstraints: Dynatrace's 400 "Constraints violated."
	// (its field rules, listed in constraintViolations).
	codeDynatraceConstraints apierr.Code = "dynatrace_constraints_violated"
	// codeDynatraceEnvironment: the /e/{environment}/ of the URL is not
	// the token's channel (403).
	codeDynatraceEnvironment apierr.Code = "dynatrace_environment_mismatch"
	// codePagerDutyInvalidEvent: PagerDuty's 400 "invalid event" (its
	// event rules, listed in errors).
	codePagerDutyInvalidEvent apierr.Code = "pagerduty_invalid_event"
)

// countError records code as the error code of c's answer, for the errors
// metric, as the PushGo routes' error answers are recorded.
func countError(c *echo.Context, code apierr.Code) { httpapi.RecordErrorCode(c, code) }

// eventBusCode is the errors metric's code of an event bus refusal of its
// own rules: "eventbus_" and its code in lower case
// (eventbus_invalid_parameter, eventbus_invalid_parameter_value,
// eventbus_authorization_error, eventbus_internal_error).
func eventBusCode(c eventbus.Code) apierr.Code {
	return apierr.Code("eventbus_" + strings.ToLower(string(c)))
}

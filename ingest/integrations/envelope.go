package integrations

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
)

// pushgoEnvelope is PushGo's response shape (spec http-api.md section 1,
// the same as ingest/httpapi's): for the integration routes whose tool has
// no error shape of its own (Alertmanager, Grafana), so that a person
// reading the tool's logs sees the gateway's usual answer and error_code.
type pushgoEnvelope struct {
	Success   bool         `json:"success"`
	Data      any          `json:"data"`
	Error     *string      `json:"error"`
	ErrorCode *apierr.Code `json:"error_code"`
}

// writePushGoOK answers 200 with data in the success envelope.
func writePushGoOK(c *echo.Context, data any) error {
	return writeJSON(c, http.StatusOK, pushgoEnvelope{Success: true, Data: data})
}

// writePushGoErr answers e's status with the failure envelope, and
// Retry-After when e asks for one; e's code is counted by the errors
// metric.
func writePushGoErr(c *echo.Context, e *apierr.Error) error {
	countError(c, e.Code)
	msg, code := e.Detail, e.Code
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	return writeJSON(c, e.Status(), pushgoEnvelope{Error: &msg, ErrorCode: &code})
}

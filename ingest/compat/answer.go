package compat

import (
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
)

// writeOK answers status with data in PushGo's success envelope.
func writeOK(c *echo.Context, status int, data any) error {
	b, err := apierr.EncodeOK(data)
	if err != nil {
		return writeErr(c, apierr.New(apierr.InternalError))
	}
	return blob(c, status, b)
}

// writeErr answers e's status with PushGo's failure envelope, as the
// PushGo routes answer (ingest/httpapi/envelope.go): in the language the
// request's Accept-Language asks for (Content-Language says which), with
// PushGo's problem object carrying the answer's X-Request-Id, and
// Retry-After when e asks for one.
func writeErr(c *echo.Context, e *apierr.Error) error {
	l := apierr.NegotiateLocale(c.Request().Header.Get("Accept-Language"))
	b, err := apierr.EncodeErrorIn(e, l, c.Response().Header().Get("X-Request-Id"))
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Language", string(l))
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	return blob(c, e.Status(), b)
}

// blob writes a JSON answer with its Content-Length.
func blob(c *echo.Context, status int, b []byte) error {
	c.Response().Header().Set("Content-Length", strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}

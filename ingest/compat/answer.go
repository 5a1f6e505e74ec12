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

// writeErr answers e's status with PushGo's failure envelope, and
// Retry-After when e asks for one.
func writeErr(c *echo.Context, e *apierr.Error) error {
	b, err := apierr.EncodeError(e)
	if err != nil {
		return err
	}
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	return blob(c, e.Status(), b)
}

// blob writes a JSON answer with its Content-Length.
func blob(c *echo.Context, status int, b []byte) error {
	c.Response().Header().Set("Content-Length", strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}

package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
)

// writeOK answers 200 with data in the success envelope.
func writeOK(c *echo.Context, data any) error {
	b, err := apierr.EncodeOK(data)
	if err != nil {
		return writeErr(c, apierr.New(apierr.InternalError))
	}
	return blob(c, http.StatusOK, b)
}

// blob writes a JSON answer with its Content-Length, so that large answers
// (history pages) are not chunked.
func blob(c *echo.Context, status int, b []byte) error {
	c.Response().Header().Set("Content-Length", strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}

// writeErr answers e's status with the failure envelope, and Retry-After
// when e asks for one.
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

package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
)

// WriteOK and WriteError answer as every PushGo route does, for the
// routes other packages of ingest serve (the sender compat routes).
func WriteOK(c *echo.Context, data any) error { return writeOK(c, data) }

// WriteOKWith is WriteOK with the members of extra, a value that encodes
// as a JSON object, after the envelope's own: the compat routes answer
// with the members the tools' own clients read beside PushGo's envelope.
func WriteOKWith(c *echo.Context, data, extra any) error {
	b, err := apierr.EncodeOK(data)
	if err == nil {
		b, err = withMembers(b, extra)
	}
	if err != nil {
		return writeErr(c, apierr.New(apierr.InternalError))
	}
	return blob(c, http.StatusOK, b)
}

// ErrorMembersKey is the request context's key (echo's c.Set) of a
// func(*apierr.Error) any whose result, a value that encodes as a JSON
// object, adds members after the failure envelope's own: set before
// routing by the compat routes, whose tools' clients read their own
// members of an error too (ServerChan's SDK reads "code" whatever the
// status, and took a refusal without one for a success).
const ErrorMembersKey = "pushgo.errorMembers"

// withMembers is the JSON object b with the members of extra after its
// own.
func withMembers(b []byte, extra any) ([]byte, error) {
	x, err := json.Marshal(extra)
	if err != nil {
		return nil, err
	}
	if len(x) < 2 || x[0] != '{' || len(b) < 2 || b[len(b)-1] != '}' {
		return nil, errors.New("httpapi: members of a value that is not a JSON object")
	}
	if len(x) > 2 {
		b = append(append(b[:len(b)-1], ','), x[1:]...)
	}
	return b, nil
}

// WriteError: see WriteOK.
func WriteError(c *echo.Context, e *apierr.Error) error { return writeErr(c, e) }

// writeOK answers 200 with data in the success envelope
// ({"success": true, "data": ...}, no error members).
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

// writeErr answers e's status with the failure envelope in the language
// the request's Accept-Language asks for (error, problem.title and
// problem.localized_message; Content-Language says which, as PushGo),
// PushGo's problem object carrying the answer's X-Request-Id, and
// Retry-After when e asks for one.
func writeErr(c *echo.Context, e *apierr.Error) error {
	l := localeOf(c)
	b, err := apierr.EncodeErrorIn(e, l, requestIDOf(c))
	if err != nil {
		return err
	}
	if members, ok := c.Get(ErrorMembersKey).(func(*apierr.Error) any); ok {
		if b, err = withMembers(b, members(e)); err != nil {
			return err
		}
	}
	RecordErrorCode(c, e.Code)
	h := c.Response().Header()
	h.Set("Content-Language", string(l))
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	return blob(c, e.Status(), b)
}

// localeOf is the answer language the request's Accept-Language asks for.
func localeOf(c *echo.Context) apierr.Locale {
	return apierr.NegotiateLocale(c.Request().Header.Get("Accept-Language"))
}

// requestIDOf is the answer's X-Request-Id (set by the requestID
// middleware before any handler runs).
func requestIDOf(c *echo.Context) string { return c.Response().Header().Get(headerRequestID) }

// problemOf is e as a failed item of a batch answer (/channel/sync): its
// error text, code and problem object in the request's language.
func problemOf(c *echo.Context, e *apierr.Error) (text string, code apierr.Code, problem *apierr.Problem) {
	l := localeOf(c)
	return e.Text(l), e.Code, e.Problem(l, requestIDOf(c))
}

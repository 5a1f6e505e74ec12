package httpapi

import (
	"errors"
	"mime"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// readJSON returns the request body after checking its media type and
// size (ReadBody).
func readJSON(c *echo.Context) ([]byte, *apierr.Error) {
	r := c.Request()
	if r.ContentLength > wire.MaxBodyBytes {
		return nil, apierr.New(apierr.PayloadTooLarge)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" { // the common case, parsed for nothing
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, apierr.New(apierr.MissingJSONContentType)
		}
	}
	return ReadBody(c)
}

// ReadBody returns the request body of a PushGo or compat route, decoded
// as its Content-Encoding says (limits.ReadBody: gzip, or identity), up to
// wire.MaxBodyBytes. The limit is enforced on the bytes read, not on
// Content-Length, and on the bytes a gzip body decodes to, so a chunked
// body or a gzip bomb over 32 KiB is refused with 413 as well. Its
// refusals are bodyError's.
func ReadBody(c *echo.Context) ([]byte, *apierr.Error) {
	r := c.Request()
	if r.ContentLength > wire.MaxBodyBytes {
		return nil, apierr.New(apierr.PayloadTooLarge)
	}
	body, err := limits.ReadBody(c.Response(), r, wire.MaxBodyBytes)
	if err != nil {
		return nil, bodyError(c, err)
	}
	return body, nil
}

// bodyError is the answer to err, an error of limits.ReadBody:
//
//   - over the limit: 413 payload_too_large;
//   - a Content-Encoding not served: 415 unsupported_content_encoding (its
//     Accept-Encoding names gzip);
//   - a body that is not the gzip it says: 400 invalid_request_body;
//   - the read deadline (the server's for the whole request): 503
//     append_unavailable with Retry-After, as the integration routes answer
//     it. The body did not arrive in time, which says nothing of what it
//     would have been; a 400 told its sender to drop it;
//   - any other error of the transport (a body shorter than its
//     Content-Length, malformed chunks): 400 invalid_request_body, as
//     on the integration routes (a sender whose connection broke reads no
//     answer).
//
// A body that timed out closes the connection: nothing more is read.
func bodyError(c *echo.Context, err error) *apierr.Error {
	var tooLarge *http.MaxBytesError
	var unsupported *limits.UnsupportedEncodingError
	var invalid *limits.EncodingError
	switch {
	case errors.As(err, &tooLarge):
		return apierr.New(apierr.PayloadTooLarge)
	case errors.As(err, &unsupported):
		return &apierr.Error{Code: apierr.UnsupportedContentEncoding, Detail: unsupported.Error()}
	case errors.As(err, &invalid):
		return &apierr.Error{Code: apierr.InvalidRequestBody, Detail: invalid.Error()}
	case limits.ReadTimedOut(err):
		c.Response().Header().Set("Connection", "close")
		return &apierr.Error{Code: apierr.AppendUnavailable, Detail: "the request body did not arrive in time; nothing was done; retry", RetryAfter: 1}
	}
	return &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "request body could not be read"}
}

// decodeJSON reads and strictly decodes the body into v.
func decodeJSON(c *echo.Context, v any) *apierr.Error {
	body, aerr := readJSON(c)
	if aerr != nil {
		return aerr
	}
	return wire.Decode(body, v)
}

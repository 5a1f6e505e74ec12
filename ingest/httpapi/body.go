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
// size. The limit is enforced on the bytes read, not on Content-Length, so
// a chunked body over 32 KiB is refused with 413 as well.
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
	body, err := limits.ReadBody(c.Response(), r, wire.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierr.New(apierr.PayloadTooLarge)
		}
		return nil, &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "request body could not be read"}
	}
	return body, nil
}

// decodeJSON reads and strictly decodes the body into v.
func decodeJSON(c *echo.Context, v any) *apierr.Error {
	body, aerr := readJSON(c)
	if aerr != nil {
		return aerr
	}
	return wire.Decode(body, v)
}

package limits

import (
	"io"
	"net/http"
)

// ReadBody reads r's body to its end, up to max bytes counted on the bytes
// read (so a chunked body cannot get past it either; over it the error is
// an *http.MaxBytesError). It reads into a buffer of the size the request
// announces, up to preallocMax (a body announced larger grows as it
// arrives, so a slow sender cannot make the gateway hold memory for bytes
// it has not sent): io.ReadAll starts at 512 bytes and grows, copying,
// about seven times for an Alertmanager notification of 100 alerts.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength <= 0 || r.ContentLength > max {
		return io.ReadAll(body)
	}
	b := make([]byte, 0, min(r.ContentLength, preallocMax)+1) // +1: the read that meets the end needs no room of its own
	for {
		if len(b) == cap(b) { // announced over preallocMax, or longer than announced
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// preallocMax bounds the buffer ReadBody makes before the body arrives.
const preallocMax = 64 << 10

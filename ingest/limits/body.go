package limits

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
)

// ReadBody reads r's body to its end, decoded as its Content-Encoding says
// (DecodeBody: an *UnsupportedEncodingError or an *EncodingError
// otherwise), up to max bytes counted on the bytes read (so a chunked body
// cannot get past it either; over it the error is an *http.MaxBytesError).
// A gzip body is bounded twice: max of its bytes as sent, and max of the
// bytes they decode to (a small gzip bomb is as large as what it decodes
// to). It reads into a buffer of the size the request announces, up to
// preallocMax (a body announced larger grows as it arrives, so a slow
// sender cannot make the gateway hold memory for bytes it has not sent):
// io.ReadAll starts at 512 bytes and grows, copying, about seven times for
// an Alertmanager notification of 100 alerts. Any other error is the
// transport's: ReadTimedOut tells the read deadline's.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if err := DecodeBody(w, r, max); err != nil {
		return nil, err
	}
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

// ReadTimedOut reports whether err, from reading a request body, is the
// read deadline's: the server's (http.Server.ReadTimeout, the whole
// request's) or one a route set (BodyDeadline). The body did not arrive in
// time, which says nothing of what it would have been: answered as a
// retry, never as invalid input.
func ReadTimedOut(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// UnsupportedEncodingError: the request's Content-Encoding names a coding
// other than gzip (its alias x-gzip) and identity, or gzip more than once.
// Nothing of the body was read.
type UnsupportedEncodingError struct {
	Encoding string // the Content-Encoding as sent
}

func (e *UnsupportedEncodingError) Error() string {
	return "Content-Encoding " + e.Encoding + " is not supported: send the body as is (identity) or gzip"
}

// EncodingError: the body is not what its Content-Encoding says (not gzip,
// truncated gzip, a checksum that does not match, bytes after the last
// member): the sender's mistake, not the transport's.
type EncodingError struct {
	Encoding string
	Err      error // the decoder's error (not unwrapped: it may be io.ErrUnexpectedEOF, which is not the transport's here)
}

func (e *EncodingError) Error() string {
	return "request body is not valid " + e.Encoding + " (its Content-Encoding): " + e.Err.Error()
}

// AcceptedEncodings is the Accept-Encoding a refusal of a body's
// Content-Encoding answers with (RFC 9110, section 15.5.16): the codings
// DecodeBody decodes (identity is always accepted).
const AcceptedEncodings = "gzip"

// DecodeBody makes r's body its content decoded as r's Content-Encoding
// says (RFC 9110, section 8.4): identity (or none) leaves it as it is;
// gzip (x-gzip) replaces it with its decoded bytes, of unknown length
// (r.ContentLength -1), reading at most max bytes as sent (over them an
// *http.MaxBytesError, the bound of bytes that decode to nothing: empty
// gzip members), and removes the header, so a second call does nothing. A
// decoding error is an *EncodingError; the transport's errors are passed
// as they are. An empty body stays empty. Any other coding (deflate, br,
// zstd, compress, gzip twice) is refused with an
// *UnsupportedEncodingError, and w's Accept-Encoding says which it takes.
func DecodeBody(w http.ResponseWriter, r *http.Request, max int64) error {
	values := r.Header.Values("Content-Encoding")
	if len(values) == 0 {
		return nil
	}
	gz := false
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); {
			case c == "" || c == "identity":
			case (c == "gzip" || c == "x-gzip") && !gz:
				gz = true
			default:
				w.Header().Set("Accept-Encoding", AcceptedEncodings)
				return &UnsupportedEncodingError{Encoding: strings.Join(values, ", ")}
			}
		}
	}
	r.Header.Del("Content-Encoding")
	if gz {
		r.Body = &gzipBody{wire: wireReader{r: http.MaxBytesReader(w, r.Body, max)}}
		r.ContentLength = -1
	}
	return nil
}

// gzipBody is a request body's gzip content, its reader made at the first
// read (gzip.NewReader reads the header).
type gzipBody struct {
	wire wireReader
	zr   *gzip.Reader
	err  error // the error every read after a failed one returns
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.zr == nil {
		zr, err := gzip.NewReader(&g.wire)
		if err == io.EOF && g.wire.err == nil { // no byte at all: an empty body
			g.err = io.EOF
			return 0, io.EOF
		}
		if err != nil {
			g.err = g.fail(err)
			return 0, g.err
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		g.err = g.fail(err)
		err = g.err
	}
	return n, err
}

// fail is the error of a read that failed with err: the transport's when
// the bytes as sent could not be read (a deadline, the bound of max
// bytes, a connection cut), the decoding's otherwise.
func (g *gzipBody) fail(err error) error {
	if g.wire.err != nil {
		return g.wire.err
	}
	return &EncodingError{Encoding: "gzip", Err: err}
}

func (g *gzipBody) Close() error { return g.wire.r.Close() }

// wireReader is a body as sent, keeping the first error of its reads
// (but io.EOF).
type wireReader struct {
	r   io.ReadCloser
	err error
}

func (w *wireReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

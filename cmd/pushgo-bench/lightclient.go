package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// The light client is the load generator of the measured phases: a minimal
// HTTP/1.1 keep-alive client, one persistent TCP connection per worker, each
// request serialised into one reused buffer and written with one syscall,
// each response parsed from a bufio.Reader into a reused buffer. It costs a
// fraction of net/http's CPU, which matters because the gateway under test
// shares the machine (and the process) with it. net/http stays in use for
// the set-up and as -client nethttp.

// lightClient owns one connection per worker to one address.
type lightClient struct {
	addr  string
	conns []*lightConn
	// reconnects counts connections re-established after an error.
	reconnects atomic.Int64
}

func newLightClient(addr string, n int) *lightClient {
	lc := &lightClient{addr: addr, conns: make([]*lightConn, n)}
	for i := range lc.conns {
		lc.conns[i] = &lightConn{lc: lc}
	}
	return lc
}

// conn is worker i's connection; only that worker may use it.
func (lc *lightClient) conn(i int) *lightConn { return lc.conns[i%len(lc.conns)] }

// close closes every connection. No request may be in flight.
func (lc *lightClient) close() {
	for _, c := range lc.conns {
		c.drop()
	}
}

// lightConn is one keep-alive connection and its buffers.
type lightConn struct {
	lc       *lightClient
	c        net.Conn
	br       *bufio.Reader
	req      []byte
	body     []byte
	lastUsed time.Time
	failed   bool // the last request failed: the next dial is a reconnect
}

// staleAfter is how long a connection may sit idle before it is replaced
// rather than reused: well under the gateway's 2-minute idle timeout, so a
// request is never written to a connection the server is closing.
const staleAfter = 30 * time.Second

// maxResponse bounds a response body (a /channel/history page of 1000
// operations is about half a megabyte).
const maxResponse = 8 << 20

func (c *lightConn) drop() {
	if c.c != nil {
		_ = c.c.Close()
		c.c, c.br = nil, nil
	}
}

func (c *lightConn) dial(ctx context.Context) error {
	if c.c != nil && time.Since(c.lastUsed) < staleAfter {
		return nil
	}
	c.drop()
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.lc.addr)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if c.failed {
		c.lc.reconnects.Add(1)
		c.failed = false
	}
	c.c, c.lastUsed = conn, time.Now()
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// post sends one POST with a JSON body and requires HTTP 200 with the
// success envelope. It returns the response body, valid until the next
// call on this connection. Any transport or protocol error closes the
// connection; the next call reconnects.
func (c *lightConn) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	return c.do(ctx, "POST", path, body)
}

// get is post's GET (no body).
func (c *lightConn) get(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, "GET", path, nil)
}

func (c *lightConn) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	resp, err := c.exchange(ctx, method, path, "", body)
	if err != nil {
		return nil, err
	}
	if resp.status != 200 || !bytes.HasPrefix(resp.body, successPrefix) {
		return nil, fmt.Errorf("%s %d %s", path, resp.status, errorCode(resp.body))
	}
	return resp.body, nil
}

// exchange sends one request, with header (complete "Name: value\r\n"
// lines, or "") added to the fixed ones, and returns the response whatever
// its status: the integration routes answer 201 and their own envelopes.
// Only transport and protocol failures are errors. The body is valid until
// the next call on this connection.
func (c *lightConn) exchange(ctx context.Context, method, path, header string, body []byte) (response, error) {
	if err := c.dial(ctx); err != nil {
		c.failed = true
		return response{}, fmt.Errorf("dial: %w", err)
	}
	c.req = appendRequest(c.req[:0], method, path, c.lc.addr, header, body)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(opTimeout)
	}
	_ = c.c.SetDeadline(deadline)
	if _, err := c.c.Write(c.req); err != nil {
		c.drop()
		c.failed = true
		return response{}, fmt.Errorf("transport: write: %w", err)
	}
	resp, err := readResponse(c.br, c.body[:0])
	c.lastUsed = time.Now()
	if err != nil {
		c.drop()
		c.failed = true
		return response{}, fmt.Errorf("transport: read response: %w", err)
	}
	c.body = resp.body[:0]
	if resp.close {
		c.drop()
	}
	return resp, nil
}

// appendRequest serialises a request; a POST carries a JSON body. header
// holds extra complete header lines (each ending in CRLF), or is "".
func appendRequest(dst []byte, method, path, host, header string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	dst = append(dst, header...)
	if method == "GET" {
		return append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Type: application/json\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

// response is one parsed HTTP response.
type response struct {
	status int
	body   []byte
	close  bool // the server closes the connection after this response
}

var errMalformed = errors.New("malformed response")

// readResponse reads one HTTP/1.x response from br, appending the body to
// buf. The body must be delimited by Content-Length or chunked encoding
// (the gateway's small answers carry a Content-Length; net/http chunks the
// ones larger than its 2 KB buffer, such as history pages). Header lines
// are looked at only for Content-Length, Transfer-Encoding and Connection.
func readResponse(br *bufio.Reader, buf []byte) (response, error) {
	var r response
	line, err := readLine(br)
	if err != nil {
		return r, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return r, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return r, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
		}
		r.status = r.status*10 + int(d-'0')
	}
	http10 := line[7] == '0'
	r.close = http10
	contentLength, chunked := int64(-1), false
	for {
		line, err := readLine(br)
		if err != nil {
			return r, err
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r, fmt.Errorf("%w: header line %q", errMalformed, truncate(line))
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (contentLength >= 0 && n != contentLength) {
				return r, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			if !asciiEqualFold(value, "chunked") {
				return r, fmt.Errorf("%w: Transfer-Encoding %q not supported", errMalformed, value)
			}
			chunked = true
		case asciiEqualFold(name, "connection"):
			if asciiEqualFold(value, "close") {
				r.close = true
			} else if asciiEqualFold(value, "keep-alive") {
				r.close = false
			}
		}
	}
	switch {
	case chunked:
		r.body, err = readChunked(br, buf)
	case contentLength >= 0:
		if contentLength > maxResponse {
			return r, fmt.Errorf("%w: body of %d bytes", errMalformed, contentLength)
		}
		r.body, err = readN(br, buf, int(contentLength))
	case r.status == 204 || r.status == 304 || r.status < 200:
		r.body = buf
	default:
		return r, fmt.Errorf("%w: status %d without Content-Length or chunked body", errMalformed, r.status)
	}
	if err != nil {
		return r, err
	}
	return r, nil
}

// readLine reads one CRLF- (or LF-) terminated line without its
// terminator. The slice is valid until the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformed, br.Size())
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readN appends exactly n bytes from br to buf.
func readN(br *bufio.Reader, buf []byte, n int) ([]byte, error) {
	start := len(buf)
	if cap(buf)-start < n {
		nb := make([]byte, start, start+n)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:start+n]
	if _, err := io.ReadFull(br, buf[start:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// readChunked appends a chunked body to buf and consumes its trailer.
func readChunked(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 { // chunk extensions
			line = line[:i]
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: chunk size %q", errMalformed, truncate(line))
		}
		if size == 0 {
			for { // trailer fields, then the final empty line
				line, err := readLine(br)
				if err != nil {
					return nil, err
				}
				if len(line) == 0 {
					return buf, nil
				}
			}
		}
		if len(buf)+int(size) > maxResponse {
			return nil, fmt.Errorf("%w: chunked body over %d bytes", errMalformed, maxResponse)
		}
		if buf, err = readN(br, buf, int(size)); err != nil {
			return nil, err
		}
		if line, err := readLine(br); err != nil {
			return nil, err
		} else if len(line) != 0 {
			return nil, fmt.Errorf("%w: no CRLF after chunk", errMalformed)
		}
	}
}

// asciiEqualFold compares b with the lower-case ASCII string s, ignoring
// the case of b.
func asciiEqualFold[T []byte | string](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

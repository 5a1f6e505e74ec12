// Package apitest is the HTTP test client the test suites share: it talks
// to a PushGo HTTP API (an ingest handler behind httptest, a whole gateway,
// or a pushgo process) and hands back each answer whole: status, headers,
// raw body and the decoded PushGo envelope {success, data, error,
// error_code}.
//
// It lives in the ingest module, next to the HTTP API it is a client of,
// because every suite that speaks HTTP can import it there: ingest's own
// tests, and the root module's (e2e, internal/gateway,
// internal/deliveryflow), which requires ingest already. It imports only
// the standard library, and nothing of ingest: the envelope is decoded
// from its documented wire form, so a suite using it stays a black-box
// test of that form.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// Client sends requests to one PushGo HTTP API. Its zero value is not
// usable: Base is required. A Client is safe for concurrent use (Do from
// any goroutine; Send, Post and Get from the goroutine of the t they are
// given, as testing requires for t.Fatal).
type Client struct {
	// Base is the API's root URL, e.g. "http://127.0.0.1:8080", without a
	// trailing slash; a request's path is appended to it.
	Base string
	// Bearer, when not empty, is sent as "Authorization: Bearer <Bearer>"
	// on every request whose hdr does not set Authorization (PUSHGO_TOKEN).
	Bearer string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// RequireJSON makes Send, Post and Get fail the test when an answer's
	// body is not JSON (every PushGo route answers JSON).
	RequireJSON bool
}

// New returns a Client of the API at base with the default HTTP client.
func New(base string) *Client { return &Client{Base: base} }

// Envelope is the PushGo response envelope. On success Success is true,
// Data holds the route's data and Error and ErrorCode are nil (the members
// are absent); on failure Data is nil and Error and ErrorCode say why (the
// problem object beside them is in Reply.Body).
type Envelope struct {
	Success   bool           `json:"success"`
	Data      map[string]any `json:"data"`
	Error     *string        `json:"error"`
	ErrorCode *string        `json:"error_code"`
}

// Code is the error_code, "" when it is null or absent.
func (e Envelope) Code() string {
	if e.ErrorCode == nil {
		return ""
	}
	return *e.ErrorCode
}

// Str is the string member key of Data, "" when it is absent or not a
// string.
func (e Envelope) Str(key string) string { s, _ := e.Data[key].(string); return s }

// Reply is one complete answer.
type Reply struct {
	// Method and Path are the request's ("POST", "/event/create").
	Method, Path string
	Status       int
	Header       http.Header
	// Body is the raw answer body.
	Body []byte
	// Envelope is Body decoded as the PushGo envelope: numbers are
	// float64, members are matched as encoding/json does. It is the zero
	// Envelope when Body is not JSON (see JSONErr), and holds whatever
	// members match when Body is JSON of another shape (an integration's
	// own answer).
	Envelope
	// JSONErr is why Body did not decode, nil when it did.
	JSONErr error
}

// String is "METHOD /path -> status body", for failure messages.
func (r *Reply) String() string {
	return fmt.Sprintf("%s %s -> %d %s", r.Method, r.Path, r.Status, bytes.TrimSpace(r.Body))
}

// Object decodes Body as any JSON object (numbers as float64), for answers
// that are not the PushGo envelope; it fails t when Body is not one.
func (r *Reply) Object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("%s %s: body %q: %v", r.Method, r.Path, r.Body, err)
	}
	return m
}

// Do sends one request and reads the whole answer. It returns an error
// only when no complete answer was received, so it may be called from any
// goroutine.
//
// body is sent as is when it is []byte, string or an io.Reader (a reader
// of unknown length is sent chunked), is no body when nil (a nil []byte
// too), and is JSON-encoded otherwise. A request with a body carries
// "Content-Type: application/json". hdr is applied last: each key
// replaces what was set (Content-Type, the Bearer), and a key whose only
// value is "" removes the header (a request without Content-Type).
func (c *Client) Do(ctx context.Context, method, path string, body any, hdr http.Header) (*Reply, error) {
	rd, err := reader(body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	for k, vs := range hdr {
		req.Header.Del(k)
		for _, v := range vs {
			if v != "" {
				req.Header.Add(k, v)
			}
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &Reply{Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: b}
	r.JSONErr = json.Unmarshal(b, &r.Envelope)
	return r, nil
}

func reader(body any) (io.Reader, error) {
	switch v := body.(type) {
	case nil:
		return nil, nil
	case []byte:
		if v == nil {
			return nil, nil
		}
		return bytes.NewReader(v), nil
	case string:
		return bytes.NewReader([]byte(v)), nil
	case io.Reader:
		return v, nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode body %T: %w", body, err)
		}
		return bytes.NewReader(b), nil
	}
}

// Send is Do with no deadline but the HTTP client's, failing t when no
// answer comes (or, with RequireJSON, when the answer is not JSON).
func (c *Client) Send(t testing.TB, method, path string, body any, hdr http.Header) *Reply {
	t.Helper()
	r, err := c.Do(context.Background(), method, path, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if c.RequireJSON && r.JSONErr != nil {
		t.Fatalf("%s %s: non-JSON answer %d %q", method, path, r.Status, r.Body)
	}
	return r
}

// Post sends body (see Do) to path with POST; see Send.
func (c *Client) Post(t testing.TB, path string, body any) *Reply {
	t.Helper()
	return c.Send(t, http.MethodPost, path, body, nil)
}

// Get sends a GET of pathAndQuery with the headers hdr (may be nil); see
// Send.
func (c *Client) Get(t testing.TB, pathAndQuery string, hdr http.Header) *Reply {
	t.Helper()
	return c.Send(t, http.MethodGet, pathAndQuery, nil, hdr)
}

// MustOK fails t unless r is a 200 whose envelope says success, and
// returns r.
func MustOK(t testing.TB, r *Reply) *Reply {
	t.Helper()
	if r.Status != http.StatusOK || !r.Success {
		t.Fatalf("%s %s: want 200, got %d %s", r.Method, r.Path, r.Status, r.Body)
	}
	return r
}

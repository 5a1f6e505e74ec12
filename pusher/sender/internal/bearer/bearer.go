// Package bearer is the HTTP transport that puts a provider credential on
// every request of a sender and, when the provider answers that the
// credential has expired, sends the request once more with a fresh one.
//
// The credential comes from a source the sender was given (a .p8 key
// signer, the PushGo token service). The second attempt follows the PushGo
// gateway (src/providers/apns_client.rs: one retry after 403
// ExpiredProviderToken with refresh_now; src/providers/fcm_client.rs: one
// retry with token_info_fresh after 401/403): the source is told which
// token was rejected, so many requests rejected at once cause one refresh,
// not one each.
//
// The Transport sits below sender/internal/attempt, so the attempt record
// sees one round trip: the final answer.
package bearer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxRejectedBody bounds how much of a rejection's body is read to decide
// whether to retry; provider error bodies are a few hundred bytes.
const maxRejectedBody = 8 << 10

// Transport authorizes requests. Base and Authorize are required.
type Transport struct {
	// Base sends the authorized requests.
	Base http.RoundTripper
	// Authorize adds the credential to req, a copy the Transport owns:
	// its header map (Set, never a change to a value slice in place), and
	// its URL field, which Authorize may point at a URL of its own when the
	// credential decides it (never change the URL it points at). It returns
	// the token it used. An error fails the round trip without a request
	// (as a *CredentialError); it must not contain a credential.
	Authorize func(req *http.Request) (token string, err error)
	// Expired reports whether an answer rejects the token as expired, so
	// that a fresh token may succeed. body is the start of the answer's
	// body. Nil: never.
	Expired func(status int, body []byte) bool
	// Invalidate tells the source that token was rejected as expired; the
	// next Authorize should use a fresh one. Nil disables the second
	// attempt.
	Invalidate func(token string)
	// OwnsRequests: every request given to RoundTrip was made for this
	// round trip alone, and its maker never reads it again, so Authorize
	// is given the request itself rather than a copy (a copy's header map
	// was 4% of what the delivery latency row allocated). Set it only for
	// a sender that builds a request per send (APNs), never below an SDK
	// or client that may keep or reuse its requests.
	OwnsRequests bool
}

// CredentialError is the error of a round trip that sent nothing because
// Authorize had no credential to put on it (the token source failed: a
// credentials file the token endpoint refuses, a token service down). The
// senders report it as reason "auth", not "connection": the provider was
// never asked, and what needs mending is the credential, not the network
// to the provider.
type CredentialError struct{ Err error }

func (e *CredentialError) Error() string { return e.Err.Error() }
func (e *CredentialError) Unwrap() error { return e.Err }

// IsCredential reports whether err, or an error it wraps (an *url.Error
// of an HTTP client), is a *CredentialError.
func IsCredential(err error) bool {
	var ce *CredentialError
	return errors.As(err, &ce)
}

// RoundTrip implements http.RoundTripper. A request whose body cannot be
// replayed (no GetBody) is never sent twice.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req
	if !t.OwnsRequests {
		r = withOwnHeader(req)
	}
	tok, err := t.Authorize(r)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &CredentialError{Err: err}
	}
	resp, err := t.Base.RoundTrip(r)
	if err != nil || t.Expired == nil || t.Invalidate == nil || req.GetBody == nil ||
		(resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxRejectedBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil || !t.Expired(resp.StatusCode, body) {
		return resp, nil
	}

	t.Invalidate(tok)
	again := req.Clone(req.Context())
	fresh, err := t.Authorize(again)
	if err != nil || fresh == tok {
		// No better token: the rejection stands.
		return resp, nil
	}
	if again.Body, err = req.GetBody(); err != nil {
		return nil, fmt.Errorf("bearer: replay body: %w", err)
	}
	return t.Base.RoundTrip(again)
}

// withOwnHeader is a shallow copy of req whose header map is its own: what
// Authorize sets leaves req as the caller made it (a RoundTripper must not
// change it), and the values it does not set are shared, never changed.
// req.Clone copied the URL and every header value as well, for each push.
func withOwnHeader(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		r.Header[k] = v
	}
	return r
}

// CloseIdleConnections forwards to the base transport (apns2's
// Client.CloseIdleConnections needs it).
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

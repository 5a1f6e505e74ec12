package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Exit codes of every command: the contract scripts branch on.
const (
	ExitOK = 0
	// ExitRefused: the gateway answered and refused the request (a 4xx
	// other than a rate limit: bad credentials, unknown channel, a
	// validation error, a conflict). Retrying the same request is useless.
	ExitRefused = 1
	// ExitUsage: the command line or the credentials are wrong before
	// anything was sent (unknown flag, missing channel or password, a
	// credentials file others can read).
	ExitUsage = 2
	// ExitUnavailable: the gateway could not take the request now (network
	// error, time-out, 5xx, or 429/503 still answered after the retries).
	// A write retried later with the same --op-id is applied at most once.
	ExitUnavailable = 3
	// ExitInterrupted: SIGINT or SIGTERM came before the answer (128 +
	// SIGINT, as a shell reports it). tail, which runs until stopped,
	// ends with ExitOK instead.
	ExitInterrupted = 130
)

// apiError is a request that failed, with the exit code it maps to.
type apiError struct {
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Code and Message are the gateway's error_code and error (empty when
	// the answer was not the gateway's JSON envelope).
	Code, Message string
	// RetryAfter is the answer's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Err is the transport error when no answer came.
	Err error
	// Hint is what the user should know besides the answer (a create that
	// may have been applied, and how to check); "" when nothing.
	Hint string
	// Unsent says that no attempt of the request reached a handler (each
	// connection refused, or turned away by the rate limit).
	Unsent bool
}

func (e *apiError) Error() string {
	var s string
	switch {
	case e.Status == 0:
		s = fmt.Sprintf("gateway unavailable: %v", e.Err)
	case e.Code != "":
		s = fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.detail())
	default:
		s = fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.detail())
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// detail is the gateway's message with the Retry-After it came with.
func (e *apiError) detail() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (Retry-After: %s)", e.Message, e.RetryAfter)
	}
	return e.Message
}

// passwordLockout says whether e is the gateway refusing the credentials
// after too many failed password checks: a 429 that no retry within the
// CLI's waits can get past, and whose cure is the right password.
func (e *apiError) passwordLockout() bool {
	return e.Status == http.StatusTooManyRequests && e.Code == string(apierr.TooManyPasswordFailures)
}

func (e *apiError) Unwrap() error { return e.Err }

// exitCode is the documented exit code of e.
func (e *apiError) exitCode() int {
	switch {
	case e.passwordLockout():
		return ExitRefused
	case e.Status == 0, e.Status >= 500, e.Status == http.StatusTooManyRequests:
		return ExitUnavailable
	default:
		return ExitRefused
	}
}

// usageError is a mistake of the command line or of the credentials,
// found before any request: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// client speaks the gateway's HTTP API: JSON bodies in, the PushGo
// envelope out, with a bound per attempt and retries where a retry cannot
// apply a request twice.
type client struct {
	base  *url.URL
	token string // PUSHGO_TOKEN of a private gateway; "" sends none
	http  *http.Client
	// timeout bounds one attempt (connect, send, answer).
	timeout time.Duration
	// retries is how many times a request is sent again after a 429 or
	// 503 (waiting Retry-After), or after a transport error when safe.
	retries int
	// maxWait bounds one wait between attempts: a Retry-After longer than
	// it ends the retries (the caller is told when to come back).
	maxWait time.Duration
	// sleep waits between attempts; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	// warn reports a retry on stderr.
	warn func(format string, args ...any)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseServer checks a --server / PUSHGO_URL value: an http(s) URL with a
// host; a bare host:port means http.
func parseServer(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the whole input, userinfo included.
		return nil, usagef("server: not a URL: want an http(s) URL such as http://127.0.0.1:8080")
	}
	// Named without its userinfo at all: Redacted hides a password only,
	// and a URL's user part may be a token (https://TOKEN@host).
	shown := *u
	shown.User = nil
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("server %q: want an http(s) URL such as http://127.0.0.1:8080", shown.String())
	}
	if u.User != nil {
		return nil, usagef("server %q: credentials do not belong in the URL (use PUSHGO_TOKEN or --credentials)", shown.String())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// retryKind says when a request may be sent again.
type retryKind int

const (
	// retrySafe: sending it twice does no harm (a read, or a write that
	// carries an op_id): retried after 429, 503 and transport errors.
	retrySafe retryKind = iota
	// retryUnsent: a write without an op_id (channel create, token create
	// and revoke): retried only when the gateway certainly did not apply
	// it: a refused connection, or a 429 rate_limited (the limit is checked
	// before the handler runs). Not after a 503: broker_unavailable also
	// answers a create whose reply timed out after the broker stored it.
	retryUnsent
)

// do sends one request and returns the envelope's data (raw JSON) of a
// 200, or an *apiError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, header http.Header, body any, kind retryKind) (json.RawMessage, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	unsent := true
	for attempt := 0; ; attempt++ {
		data, aerr := c.once(ctx, method, u.String(), header, payload)
		if aerr == nil {
			return data, nil
		}
		unsent = unsent && certainlyUnapplied(aerr)
		aerr.Unsent = unsent
		if ctx.Err() != nil || attempt >= c.retries || !retryable(aerr, kind) {
			return nil, aerr
		}
		wait := aerr.RetryAfter
		if wait == 0 {
			wait = time.Duration(1<<attempt) * 500 * time.Millisecond
		}
		if wait > c.maxWait {
			return nil, aerr
		}
		c.warn("%s %s: %v; retrying in %s", method, path, aerr, wait)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, aerr
		}
	}
}

func retryable(e *apiError, kind retryKind) bool {
	switch {
	case e.passwordLockout():
		return false
	case kind == retrySafe:
		return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable
	default:
		return certainlyUnapplied(e)
	}
}

// certainlyUnapplied says whether the gateway certainly did not apply the
// request e answers: the connection was refused, or the rate limit turned
// it away before any handler ran.
func certainlyUnapplied(e *apiError) bool {
	if e.Status == 0 {
		return errors.Is(e.Err, syscall.ECONNREFUSED)
	}
	return e.Status == http.StatusTooManyRequests && e.Code == string(apierr.RateLimited)
}

// mayHaveApplied adds hint to err when err is a retryUnsent request's
// failure that leaves open whether the gateway applied it (no answer in
// time, a 5xx): the user is told before running the command again.
func mayHaveApplied(err error, hint string) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.exitCode() == ExitUnavailable && !certainlyUnapplied(ae) {
		ae.Hint = hint
	}
	return err
}

// once is one attempt, bounded by c.timeout.
func (c *client) once(ctx context.Context, method, rawURL string, header http.Header, payload []byte) (json.RawMessage, *apiError) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, &apiError{Err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pushgo-cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &apiError{Err: transportError(err)}
	}
	defer resp.Body.Close()
	if aerr := redirectError(resp, c.base); aerr != nil {
		return nil, aerr
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &apiError{Err: fmt.Errorf("read the answer: %w", err)}
	}
	return decodeEnvelope(resp.StatusCode, resp.Header, raw)
}

// noRedirects is the CheckRedirect of the CLI's HTTP clients: a redirect
// is not followed, since it would send the channel password (in the body
// or a header) to wherever the Location points; redirectError reports it.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redirectError is the error of a redirect answer (3xx with a Location),
// nil for any other: the gateway lives elsewhere, and the user, not the
// CLI, decides to send the password there. Exit 1: the same request would
// be redirected again. base is the configured gateway URL: when the
// Location is the same route under another base (http to https, another
// host or prefix), the message names that base, which is what PUSHGO_URL
// takes.
func redirectError(resp *http.Response, base *url.URL) *apiError {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil
	}
	loc, err := resp.Location()
	if err != nil {
		return nil // no Location: an ordinary answer, decoded as one
	}
	where := loc.Redacted()
	route := strings.TrimPrefix(resp.Request.URL.Path, base.Path)
	if prefix, ok := strings.CutSuffix(loc.Path, route); ok && route != "" {
		where = (&url.URL{Scheme: loc.Scheme, Host: loc.Host, Path: prefix}).String()
	}
	return &apiError{
		Status: resp.StatusCode,
		Message: fmt.Sprintf("the gateway redirected to %s: set PUSHGO_URL (or --server) to it "+
			"(redirects are not followed: they would take the channel password along)", where),
	}
}

// transportError names a time-out plainly (net/http's wording repeats the
// URL and the context).
func transportError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer in time: %w", err)
	}
	return err
}

// decodeEnvelope reads a PushGo envelope: data of a success, or the
// error_code and error of a failure. An answer that is not the envelope
// (a proxy's error page) keeps its status and a short excerpt.
func decodeEnvelope(status int, h http.Header, raw []byte) (json.RawMessage, *apiError) {
	var env struct {
		Success   bool            `json:"success"`
		Data      json.RawMessage `json:"data"`
		Error     *string         `json:"error"`
		ErrorCode *string         `json:"error_code"`
	}
	jsonErr := json.Unmarshal(raw, &env)
	if status == http.StatusOK && jsonErr == nil && env.Success {
		return env.Data, nil
	}
	e := &apiError{Status: status, RetryAfter: retryAfter(h)}
	if status == http.StatusOK {
		// A 200 that is not a success envelope: not the gateway.
		e.Status = http.StatusBadGateway
	}
	if jsonErr == nil && env.ErrorCode != nil {
		e.Code = *env.ErrorCode
		if env.Error != nil {
			e.Message = *env.Error
		}
		return nil, e
	}
	excerpt := strings.TrimSpace(string(raw))
	if len(excerpt) > 200 {
		excerpt = excerpt[:200] + "…"
	}
	e.Message = "not a PushGo answer: " + strconv.Quote(excerpt)
	return nil, e
}

// retryAfter is Retry-After in seconds (the gateway's form), 0 when absent
// or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

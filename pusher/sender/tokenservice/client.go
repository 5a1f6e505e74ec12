package tokenservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
)

// Provider names a push provider as the token service's provider query
// parameter spells it.
type Provider string

// Providers the token service grants tokens for (PushGo also has "wns",
// which this gateway does not serve).
const (
	APNs Provider = "apns"
	FCM  Provider = "fcm"
)

// Environment is the APNs environment a provider token is for: the token
// service signs sandbox and production tokens with different paths.
type Environment string

// APNs environments, as the token service's path spells them.
const (
	Production Environment = "production"
	Sandbox    Environment = "sandbox"
)

// Paths of the token service (gateway src/token_providers/remote/gateway.rs:
// TOKEN_ENDPOINT_PATH, TOKEN_PRODUCTION_ENDPOINT_PATH,
// TOKEN_SANDBOX_ENDPOINT_PATH).
const (
	pathToken      = "/provider/token"
	pathProduction = "/provider/token/production"
	pathSandbox    = "/provider/token/sandbox"
)

// DefaultUserAgent is the User-Agent of token requests. The PushGo gateway
// sends "pushgo-gateway/<version>" and no other identifying header; this
// gateway sends the same product name and the PushGo release whose token
// client it follows, marked as the Go implementation.
const DefaultUserAgent = "pushgo-gateway/1.2.9 (pushgo-gateway-go)"

// maxExpiresIn caps expires_in (seconds): a token is fetched again at
// least daily, and a bogus value cannot overflow the expiry.
const maxExpiresIn = 24 * 60 * 60

// maxAnswer bounds a token service answer; a real one is well under 4 KiB.
const maxAnswer = 64 << 10

// Token is one credential the token service granted.
type Token struct {
	// Value is the bearer token: an APNs provider token (JWT) or an OAuth
	// 2 access token for FCM. It is a secret: never log it.
	Value string
	// ProjectID is the Firebase project the FCM token is for; empty for
	// APNs.
	ProjectID string
	// Expiry is when the token stops being valid: the time the request was
	// sent plus the answer's expires_in (a little early, never late).
	Expiry time.Time
}

// Valid reports whether t is a token that has not expired at now.
func (t Token) Valid(now time.Time) bool { return t.Value != "" && now.Before(t.Expiry) }

// Client makes token requests to one token service; it caches nothing (see
// Cache). It is safe for concurrent use.
type Client struct {
	base      string
	http      *http.Client
	userAgent string
	now       func() time.Time
}

// newClient validates the base URL: http or https with a host, optionally
// a path, no query or fragment; a trailing slash is dropped (as the PushGo
// gateway's TokenServiceBaseUrl).
func newClient(base string, hc *http.Client, userAgent string, now func() time.Time) (*Client, error) {
	base = strings.TrimSpace(base)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("tokenservice: the URL must be an http(s) base URL without query or credentials, got %q", base)
	}
	return &Client{base: strings.TrimRight(base, "/"), http: hc, userAgent: userAgent, now: now}, nil
}

// URL returns the request URL for provider p in environment env (env is
// used by APNs only):
//
//	apns  {base}/provider/token/production?provider=apns
//	      {base}/provider/token/sandbox?provider=apns
//	fcm   {base}/provider/token?provider=fcm
func (c *Client) URL(p Provider, env Environment) string {
	path := pathToken
	if p == APNs {
		path = pathProduction
		if env == Sandbox {
			path = pathSandbox
		}
	}
	return c.base + path + "?provider=" + url.QueryEscape(string(p))
}

// answer is the token service's envelope (gateway.rs GatewayResponse and
// GatewayTokenData).
type answer struct {
	Success *bool   `json:"success"`
	Error   *string `json:"error"`
	Data    *struct {
		Token     *string `json:"token"`
		ExpiresIn *int64  `json:"expires_in"`
		ProjectID *string `json:"project_id"`
	} `json:"data"`
}

// Error is a token service failure: a non-2xx status, or success false.
// Its text holds the status and the service's error message, never a
// token.
type Error struct {
	Status  int    // HTTP status; 0 when the answer never came
	Message string // the service's error or a trimmed body
}

func (e *Error) Error() string {
	return "token service: status " + strconv.Itoa(e.Status) + ": " + e.Message
}

// Fetch asks the service for a token of provider p (env for APNs), one GET
// with only a User-Agent header, and decodes the answer
// {success, error, data: {token, expires_in, project_id}} as the PushGo
// gateway does: a non-2xx status or success false is an *Error; data, a
// non-empty token and expires_in are required; token and project_id are
// trimmed and an empty one counts as absent. expires_in must be positive;
// it is capped at a day.
// The project id is returned as sent (the Cache keeps an earlier one when
// an FCM answer omits it). ctx bounds the request.
func (c *Client) Fetch(ctx context.Context, p Provider, env Environment) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(p, env), nil)
	if err != nil {
		return Token{}, fmt.Errorf("tokenservice: %w", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	sent := c.now() // the token was granted after this: its expiry counts from here
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is not secret, but the error is clearer without it
		}
		return Token{}, fmt.Errorf("token service: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Token{}, fmt.Errorf("token service: reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := clip(strings.TrimSpace(string(body)))
		if msg == "" {
			msg = "token service error"
		}
		return Token{}, &Error{Status: resp.StatusCode, Message: msg}
	}
	var a answer
	if err := json.Unmarshal(body, &a, json.RejectUnknownMembers(false)); err != nil {
		return Token{}, fmt.Errorf("token service: undecodable answer: %w", err)
	}
	switch {
	case a.Success == nil:
		return Token{}, errors.New("token service: answer without success")
	case !*a.Success:
		msg := "token service returned error"
		if a.Error != nil && strings.TrimSpace(*a.Error) != "" {
			msg = clip(strings.TrimSpace(*a.Error))
		}
		return Token{}, &Error{Status: resp.StatusCode, Message: msg}
	case a.Data == nil:
		return Token{}, errors.New("token service: answer without data")
	case a.Data.Token == nil || strings.TrimSpace(*a.Data.Token) == "":
		return Token{}, errors.New("token service: answer without token")
	case a.Data.ExpiresIn == nil || *a.Data.ExpiresIn <= 0:
		return Token{}, errors.New("token service: answer without a positive expires_in")
	}
	t := Token{
		Value:  strings.TrimSpace(*a.Data.Token),
		Expiry: sent.Add(time.Duration(min(*a.Data.ExpiresIn, maxExpiresIn)) * time.Second),
	}
	if a.Data.ProjectID != nil {
		t.ProjectID = strings.TrimSpace(*a.Data.ProjectID)
		if strings.ContainsAny(t.ProjectID, "/?#% \t\r\n") {
			return Token{}, fmt.Errorf("token service: project_id %q is not a project id", t.ProjectID)
		}
	}
	return t, nil
}

// clip bounds a message taken from an answer.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if (s[i] & 0xC0) != 0x80 { // a rune boundary
			return s[:i] + "…"
		}
	}
	return s[:max]
}

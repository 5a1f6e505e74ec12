package compat

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/limits"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/schemas/apierr"
)

// bearer checks PUSHGO_TOKEN on the routes that check it themselves (the
// ntfy routes, OwnAuth), with the rules of the gateway's bearer middleware
// (ingest/httpapi/middleware.go) plus the two ways ntfy clients send an
// access token.
type bearer struct {
	on   bool
	want [32]byte
	lim  *limits.Limits // the failed checks' throttle (limits off when none was given)
}

func newBearer(token string, lim *limits.Limits) bearer {
	if lim == nil {
		lim = limits.New(limits.Off(), limits.Options{})
	}
	return bearer{on: token != "", want: sha256.Sum256([]byte(token)), lim: lim}
}

// check answers 401 authentication_failed (with WWW-Authenticate, as the
// middleware) unless the request carries the token, or no token is
// configured; ok false means it answered. The token is taken from the
// Authorization header, or, without one, from ntfy's auth (or
// authorization) query parameter: that header value, base64-encoded.
// "Bearer <token>" is the token; so is ntfy's "Basic" with an empty user
// name and the token as password (curl -u :<token>).
func (b bearer) check(c *echo.Context) (ok bool, err error) {
	if !b.on {
		return true, nil
	}
	ctx := c.Request().Context()
	if aerr := b.lim.AuthCheck(ctx); aerr != nil {
		return false, httpapi.WriteError(c, aerr)
	}
	h := c.Request().Header.Get("Authorization")
	if h == "" {
		h = authParam(c.Request())
	}
	got, found := tokenOf(h)
	sum := sha256.Sum256([]byte(got))
	if found && subtle.ConstantTimeCompare(sum[:], b.want[:]) == 1 {
		return true, nil
	}
	b.lim.AuthFailed(ctx)
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="pushgo"`)
	return false, httpapi.WriteError(c, apierr.New(apierr.AuthenticationFailed))
}

// authParam decodes ntfy's auth query parameter ("" when absent or not
// base64): ntfy writes it unpadded in the URL alphabet, people also pad it
// or use the standard alphabet.
func authParam(r *http.Request) string {
	q, err := parseValues(r.URL.RawQuery)
	if err != nil {
		return ""
	}
	raw := q.Get("auth")
	if raw == "" {
		raw = q.Get("authorization")
	}
	raw = strings.TrimRight(raw, "=")
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(raw); err == nil {
			return string(b)
		}
	}
	return ""
}

// tokenOf is the token of an Authorization value: "Bearer <token>" (a
// case-insensitive scheme and exactly one token of at most
// httpapi.MaxBearerLen characters), or "Basic <base64(:token)>".
func tokenOf(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || cred == "" || len(cred) > httpapi.MaxBearerLen || strings.ContainsAny(cred, " \t") {
		return "", false
	}
	switch {
	case strings.EqualFold(scheme, "bearer"):
		return cred, true
	case strings.EqualFold(scheme, "basic"):
		b, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", false
		}
		user, pass, ok := strings.Cut(string(b), ":")
		return pass, ok && user == "" && pass != ""
	}
	return "", false
}

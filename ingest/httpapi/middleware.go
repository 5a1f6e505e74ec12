package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/apierr"
)

const headerRequestID = "X-Request-Id"

// requestID echoes a sane client X-Request-Id or makes one.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !saneRequestID(id) {
			// An id to find a request by in the logs, not a secret: the
			// runtime's generator, not a system call per request as
			// crypto/rand's (0.4% of a /message's CPU).
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], rand.Uint64())
			id = hex.EncodeToString(b[:])
		}
		c.Response().Header().Set(headerRequestID, id)
		return next(c)
	}
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// clientAddr puts the request's client address (echo's RealIP, see
// ipExtractor) in its context, where the per-address limits read it
// (limits.ClientOf), also on the routes other packages add.
func clientAddr(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(limits.WithClient(r.Context(), c.RealIP())))
		return next(c)
	}
}

// ipExtractor names a request's client: the TCP peer's address; with
// trusted proxies, echo's X-Forwarded-For extraction that believes those
// proxies only (the nearest address not among them), and no other range
// (echo trusts loopback and private networks by default).
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// bearerAuth enforces PUSHGO_TOKEN on every route (the process serves
// /healthz, /readyz and /metrics before this front, open) but
// those that authenticate with an integration token (ownAuth, by route
// pattern; nil for none).
// Both sides are hashed before the constant-time compare so that the
// comparison time does not reveal the token's length either.
// A client address that sent too many wrong tokens is refused 429 before
// the check (lim's AuthCheck): an operator's PUSHGO_TOKEN could otherwise
// be guessed at the rate the server answers.
func bearerAuth(token string, ownAuth func(route string) bool, lim *limits.Limits) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if ownAuth != nil && ownAuth(c.Path()) {
				return next(c)
			}
			ctx := c.Request().Context()
			if aerr := lim.AuthCheck(ctx); aerr != nil {
				return writeErr(c, aerr)
			}
			got, ok := ParseBearer(c.Request().Header.Get("Authorization"))
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				lim.AuthFailed(ctx)
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="pushgo"`)
				return writeErr(c, apierr.New(apierr.AuthenticationFailed))
			}
			return next(c)
		}
	}
}

// MaxBearerLen is the longest token ParseBearer accepts, in bytes.
const MaxBearerLen = 4096

// ParseBearer accepts "Bearer <token>" with a case-insensitive scheme and
// exactly one token of at most MaxBearerLen characters.
func ParseBearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	if token == "" || len(token) > MaxBearerLen || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// CheckToken reports why no request could present token as its bearer
// token, so that a gateway configured with it (PUSHGO_TOKEN) is refused at
// start rather than answering every request 401: one longer than
// MaxBearerLen, or with a space or tab (ParseBearer refuses them; an HTTP
// server also trims them from a header's ends), or with a control
// character (no header value carries one: a trailing carriage return is
// what an env file with CRLF line endings leaves). The error never quotes
// the token.
func CheckToken(token string) error {
	if len(token) > MaxBearerLen {
		return fmt.Errorf("%d bytes long: a bearer token is at most %d", len(token), MaxBearerLen)
	}
	for i := 0; i < len(token); i++ {
		switch b := token[i]; {
		case b == ' ' || b == '\t':
			return fmt.Errorf("a space or tab at byte %d of %d: a bearer token holds none", i+1, len(token))
		case b == '\r' && i == len(token)-1:
			return errors.New("ends with a carriage return (an env file with CRLF line endings?): no HTTP header can carry it")
		case b < 0x20 || b == 0x7f:
			return fmt.Errorf("a control character (0x%02x) at byte %d of %d: no HTTP header can carry it", b, i+1, len(token))
		}
	}
	return nil
}

// statusClientClosedRequest is the status counted for a request whose
// client went before a server error answered it (nginx's 499).
const statusClientClosedRequest = 499

// observe records the request in the metrics and logs server errors. It
// logs the path only: query strings may carry channel passwords
// (GET /message). An error a handler returns is answered here, by the
// server's error handler, so that its status and code are the ones
// counted (echo would answer it only after every middleware returned;
// the error handler answers nothing twice).
func observe(m *metrics, log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			// The server's own context of the request, which net/http
			// cancels when the client goes; a handler may replace the
			// request's with one it cancels itself.
			clientCtx := c.Request().Context()
			err := next(c)
			if err != nil {
				c.Echo().HTTPErrorHandler(c, err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := 0
			if r, uerr := echo.UnwrapResponse(c.Response()); uerr == nil {
				status = r.Status
			}
			code, _ := c.Get(errorCodeKey).(apierr.Code)
			if status >= 500 && errors.Is(clientCtx.Err(), context.Canceled) {
				// The client went before its answer (a read it stopped
				// waiting for): the 503 it caused reached nobody, and is no
				// failure of the server's. Counted as 499, nginx's "client
				// closed request", with no error code, and not logged as a
				// server error: 480 such hang-ups in a soak test were 503s a
				// 5xx alert would have fired on.
				log.Debug("http: the client went before its answer", "route", route, "status", status, "code", code,
					"request_id", c.Response().Header().Get(headerRequestID))
				m.observe(route, statusClientClosedRequest, "", time.Since(start))
				return err
			}
			m.observe(route, status, code, time.Since(start))
			if status >= 500 && (code == "" || apierr.Lookup(code).Category != apierr.CategoryFeatureDisabled) {
				// Not a feature this gateway does not serve (the private
				// channel's 503, PushGo's answer by design, which apps ask
				// for again and again): no failure of the server's.
				log.Warn("http: server error", "route", route, "status", status,
					"request_id", c.Response().Header().Get(headerRequestID))
			}
			return err
		}
	}
}

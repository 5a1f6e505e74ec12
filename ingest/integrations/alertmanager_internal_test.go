package integrations

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/integrations/alertmanager"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/apierr"
)

// The helpers below (fakeTokens, newTestRoutes, serve, envelopeReply,
// envelopeOf) are shared by the package's internal tests.

// fakeTokens accepts the token "good" (scope events.ingest), "read"
// (scope events.read only) and answers "down" as a broker failure.
type fakeTokens struct{}

func (fakeTokens) Authorize(ctx context.Context, header, scope string) (apitokens.Token, *apierr.Error) {
	scheme, cred, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "api-token") && !strings.EqualFold(scheme, "bearer") {
		return apitokens.Token{}, apierr.New(apierr.InvalidAPIToken)
	}
	return fakeTokens{}.AuthorizeToken(ctx, cred, scope)
}

func (fakeTokens) AuthorizeToken(_ context.Context, token, scope string) (apitokens.Token, *apierr.Error) {
	switch token {
	case "good":
		return apitokens.Token{ChannelID: "0123456789ABCDEFGHJKMNPQRS", Scopes: []string{scope}}, nil
	case "read":
		return apitokens.Token{}, apierr.New(apierr.ScopeMissing)
	case "down":
		return apitokens.Token{}, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "broker down", RetryAfter: 1}
	}
	return apitokens.Token{}, apierr.New(apierr.InvalidAPIToken)
}

// newTestRoutes registers the integration routes with one in-flight slot
// and no broker: only the paths that end before an append can be served.
func newTestRoutes(t *testing.T) (*echo.Echo, *Routes) {
	t.Helper()
	e := echo.New()
	r := Register(e, Deps{Tokens: fakeTokens{}, MaxInFlight: 1})
	t.Cleanup(r.Close)
	return e, r
}

func serve(e *echo.Echo, path string, headers map[string]string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

type envelopeReply struct {
	Success   bool    `json:"success"`
	Data      any     `json:"data"`
	Error     *string `json:"error"`
	ErrorCode *string `json:"error_code"`
}

func envelopeOf(t *testing.T, rec *httptest.ResponseRecorder) envelopeReply {
	t.Helper()
	var r envelopeReply
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return r
}

const amOneAlert = `{"alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f"}]}`

// TestAlertmanagerOverload: with every in-flight slot taken the route
// answers 503 with Retry-After, never 429 (Alertmanager retries only 5xx),
// before reading the body.
func TestAlertmanagerOverload(t *testing.T) {
	e, r := newTestRoutes(t)
	release, ok := r.slots.Take("")
	if !ok {
		t.Fatal("no slot")
	}
	rec := serve(e, RouteAlertmanager, map[string]string{"Authorization": "Api-Token good"}, amOneAlert)
	release()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	env := envelopeOf(t, rec)
	if env.Success || env.Data != nil || env.ErrorCode == nil || *env.ErrorCode != string(apierr.AppendUnavailable) || *env.Error == "" {
		t.Fatalf("envelope %s", rec.Body)
	}
	// The slot was given back: the next request gets past admission (and
	// fails on its body, which needs no broker).
	if rec := serve(e, RouteAlertmanager, map[string]string{"Authorization": "Api-Token good"}, "{"); rec.Code != http.StatusBadRequest {
		t.Fatalf("after release: %d %s", rec.Code, rec.Body)
	}
}

// TestAlertmanagerRejections: the paths that end before an append, in the
// PushGo envelope.
func TestAlertmanagerRejections(t *testing.T) {
	e, _ := newTestRoutes(t)
	auth := map[string]string{"Authorization": "Api-Token good"}
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		code    apierr.Code
	}{
		{"no token", nil, amOneAlert, 401, apierr.InvalidAPIToken},
		{"wrong token", map[string]string{"Authorization": "Api-Token nope"}, amOneAlert, 401, apierr.InvalidAPIToken},
		{"no scope", map[string]string{"Authorization": "Bearer read"}, amOneAlert, 403, apierr.ScopeMissing},
		{"token store down", map[string]string{"Authorization": "Bearer down"}, amOneAlert, 503, apierr.BrokerUnavailable},
		{"bad JSON", auth, `{"alerts":`, 400, apierr.InvalidJSONSyntax},
		{"no alerts", auth, `{"receiver":"r","alerts":[]}`, 400, apierr.InvalidJSONData},
		{"bad startsAt", auth, strings.Replace(amOneAlert, "2025-01-01T00:00:00Z", "yesterday", 1), 400, apierr.InvalidTimestamp},
		{"too large", auth, `{"receiver":"` + strings.Repeat("x", limits.Defaults().AlertmanagerBody) + `"}`, 413, apierr.PayloadTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(e, RouteAlertmanager, c.headers, c.body)
			env := envelopeOf(t, rec)
			if rec.Code != c.status || env.ErrorCode == nil || *env.ErrorCode != string(c.code) || env.Success {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, c.status, c.code)
			}
			if (c.status == 503) != (rec.Header().Get("Retry-After") != "") {
				t.Fatalf("Retry-After %q on %d", rec.Header().Get("Retry-After"), rec.Code)
			}
		})
	}
}

// TestAlertmanagerRetryable: every "retry later" the append path can give
// becomes a 503 with Retry-After; other errors are kept.
func TestAlertmanagerRetryable(t *testing.T) {
	for _, c := range []struct {
		in         *apierr.Error
		status     int
		retryAfter int
	}{
		{&apierr.Error{Code: apierr.RateLimited, Detail: "slow down", RetryAfter: 3}, 503, 3},
		{apierr.New(apierr.RateLimited), 503, 1},
		{apierr.New(apierr.AppendUnavailable), 503, 1},
		{&apierr.Error{Code: apierr.BrokerUnavailable, RetryAfter: 2}, 503, 2},
		{apierr.New(apierr.InternalError), 500, 0},
		{apierr.New(apierr.EventClosed), 409, 0},
	} {
		got := amRetryable(c.in)
		if got.Status() != c.status || got.RetryAfter != c.retryAfter {
			t.Errorf("%s: got %d retry %d", c.in.Code, got.Status(), got.RetryAfter)
		}
	}
}

// TestAStaleResolveIsMarkedInItsGroup: a resolved alert whose close applied
// to nothing (Absent: a lagging peer's resolve of an occurrence already
// superseded) is a stale member of its group's notification, so the
// group's record keeps the Event it names (alerts.groupRecord.next); one
// whose close applied is not.
func TestAStaleResolveIsMarkedInItsGroup(t *testing.T) {
	body := `{"version":"4","groupKey":"{}:{alertname=\"A\"}","status":"resolved","receiver":"r","externalURL":"http://am",
		"alerts":[{"status":"resolved","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T00:05:00Z","fingerprint":"f1"}]}`
	p, reps, aerr := alertmanager.Parse([]byte(body), 1_800_000_000_000)
	if aerr != nil {
		t.Fatal(aerr)
	}
	for _, c := range []struct {
		absent, stale bool
	}{{true, true}, {false, false}} {
		g := amGroup("CH", p, reps, []alerts.Outcome{{Absent: c.absent}}, 1_800_000_000_000)
		if len(g.Members) != 1 || !g.Members[0].Resolved || g.Members[0].Stale != c.stale {
			t.Errorf("a resolve whose close was absent %v: member %+v, want stale %v", c.absent, g.Members, c.stale)
		}
	}
}

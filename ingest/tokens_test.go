package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/schemas/ids"
)

// tokenWant fails unless r is status with error_code code.
func tokenWant(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || r.Code() != code {
		t.Errorf("%s: want %d %s, got %d %s", what, status, code, r.Status, r.Body)
	}
}

// authorize checks tok against g's token registry, as an integration
// route does.
func authorize(t *testing.T, g *gw, tok string) (apitokens.Token, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, aerr := g.svc.Tokens().Authorize(ctx, "Api-Token "+tok, apitokens.ScopeEventsIngest)
	if aerr != nil {
		return got, string(aerr.Code)
	}
	return got, ""
}

// TestTokenRoutes covers /channel/token/create and /channel/token/revoke
// end to end: the token an owner creates is the token integrations are
// authorized with, until it is revoked.
func TestTokenRoutes(t *testing.T) {
	logs := &tokenLogBuffer{}
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	chA, chB := g.createChannel("a"), g.createChannel("b")
	create := func(ch string, kv ...any) reply {
		return g.post("/channel/token/create", body(ch, append([]any{"name", "alertmanager", "scopes", []string{"events.ingest"}}, kv...)...))
	}

	// Create, with the channel id in lower case: the answer is canonical.
	r := mustOK(t, create(strings.ToLower(chA)))
	tok, tokID := r.Str("token"), r.Str("token_id")
	if r.Str("channel_id") != chA || r.Str("name") != "alertmanager" || !strings.HasPrefix(tok, "pgo1."+tokID+".") || len(tok) != 94 {
		t.Fatalf("create answered %s", r.Body)
	}
	if sc, _ := r.Data["scopes"].([]any); len(sc) != 1 || sc[0] != "events.ingest" {
		t.Errorf("scopes %v", r.Data["scopes"])
	}
	if ca, _ := r.Data["created_at"].(float64); ca <= 0 {
		t.Errorf("created_at %v", r.Data["created_at"])
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if got, code := authorize(t, g, tok); code != "" || got.ChannelID != chA || got.ID != tokID {
		t.Fatalf("authorize new token: %s %+v", code, got)
	}

	// Another replica accepts it at once.
	g2 := startIngest(t, b, ingest.Config{})
	if _, code := authorize(t, g2, tok); code != "" {
		t.Fatalf("second replica: %s", code)
	}

	// Rejections.
	tokenWant(t, "wrong password", g.post("/channel/token/create", map[string]any{
		"channel_id": chA, "password": "wrong-password", "name": "x", "scopes": []string{"events.ingest"}}), 403, "password_mismatch")
	tokenWant(t, "unknown channel", create(ids.NewChannelID()), 404, "channel_not_found")
	tokenWant(t, "unknown scope", create(chA, "scopes", []string{"events.ingest", "events.write"}), 400, "invalid_scopes")
	tokenWant(t, "no scopes", create(chA, "scopes", []string{}), 400, "invalid_scopes")
	tokenWant(t, "no name", create(chA, "name", " "), 400, "token_name_required")
	tokenWant(t, "control in name", create(chA, "name", "a\nb"), 400, "invalid_token_name")
	tokenWant(t, "unknown member", create(chA, "token_id", tokID), 400, "invalid_json_data")
	tokenWant(t, "bad channel id", create("nope"), 400, "invalid_channel_id")
	if r := create(chA, "scopes", []string{"events.write"}); r.Error == nil || !strings.Contains(*r.Error, `"events.write"`) {
		t.Errorf("invalid_scopes does not name the unknown scope: %s", r.Body)
	}

	revoke := func(ch, pw, id string) reply {
		return g.post("/channel/token/revoke", map[string]any{"channel_id": ch, "password": pw, "token_id": id})
	}
	// Another channel's owner cannot revoke it, nor tell it exists.
	tokenWant(t, "revoke from another channel", revoke(chB, password, tokID), 404, "token_not_found")
	tokenWant(t, "revoke unknown id", revoke(chA, password, strings.Repeat("a", 24)), 404, "token_not_found")
	tokenWant(t, "revoke wrong password", revoke(chA, "wrong-password", tokID), 403, "password_mismatch")
	tokenWant(t, "revoke malformed id", revoke(chA, password, "nope"), 400, "invalid_token_id")
	tokenWant(t, "revoke without id", g.post("/channel/token/revoke", body(chA)), 400, "token_id_required")
	if _, code := authorize(t, g, tok); code != "" {
		t.Fatalf("token after failed revokes: %s", code)
	}

	r = mustOK(t, revoke(chA, password, tokID))
	if r.Str("channel_id") != chA || r.Str("token_id") != tokID || r.Data["revoked"] != true {
		t.Errorf("revoke answered %s", r.Body)
	}
	if _, code := authorize(t, g, tok); code != "invalid_api_token" {
		t.Errorf("authorize after revoke: %q, want invalid_api_token", code)
	}
	waitFor(t, func() bool { _, code := authorize(t, g2, tok); return code == "invalid_api_token" })
	tokenWant(t, "revoke twice", revoke(chA, password, tokID), 404, "token_not_found")

	// The token reached neither the log nor the logs.
	secret := tok[strings.LastIndexByte(tok, '.')+1:]
	var oplog []byte
	for _, m := range streamOps(t, g.nc) {
		oplog = append(oplog, m.Data...)
	}
	for _, leak := range []string{tok, secret} {
		if bytes.Contains(oplog, []byte(leak)) {
			t.Errorf("PUSHGO_OPS contains %q", leak)
		}
		if strings.Contains(logs.String(), leak) {
			t.Errorf("logs contain %q:\n%s", leak, logs.String())
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("logs contain the channel password")
	}
	if !strings.Contains(logs.String(), tokID) {
		t.Errorf("creation and revocation are not logged by token id:\n%s", logs.String())
	}
}

// TestTokenRoutesNeedGatewayToken: with PUSHGO_TOKEN enabled the token
// routes are ordinary PushGo routes and need it; integration tokens stand
// in for it only on the integration routes.
func TestTokenRoutesNeedGatewayToken(t *testing.T) {
	const gatewayToken = "s3cret-gateway-token"
	g := startIngest(t, startBroker(t), ingest.Config{Token: gatewayToken})
	post := func(path, auth string, b any) reply {
		t.Helper()
		return g.api.Send(t, http.MethodPost, path, mustJSON(t, b), http.Header{"Authorization": {auth}})
	}
	ch := mustOK(t, post("/channel/create", "Bearer "+gatewayToken, map[string]any{"channel_name": "c", "password": password})).Str("channel_id")
	req := body(ch, "name", "n", "scopes", []string{"events.ingest"})
	tokenWant(t, "without gateway token", post("/channel/token/create", "", req), 401, "authentication_failed")
	tok := mustOK(t, post("/channel/token/create", "Bearer "+gatewayToken, req)).Str("token")
	// An integration token is not the gateway token.
	tokenWant(t, "integration token on a PushGo route", post("/channel/token/create", "Bearer "+tok, req), 401, "authentication_failed")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tokenLogBuffer collects log output from concurrent handlers.
type tokenLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *tokenLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *tokenLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

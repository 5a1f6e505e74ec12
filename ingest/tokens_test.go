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
	tokenWant(t, "list without gateway token", post("/channel/token/list", "", body(ch)), 401, "authentication_failed")
	if r := mustOK(t, post("/channel/token/list", "Bearer "+gatewayToken, body(ch))); !strings.Contains(string(r.Body), `"name":"n"`) {
		t.Errorf("list with the gateway token: %s", r.Body)
	}
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

// TestTokenList covers /channel/token/list: the owner sees the channel's
// live tokens (id, name, scopes, creation time), oldest first, and
// nothing secret; a wrong password, another channel's owner or a client
// without the gateway token learn nothing about them.
func TestTokenList(t *testing.T) {
	b := startBroker(t)
	g := startIngest(t, b, ingest.Config{})
	chA, chB := g.createChannel("a"), g.createChannel("b")
	var created []reply
	for _, name := range []string{"alertmanager", "grafana", "ci"} {
		created = append(created, mustOK(t, g.post("/channel/token/create", body(chA, "name", name, "scopes", []string{"events.ingest", "events.read"}))))
	}
	mustOK(t, g.post("/channel/token/create", body(chB, "name", "b's", "scopes", []string{"events.ingest"})))
	mustOK(t, g.post("/channel/token/revoke", body(chA, "token_id", created[1].Str("token_id"))))

	// Listed through another replica: what the first created and revoked
	// a moment ago is there as it is now.
	g2 := startIngest(t, b, ingest.Config{})
	r := mustOK(t, g2.post("/channel/token/list", body(strings.ToLower(chA))))
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if r.Str("channel_id") != chA || r.Data["truncated"] != false {
		t.Errorf("list answered %s", r.Body)
	}
	toks, _ := r.Data["tokens"].([]any)
	if len(toks) != 2 {
		t.Fatalf("listed %d tokens, want 2: %s", len(toks), r.Body)
	}
	// Oldest first, then by id: two tokens created in the same millisecond
	// are listed in the order of their ids.
	live := []reply{created[0], created[2]}
	if live[0].Data["created_at"] == live[1].Data["created_at"] && live[1].Str("token_id") < live[0].Str("token_id") {
		live[0], live[1] = live[1], live[0]
	}
	for i, want := range live {
		got, _ := toks[i].(map[string]any)
		if got["token_id"] != want.Str("token_id") || got["name"] != want.Str("name") ||
			got["created_at"] != want.Data["created_at"] || mustJSON(t, got["scopes"]) != `["events.ingest","events.read"]` {
			t.Errorf("token %d listed as %v, created as %s", i, got, want.Body)
		}
		if len(got) != 4 {
			t.Errorf("token %d has members beyond token_id, name, scopes, created_at: %v", i, got)
		}
	}
	for _, c := range created {
		secret := c.Str("token")[strings.LastIndexByte(c.Str("token"), '.')+1:]
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("the list shows a token's secret: %s", r.Body)
		}
	}

	// Refusals say nothing about the tokens.
	for _, c := range []struct {
		what   string
		status int
		code   string
		r      reply
	}{
		{"wrong password", 403, "password_mismatch", g.post("/channel/token/list", map[string]any{"channel_id": chA, "password": "wrong-password"})},
		{"unknown channel", 404, "channel_not_found", g.post("/channel/token/list", body(ids.NewChannelID()))},
		{"no password", 400, "password_required", g.post("/channel/token/list", map[string]any{"channel_id": chA})},
		{"unknown member", 400, "invalid_json_data", g.post("/channel/token/list", body(chA, "token_id", created[0].Str("token_id")))},
	} {
		tokenWant(t, c.what, c.r, c.status, c.code)
		if strings.Contains(string(c.r.Body), created[0].Str("token_id")) || strings.Contains(string(c.r.Body), "alertmanager") {
			t.Errorf("%s: the refusal names a token: %s", c.what, c.r.Body)
		}
	}
	// Another channel's list holds its own token only.
	r = mustOK(t, g.post("/channel/token/list", body(chB)))
	if toks, _ := r.Data["tokens"].([]any); len(toks) != 1 || toks[0].(map[string]any)["name"] != "b's" {
		t.Errorf("channel b listed %s", r.Body)
	}
}

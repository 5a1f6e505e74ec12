package apitokens_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

var now = time.UnixMilli(1713750000000)

// tokenForm is the documented token format.
var tokenForm = regexp.MustCompile(`^pgo1\.[a-z2-7]{24}\.[0-9a-f]{64}$`)

// startBroker runs a real embedded broker with the streams and buckets
// ensured.
func startBroker(t *testing.T) (*brokertest.Broker, jetstream.JetStream) {
	b := brokertest.Start(t)
	return b, b.JS
}

// open opens one registry (one ingest replica) over js.
func open(t *testing.T, js jetstream.JetStream) *apitokens.Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := apitokens.Open(ctx, js, apitokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, r *apitokens.Registry, channelID string, scopes ...string) (string, apitokens.Token) {
	t.Helper()
	tok, rec, err := r.Create(ctxT(t), channelID, "alertmanager", scopes, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

// wantCode fails unless err carries code (nil code: no error).
func wantCode(t *testing.T, what string, err *apierr.Error, code apierr.Code) {
	t.Helper()
	switch {
	case code == "" && err != nil:
		t.Errorf("%s: got %v, want success", what, err)
	case code != "" && (err == nil || err.Code != code):
		t.Errorf("%s: got %v, want %s", what, err, code)
	}
}

func TestCreateThenAuthorize(t *testing.T) {
	_, js := startBroker(t)
	r := open(t, js)
	ch := ids.NewChannelID()
	tok, rec := create(t, r, ch, apitokens.ScopeEventsIngest)
	if !tokenForm.MatchString(tok) {
		t.Fatalf("token %q does not have the documented form", tok)
	}
	if !strings.HasPrefix(tok, "pgo1."+rec.ID+".") {
		t.Errorf("token %q does not carry id %q", tok, rec.ID)
	}
	if rec.ChannelID != ch || rec.Name != "alertmanager" || !slices.Equal(rec.Scopes, []string{apitokens.ScopeEventsIngest}) ||
		rec.CreatedAt != now.UnixMilli() || rec.Revision == 0 {
		t.Errorf("record %+v", rec)
	}
	for _, h := range []string{"Api-Token " + tok, "Bearer " + tok, "api-token " + tok, "BEARER " + tok, "API-TOKEN " + tok} {
		got, err := r.Authorize(ctxT(t), h, apitokens.ScopeEventsIngest)
		wantCode(t, h[:10], err, "")
		if err == nil && (got.ID != rec.ID || got.ChannelID != ch) {
			t.Errorf("%s: token %+v", h[:10], got)
		}
	}
	got, err := r.AuthorizeToken(ctxT(t), tok, apitokens.ScopeEventsIngest)
	wantCode(t, "bare", err, "")
	if got.ChannelID != ch {
		t.Errorf("bare: channel %q", got.ChannelID)
	}
	// Two tokens of one channel are distinct.
	tok2, rec2 := create(t, r, ch, apitokens.ScopeEventsIngest)
	if tok2 == tok || rec2.ID == rec.ID {
		t.Error("second token equals the first")
	}
}

func TestRejections(t *testing.T) {
	_, js := startBroker(t)
	r := open(t, js)
	ch := ids.NewChannelID()
	tok, rec := create(t, r, ch, apitokens.ScopeEventsRead)
	secret := tok[len(tok)-64:]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	otherID := strings.Repeat("a", 24)
	cases := []struct {
		name, header string
		code         apierr.Code
	}{
		{"wrong secret last char", "Api-Token " + flip(tok, len(tok)-1), apierr.InvalidAPIToken},
		{"wrong secret first char", "Api-Token " + flip(tok, len(tok)-64), apierr.InvalidAPIToken},
		{"other secret", "Api-Token pgo1." + rec.ID + "." + strings.Repeat("0", 64), apierr.InvalidAPIToken},
		{"unknown id", "Api-Token pgo1." + otherID + "." + secret, apierr.InvalidAPIToken},
		{"empty", "", apierr.InvalidAPIToken},
		{"scheme only", "Api-Token", apierr.InvalidAPIToken},
		{"scheme and space", "Api-Token ", apierr.InvalidAPIToken},
		{"no scheme", tok, apierr.InvalidAPIToken},
		{"other scheme", "Basic " + tok, apierr.InvalidAPIToken},
		{"token scheme", "Token " + tok, apierr.InvalidAPIToken},
		{"two spaces", "Api-Token  " + tok, apierr.InvalidAPIToken},
		{"trailing space", "Api-Token " + tok + " ", apierr.InvalidAPIToken},
		{"tab", "Api-Token\t" + tok, apierr.InvalidAPIToken},
		{"two tokens", "Api-Token " + tok + " " + tok, apierr.InvalidAPIToken},
		{"too long", "Bearer " + strings.Repeat("x", 5000), apierr.InvalidAPIToken},
		{"wrong prefix", "Bearer pgo2" + tok[4:], apierr.InvalidAPIToken},
		{"upper-case secret", "Bearer " + tok[:len(tok)-64] + strings.ToUpper(secret), apierr.InvalidAPIToken},
		{"upper-case id", "Bearer pgo1." + strings.ToUpper(rec.ID) + "." + secret, apierr.InvalidAPIToken},
		{"short secret", "Bearer " + tok[:len(tok)-1], apierr.InvalidAPIToken},
		{"long secret", "Bearer " + tok + "0", apierr.InvalidAPIToken},
		{"no dots", "Bearer " + strings.ReplaceAll(tok, ".", "_"), apierr.InvalidAPIToken},
		{"secret only", "Bearer " + secret, apierr.InvalidAPIToken},
		{"id only", "Bearer " + rec.ID, apierr.InvalidAPIToken},
		// Authentication comes before the scope check: a wrong token is
		// 401 whatever scope the route needs.
		{"wrong secret, missing scope", "Bearer " + flip(tok, len(tok)-1), apierr.InvalidAPIToken},
	}
	for _, c := range cases {
		scope := apitokens.ScopeEventsRead
		if strings.Contains(c.name, "missing scope") {
			scope = apitokens.ScopeEventsIngest
		}
		_, err := r.Authorize(ctxT(t), c.header, scope)
		wantCode(t, c.name, err, c.code)
		if err != nil && err.Status() != 401 {
			t.Errorf("%s: status %d", c.name, err.Status())
		}
	}
	if _, err := r.AuthorizeToken(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsRead); err == nil || err.Code != apierr.InvalidAPIToken {
		t.Errorf("bare token with a scheme: %v", err)
	}
	if _, err := r.AuthorizeToken(ctxT(t), "", apitokens.ScopeEventsRead); err == nil || err.Code != apierr.InvalidAPIToken {
		t.Errorf("empty bare token: %v", err)
	}
}

func TestScopeMissing(t *testing.T) {
	_, js := startBroker(t)
	r := open(t, js)
	readOnly, _ := create(t, r, ids.NewChannelID(), apitokens.ScopeEventsRead)
	_, err := r.Authorize(ctxT(t), "Bearer "+readOnly, apitokens.ScopeEventsIngest)
	wantCode(t, "read token on ingest", err, apierr.ScopeMissing)
	if err != nil && err.Status() != 403 {
		t.Errorf("status %d, want 403", err.Status())
	}
	_, err = r.AuthorizeToken(ctxT(t), readOnly, apitokens.ScopeEventsIngest)
	wantCode(t, "bare read token on ingest", err, apierr.ScopeMissing)

	both, _ := create(t, r, ids.NewChannelID(), apitokens.ScopeEventsRead, apitokens.ScopeEventsIngest)
	for _, s := range []string{apitokens.ScopeEventsRead, apitokens.ScopeEventsIngest} {
		_, err := r.Authorize(ctxT(t), "Api-Token "+both, s)
		wantCode(t, "both scopes on "+s, err, "")
	}
}

func TestCreateRejectsUnknownScopes(t *testing.T) {
	_, js := startBroker(t)
	r := open(t, js)
	for _, scopes := range [][]string{nil, {}, {"events.write"}, {apitokens.ScopeEventsRead, ""}} {
		if tok, _, err := r.Create(ctxT(t), ids.NewChannelID(), "x", scopes, now); err == nil || tok != "" {
			t.Errorf("scopes %q: token %q, err %v", scopes, tok, err)
		}
	}
}

func TestRevoke(t *testing.T) {
	_, js := startBroker(t)
	r := open(t, js)
	ch, other := ids.NewChannelID(), ids.NewChannelID()
	tok, rec := create(t, r, ch, apitokens.ScopeEventsIngest)
	keep, _ := create(t, r, ch, apitokens.ScopeEventsIngest)

	// Another channel cannot revoke it, and cannot tell it exists.
	wantCode(t, "revoke from another channel", r.Revoke(ctxT(t), other, rec.ID), apierr.TokenNotFound)
	wantCode(t, "revoke unknown id", r.Revoke(ctxT(t), ch, strings.Repeat("a", 24)), apierr.TokenNotFound)
	wantCode(t, "revoke malformed id", r.Revoke(ctxT(t), ch, "nope"), apierr.TokenNotFound)
	_, err := r.Authorize(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsIngest)
	wantCode(t, "still valid after foreign revoke", err, "")

	wantCode(t, "revoke", r.Revoke(ctxT(t), ch, rec.ID), "")
	_, err = r.Authorize(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsIngest)
	wantCode(t, "authorize after revoke", err, apierr.InvalidAPIToken)
	wantCode(t, "revoke twice", r.Revoke(ctxT(t), ch, rec.ID), apierr.TokenNotFound)
	_, err = r.Authorize(ctxT(t), "Bearer "+keep, apitokens.ScopeEventsIngest)
	wantCode(t, "the channel's other token", err, "")

	// The revocation survives a restart of the replica.
	r2 := open(t, js)
	_, err = r2.Authorize(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsIngest)
	wantCode(t, "authorize after revoke on a fresh replica", err, apierr.InvalidAPIToken)
	_, err = r2.Authorize(ctxT(t), "Bearer "+keep, apitokens.ScopeEventsIngest)
	wantCode(t, "other token on a fresh replica", err, "")
}

// TestSecondReplica: a token created through one replica works on another
// at once, and a revocation reaches the other through its watcher.
func TestSecondReplica(t *testing.T) {
	_, js := startBroker(t)
	r1, r2 := open(t, js), open(t, js)
	ch := ids.NewChannelID()
	for i := 0; i < 20; i++ {
		tok, rec := create(t, r1, ch, apitokens.ScopeEventsIngest)
		got, err := r2.Authorize(ctxT(t), "Api-Token "+tok, apitokens.ScopeEventsIngest)
		wantCode(t, "second replica", err, "")
		if err == nil && got.ID != rec.ID {
			t.Errorf("got token %q, want %q", got.ID, rec.ID)
		}
		// The other way round too.
		tok, _ = create(t, r2, ch, apitokens.ScopeEventsIngest)
		_, err = r1.Authorize(ctxT(t), "Api-Token "+tok, apitokens.ScopeEventsIngest)
		wantCode(t, "first replica", err, "")
	}

	tok, rec := create(t, r1, ch, apitokens.ScopeEventsIngest)
	if _, err := r2.Authorize(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsIngest); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "revoke on r1", r1.Revoke(ctxT(t), ch, rec.ID), "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := r2.Authorize(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsIngest)
		if err != nil && err.Code == apierr.InvalidAPIToken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("r2 still answers %v 5s after the revocation", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// r2 can revoke r1's tokens too.
	tok, rec = create(t, r1, ch, apitokens.ScopeEventsIngest)
	wantCode(t, "revoke on r2", r2.Revoke(ctxT(t), ch, rec.ID), "")
	_, err := r2.Authorize(ctxT(t), "Bearer "+tok, apitokens.ScopeEventsIngest)
	wantCode(t, "r2 after its own revoke", err, apierr.InvalidAPIToken)
}

// TestBucketHoldsNoSecret: neither the token nor its secret is stored;
// the record holds the secret's SHA-256 only.
func TestBucketHoldsNoSecret(t *testing.T) {
	_, js := startBroker(t)
	r := open(t, js)
	ctx := ctxT(t)
	var toks []string
	for i := 0; i < 5; i++ {
		tok, _ := create(t, r, ids.NewChannelID(), apitokens.ScopeEventsIngest, apitokens.ScopeEventsRead)
		toks = append(toks, tok)
	}
	kv, err := js.KeyValue(ctx, streams.APITokensBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Every message of the bucket's stream, not only the current values.
	st, err := js.Stream(ctx, "KV_"+streams.APITokensBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(toks)) {
		t.Fatalf("bucket holds %d messages, want %d", info.State.Msgs, len(toks))
	}
	var all []byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m.Data...)
		all = append(all, m.Subject...)
		for k, vs := range m.Header {
			all = append(all, k...)
			for _, v := range vs {
				all = append(all, v...)
			}
		}
	}
	for _, tok := range toks {
		parts := strings.Split(tok, ".")
		id, secret := parts[1], parts[2]
		for _, leak := range []string{tok, secret, secret[:32], secret[32:]} {
			if bytes.Contains(all, []byte(leak)) {
				t.Errorf("bucket contains %q", leak)
			}
		}
		e, err := kv.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(secret))
		if !bytes.Contains(e.Value(), []byte(`"secret_hash":"`+hex.EncodeToString(sum[:])+`"`)) {
			t.Errorf("record %s does not hold the secret's SHA-256: %s", id, e.Value())
		}
	}
}

// TestBrokerDown: a token the view does not hold cannot be checked while
// the broker is down: 503 with Retry-After, never 401, so a tool retries
// instead of reporting a bad credential.
func TestBrokerDown(t *testing.T) {
	b, js := startBroker(t)
	r := open(t, js)
	ch := ids.NewChannelID()
	known, _ := create(t, r, ch, apitokens.ScopeEventsIngest)
	b.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	unknown := "pgo1." + strings.Repeat("b", 24) + "." + strings.Repeat("c", 64)
	_, err := r.Authorize(ctx, "Bearer "+unknown, apitokens.ScopeEventsIngest)
	wantCode(t, "unknown token, broker down", err, apierr.BrokerUnavailable)
	if err != nil && (err.Status() != 503 || err.RetryAfter != 1) {
		t.Errorf("status %d, retry after %d", err.Status(), err.RetryAfter)
	}
	// A token already in the view needs no broker.
	_, err = r.Authorize(ctx, "Bearer "+known, apitokens.ScopeEventsIngest)
	wantCode(t, "known token, broker down", err, "")
	// Malformed tokens are rejected without asking the broker.
	_, err = r.Authorize(ctx, "Bearer nope", apitokens.ScopeEventsIngest)
	wantCode(t, "malformed token, broker down", err, apierr.InvalidAPIToken)
}

// TestList: a channel's list holds its live tokens, oldest first, with
// their names, scopes and creation times and nothing secret; a revoked
// token and another channel's tokens are not in it. A second replica
// lists a token the first created at once.
func TestList(t *testing.T) {
	_, js := startBroker(t)
	r1, r2 := open(t, js), open(t, js)
	ch, other := ids.NewChannelID(), ids.NewChannelID()
	var ids3 []string
	for i, name := range []string{"alertmanager", "grafana", "ci"} {
		_, rec, err := r1.Create(ctxT(t), ch, name, []string{apitokens.ScopeEventsIngest}, now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ids3 = append(ids3, rec.ID)
	}
	create(t, r1, other, apitokens.ScopeEventsRead)
	wantCode(t, "revoke grafana", r1.Revoke(ctxT(t), ch, ids3[1]), "")

	for i, r := range []*apitokens.Registry{r1, r2} {
		got, aerr := r.List(ctxT(t), ch)
		wantCode(t, "list", aerr, "")
		if len(got) != 2 || got[0].ID != ids3[0] || got[1].ID != ids3[2] {
			t.Fatalf("replica %d listed %+v, want tokens %s and %s", i+1, got, ids3[0], ids3[2])
		}
		if got[0].Name != "alertmanager" || got[1].Name != "ci" || got[0].ChannelID != ch ||
			!slices.Equal(got[0].Scopes, []string{apitokens.ScopeEventsIngest}) ||
			got[0].CreatedAt != now.UnixMilli() || got[1].CreatedAt != now.Add(2*time.Second).UnixMilli() {
			t.Errorf("replica %d listed %+v", i+1, got)
		}
	}
	if got, aerr := r2.List(ctxT(t), ids.NewChannelID()); aerr != nil || len(got) != 0 {
		t.Errorf("a channel without tokens listed %+v, %v", got, aerr)
	}
}

package ops

import (
	"slices"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/wire"
)

// tid is a well-formed token id.
const tid = "abcdefghijklmnopqrstuv23"

// TestTokenCreateRules covers /channel/token/create: credentials, name and
// scopes, decoded strictly as ingest does.
func TestTokenCreateRules(t *testing.T) {
	base := `{"channel_id":"` + strings.ToLower(cid) + `","password":"` + pw + `","name":"alertmanager","scopes":["events.ingest"]}`
	cases := []struct {
		name, body string
		code       apierr.Code // empty when accepted
		field      string      // must appear in the error detail
		wantName   string
		wantScopes []string
	}{
		{"ok", base, "", "", "alertmanager", []string{ScopeEventsIngest}},
		{"name trimmed", set(base, "name", `"  Prometheus prod  "`), "", "", "Prometheus prod", []string{ScopeEventsIngest}},
		{"name 128 chars", set(base, "name", q(strings.Repeat("家", 128))), "", "", strings.Repeat("家", 128), []string{ScopeEventsIngest}},
		{"both scopes", set(base, "scopes", `["events.read","events.ingest"]`), "", "", "alertmanager", []string{ScopeEventsRead, ScopeEventsIngest}},
		{"scopes deduplicated", set(base, "scopes", `["events.ingest","events.read","events.ingest"]`), "", "", "alertmanager", []string{ScopeEventsIngest, ScopeEventsRead}},

		{"channel_id absent", del(base, "channel_id"), apierr.ChannelIDRequired, "channel_id", "", nil},
		{"channel_id bad", set(base, "channel_id", `"nope"`), apierr.InvalidChannelID, "channel_id", "", nil},
		{"password absent", del(base, "password"), apierr.PasswordRequired, "password", "", nil},
		{"password short", set(base, "password", `"short"`), apierr.InvalidPassword, "password", "", nil},
		{"name absent", del(base, "name"), apierr.TokenNameRequired, "name", "", nil},
		{"name null", set(base, "name", `null`), apierr.TokenNameRequired, "name", "", nil},
		{"name blank", set(base, "name", `"   "`), apierr.TokenNameRequired, "name", "", nil},
		{"name 129 chars", set(base, "name", q(strings.Repeat("家", 129))), apierr.InvalidTokenName, "name", "", nil},
		{"name newline", set(base, "name", `"a\nb"`), apierr.InvalidTokenName, "name", "", nil},
		{"name escape", set(base, "name", `"a\u001b[31m"`), apierr.InvalidTokenName, "name", "", nil},
		{"name number", set(base, "name", `7`), apierr.InvalidJSONData, "name", "", nil},
		{"scopes absent", del(base, "scopes"), apierr.InvalidScopes, "scopes", "", nil},
		{"scopes null", set(base, "scopes", `null`), apierr.InvalidScopes, "scopes", "", nil},
		{"scopes empty", set(base, "scopes", `[]`), apierr.InvalidScopes, "scopes", "", nil},
		{"scope unknown", set(base, "scopes", `["events.ingest","events.write"]`), apierr.InvalidScopes, `"events.write"`, "", nil},
		{"scope case", set(base, "scopes", `["Events.Ingest"]`), apierr.InvalidScopes, `"Events.Ingest"`, "", nil},
		{"scope padded", set(base, "scopes", `[" events.ingest"]`), apierr.InvalidScopes, "scopes", "", nil},
		{"scope empty string", set(base, "scopes", `[""]`), apierr.InvalidScopes, `""`, "", nil},
		{"scope long is cut", set(base, "scopes", q2list(strings.Repeat("x", 500))), apierr.InvalidScopes, strings.Repeat("x", 64) + `..."`, "", nil},
		{"scopes not a list", set(base, "scopes", `"events.ingest"`), apierr.InvalidJSONData, "scopes", "", nil},
		{"unknown member", set(base, "token_id", q(tid)), apierr.InvalidJSONData, "token_id", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r TokenCreateRequest
			err := wire.Decode([]byte(c.body), &r)
			var v *TokenCreate
			if err == nil {
				v, err = ValidateTokenCreate(&r)
			}
			if c.code == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted\nbody: %s", err, c.body)
				}
				if v.ChannelID != cid || v.Password != pw {
					t.Errorf("credentials %q %q, want %q %q", v.ChannelID, v.Password, cid, pw)
				}
				if v.Name != c.wantName {
					t.Errorf("name %q, want %q", v.Name, c.wantName)
				}
				if !slices.Equal(v.Scopes, c.wantScopes) {
					t.Errorf("scopes %q, want %q", v.Scopes, c.wantScopes)
				}
				return
			}
			if err == nil || err.Code != c.code || err.Status() != 400 {
				t.Fatalf("got %v, want 400 %s\nbody: %s", err, c.code, c.body)
			}
			if !strings.Contains(err.Detail, c.field) {
				t.Errorf("detail %q does not contain %q", err.Detail, c.field)
			}
			if len(err.Detail) > 200 {
				t.Errorf("detail is %d bytes long", len(err.Detail))
			}
		})
	}
}

// TestTokenRevokeRules covers /channel/token/revoke.
func TestTokenRevokeRules(t *testing.T) {
	base := `{"channel_id":"` + cid + `","password":"` + pw + `","token_id":"` + tid + `"}`
	cases := []struct {
		name, body string
		code       apierr.Code
		field      string
	}{
		{"ok", base, "", ""},
		{"token_id trimmed", set(base, "token_id", q(" "+tid+" ")), "", ""},
		{"channel_id absent", del(base, "channel_id"), apierr.ChannelIDRequired, "channel_id"},
		{"password absent", del(base, "password"), apierr.PasswordRequired, "password"},
		{"token_id absent", del(base, "token_id"), apierr.TokenIDRequired, "token_id"},
		{"token_id blank", set(base, "token_id", `" "`), apierr.TokenIDRequired, "token_id"},
		{"token_id short", set(base, "token_id", q(tid[1:])), apierr.InvalidTokenID, "token_id"},
		{"token_id long", set(base, "token_id", q(tid+"a")), apierr.InvalidTokenID, "token_id"},
		{"token_id upper case", set(base, "token_id", q(strings.ToUpper(tid))), apierr.InvalidTokenID, "token_id"},
		{"token_id digit 1", set(base, "token_id", q("1"+tid[1:])), apierr.InvalidTokenID, "token_id"},
		{"token_id is a whole token", set(base, "token_id", q("pgo1."+tid+"."+strings.Repeat("0", 64))), apierr.InvalidTokenID, "token_id"},
		{"unknown member", set(base, "name", `"x"`), apierr.InvalidJSONData, "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r TokenRevokeRequest
			err := wire.Decode([]byte(c.body), &r)
			var v *TokenRevoke
			if err == nil {
				v, err = ValidateTokenRevoke(&r)
			}
			if c.code == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if v.ChannelID != cid || v.Password != pw || v.TokenID != tid {
					t.Errorf("got %+v", v)
				}
				return
			}
			if err == nil || err.Code != c.code || err.Status() != 400 {
				t.Fatalf("got %v, want 400 %s\nbody: %s", err, c.code, c.body)
			}
			if !strings.Contains(err.Detail, c.field) {
				t.Errorf("detail %q does not name %q", err.Detail, c.field)
			}
		})
	}
}

// TestTokenListRules covers /channel/token/list.
func TestTokenListRules(t *testing.T) {
	base := `{"channel_id":"` + cid + `","password":"` + pw + `"}`
	cases := []struct {
		name, body string
		code       apierr.Code
		field      string
	}{
		{"ok", base, "", ""},
		{"channel_id absent", del(base, "channel_id"), apierr.ChannelIDRequired, "channel_id"},
		{"channel_id malformed", set(base, "channel_id", `"nope"`), apierr.InvalidChannelID, "channel_id"},
		{"password absent", del(base, "password"), apierr.PasswordRequired, "password"},
		{"unknown member", set(base, "token_id", q(tid)), apierr.InvalidJSONData, "token_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r TokenListRequest
			err := wire.Decode([]byte(c.body), &r)
			var v *TokenList
			if err == nil {
				v, err = ValidateTokenList(&r)
			}
			if c.code == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if v.ChannelID != cid || v.Password != pw {
					t.Errorf("got %+v", v)
				}
				return
			}
			if err == nil || err.Code != c.code || err.Status() != 400 {
				t.Fatalf("got %v, want 400 %s\nbody: %s", err, c.code, c.body)
			}
			if !strings.Contains(err.Detail, c.field) {
				t.Errorf("detail %q does not name %q", err.Detail, c.field)
			}
		})
	}
}

func TestValidateTokenNil(t *testing.T) {
	if _, err := ValidateTokenCreate(nil); err == nil || err.Code != apierr.InvalidRequestBody {
		t.Errorf("create nil: %v", err)
	}
	if _, err := ValidateTokenRevoke(nil); err == nil || err.Code != apierr.InvalidRequestBody {
		t.Errorf("revoke nil: %v", err)
	}
	if _, err := ValidateTokenList(nil); err == nil || err.Code != apierr.InvalidRequestBody {
		t.Errorf("list nil: %v", err)
	}
}

func TestValidTokenID(t *testing.T) {
	for _, c := range TokenIDAlphabet {
		id := strings.Repeat(string(c), TokenIDLen)
		if !ValidTokenID(id) {
			t.Errorf("%q rejected", id)
		}
	}
	for _, id := range []string{"", tid[:23], tid + "a", strings.Repeat("0", 24), strings.Repeat("8", 24), strings.Repeat("A", 24), strings.Repeat("-", 24), "abcdefghijklmnopqrstuv2é"} {
		if ValidTokenID(id) {
			t.Errorf("%q accepted", id)
		}
	}
	if !KnownScope(ScopeEventsIngest) || !KnownScope(ScopeEventsRead) || KnownScope("events") || KnownScope("") {
		t.Error("KnownScope")
	}
}

// q2list returns a JSON array holding s once.
func q2list(s string) string { return "[" + q(s) + "]" }

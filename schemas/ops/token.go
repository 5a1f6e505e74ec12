package ops

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Scopes an integration token can hold (spec integrations.md, "Credentials
// for integrations"). A scope names what a token may do, never which
// channel: the channel is fixed by the token itself.
const (
	// ScopeEventsIngest lets a token append through the integration routes.
	ScopeEventsIngest = "events.ingest"
	// ScopeEventsRead lets a token read the channel's events.
	ScopeEventsRead = "events.read"
)

// KnownScope reports whether s is one of the scope constants, exactly.
func KnownScope(s string) bool {
	switch s {
	case ScopeEventsIngest, ScopeEventsRead:
		return true
	}
	return false
}

// TokenIDLen is the length of an integration token id: 120 random bits
// as lower-case RFC 4648 base32 without padding.
const TokenIDLen = 24

// TokenIDAlphabet is the alphabet of token ids: lower-case RFC 4648
// base32. Lower case only, so an id has one spelling and is a valid
// broker key and log value as it stands.
const TokenIDAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// ValidTokenID reports whether s has the form of a token id the gateway
// issues: exactly TokenIDLen characters of TokenIDAlphabet.
func ValidTokenID(s string) bool {
	if len(s) != TokenIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// maxTokenName is the length limit of a token name, in characters.
const maxTokenName = 128

// maxScopeInDetail bounds how much of an unknown scope an error detail
// quotes back, so a client cannot make the gateway echo a huge string.
const maxScopeInDetail = 64

// TokenCreateRequest is the body of /channel/token/create.
type TokenCreateRequest struct {
	ChannelID *string  `json:"channel_id"`
	Password  *string  `json:"password"`
	Name      *string  `json:"name"`
	Scopes    []string `json:"scopes"`
}

// TokenRevokeRequest is the body of /channel/token/revoke.
type TokenRevokeRequest struct {
	ChannelID *string `json:"channel_id"`
	Password  *string `json:"password"`
	TokenID   *string `json:"token_id"`
}

// TokenListRequest is the body of /channel/token/list.
type TokenListRequest struct {
	ChannelID *string `json:"channel_id"`
	Password  *string `json:"password"`
}

// TokenCreate is a validated /channel/token/create request. Scopes holds
// known scopes only, each once, in the order first sent.
type TokenCreate struct {
	ChannelID string
	Password  string
	Name      string
	Scopes    []string
}

// TokenList is a validated /channel/token/list request.
type TokenList struct {
	ChannelID string
	Password  string
}

// TokenRevoke is a validated /channel/token/revoke request.
type TokenRevoke struct {
	ChannelID string
	Password  string
	TokenID   string
}

// ValidateTokenCreate validates a /channel/token/create request. Fields are
// checked in the order channel_id, password, name, scopes, and the first
// failure is returned.
func ValidateTokenCreate(r *TokenCreateRequest) (*TokenCreate, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	id, err := validateChannelID(r.ChannelID)
	if err != nil {
		return nil, err
	}
	pw, err := validatePassword(r.Password)
	if err != nil {
		return nil, err
	}
	name, err := tokenName(r.Name)
	if err != nil {
		return nil, err
	}
	scopes, err := tokenScopes(r.Scopes)
	if err != nil {
		return nil, err
	}
	return &TokenCreate{ChannelID: id, Password: pw, Name: name, Scopes: scopes}, nil
}

// ValidateTokenRevoke validates a /channel/token/revoke request. Fields are
// checked in the order channel_id, password, token_id.
func ValidateTokenRevoke(r *TokenRevokeRequest) (*TokenRevoke, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	id, err := validateChannelID(r.ChannelID)
	if err != nil {
		return nil, err
	}
	pw, err := validatePassword(r.Password)
	if err != nil {
		return nil, err
	}
	tid, err := tokenID(r.TokenID)
	if err != nil {
		return nil, err
	}
	return &TokenRevoke{ChannelID: id, Password: pw, TokenID: tid}, nil
}

// ValidateTokenList validates a /channel/token/list request. Fields are
// checked in the order channel_id, password.
func ValidateTokenList(r *TokenListRequest) (*TokenList, *apierr.Error) {
	if r == nil {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	id, err := validateChannelID(r.ChannelID)
	if err != nil {
		return nil, err
	}
	pw, err := validatePassword(r.Password)
	if err != nil {
		return nil, err
	}
	return &TokenList{ChannelID: id, Password: pw}, nil
}

// tokenName: trimmed, 1-128 characters, no control characters. The name
// is how an owner tells their tokens apart ("alertmanager prod"), shown in
// listings where a newline or an escape sequence would break the layout.
func tokenName(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(apierr.TokenNameRequired, "name")
	}
	n := strings.TrimSpace(*s)
	if utf8.RuneCountInString(n) > maxTokenName || strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return "", apierr.Field(apierr.InvalidTokenName, "name")
	}
	return n, nil
}

// tokenScopes: a non-empty list of known scopes, deduplicated. Scopes are
// matched exactly (no trimming, no case folding): a scope is a fixed
// identifier, and a near miss is more likely a typo for another scope than
// a spelling of this one.
func tokenScopes(in []string) ([]string, *apierr.Error) {
	if len(in) == 0 {
		return nil, apierr.Fieldf(apierr.InvalidScopes, "scopes", "must list at least one of %s, %s", ScopeEventsIngest, ScopeEventsRead)
	}
	out := make([]string, 0, 2)
	for _, s := range in {
		if !KnownScope(s) {
			shown := s
			if len(shown) > maxScopeInDetail {
				shown = shown[:maxScopeInDetail] + "..."
			}
			return nil, apierr.Fieldf(apierr.InvalidScopes, "scopes", "unknown scope %q; known scopes are %s, %s", shown, ScopeEventsIngest, ScopeEventsRead)
		}
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out, nil
}

// tokenID: required, the exact form the gateway issues after trimming.
func tokenID(s *string) (string, *apierr.Error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", apierr.Field(apierr.TokenIDRequired, "token_id")
	}
	id := strings.TrimSpace(*s)
	if !ValidTokenID(id) {
		return "", apierr.Field(apierr.InvalidTokenID, "token_id")
	}
	return id, nil
}

package httpapi

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// Tokens is the integration token registry as the token routes use it.
type Tokens interface {
	Create(ctx context.Context, channelID, name string, scopes []string, now time.Time) (string, apitokens.Token, error)
	Revoke(ctx context.Context, channelID, tokenID string) *apierr.Error
	List(ctx context.Context, channelID string) ([]apitokens.Token, *apierr.Error)
}

// maxTokensListed bounds one /channel/token/list answer. The per-channel
// cap (PUSHGO_LIMIT_TOKENS_PER_CHANNEL, 100 by default) keeps a channel
// far below it; it matters only where an operator lifted the cap, and
// then the answer says it is truncated instead of growing without bound.
const maxTokensListed = 1000

// tokenCreated is the answer of /channel/token/create: the only place the
// whole token is ever shown.
type tokenCreated struct {
	ChannelID string   `json:"channel_id"`
	TokenID   string   `json:"token_id"`
	Token     string   `json:"token"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	// CreatedAt is in Unix milliseconds.
	CreatedAt int64 `json:"created_at"`
}

// tokenListed is one token of /channel/token/list: what the owner needs
// to tell tokens apart and revoke one, never the secret or its hash.
type tokenListed struct {
	TokenID string   `json:"token_id"`
	Name    string   `json:"name"`
	Scopes  []string `json:"scopes"`
	// CreatedAt is in Unix milliseconds.
	CreatedAt int64 `json:"created_at"`
}

// tokenList is the answer of /channel/token/list. Tokens are oldest
// first; Truncated is true when the channel holds more than
// maxTokensListed and the newest were left out.
type tokenList struct {
	ChannelID string        `json:"channel_id"`
	Tokens    []tokenListed `json:"tokens"`
	Truncated bool          `json:"truncated"`
}

type tokenRevoked struct {
	ChannelID string `json:"channel_id"`
	TokenID   string `json:"token_id"`
	Revoked   bool   `json:"revoked"`
}

// routeTokens adds POST /channel/token/create, /channel/token/list and
// /channel/token/revoke (spec integrations.md, "Credentials for
// integrations"). All are authorized by the channel password, like
// /channel/rename; the gateway bearer token, when enabled, applies as on
// every PushGo route.
func (s *Server) routeTokens() {
	s.echo.POST("/channel/token/create", s.tokenCreate, s.refuseOnFullDisk)
	s.echo.POST("/channel/token/list", s.tokenList)
	s.echo.POST("/channel/token/revoke", s.tokenRevoke, s.refuseOnFullDisk)
}

func (s *Server) tokenCreate(c *echo.Context) error {
	var req ops.TokenCreateRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := ops.ValidateTokenCreate(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ctx := c.Request().Context()
	if _, aerr := s.channels.Authorize(ctx, v.ChannelID, v.Password); aerr != nil {
		return writeErr(c, aerr)
	}
	tok, rec, err := s.opts.Tokens.Create(ctx, v.ChannelID, v.Name, v.Scopes, s.opts.Now())
	if errors.Is(err, apitokens.ErrLimitReached) {
		return writeErr(c, s.lim.TokenLimit())
	}
	if err != nil {
		s.log.Warn("http: token create failed", "channel_id", v.ChannelID, "err", err)
		return writeErr(c, s.storeOr(err, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "token could not be stored; retry", RetryAfter: 1}))
	}
	// The answer carries a credential: no cache along the way may keep it.
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeOK(c, tokenCreated{ChannelID: rec.ChannelID, TokenID: rec.ID, Token: tok, Name: rec.Name, Scopes: rec.Scopes, CreatedAt: rec.CreatedAt})
}

func (s *Server) tokenRevoke(c *echo.Context) error {
	var req ops.TokenRevokeRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := ops.ValidateTokenRevoke(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ctx := c.Request().Context()
	if _, aerr := s.channels.Authorize(ctx, v.ChannelID, v.Password); aerr != nil {
		return writeErr(c, aerr)
	}
	if aerr := s.opts.Tokens.Revoke(ctx, v.ChannelID, v.TokenID); aerr != nil {
		return writeErr(c, aerr)
	}
	return writeOK(c, tokenRevoked{ChannelID: v.ChannelID, TokenID: v.TokenID, Revoked: true})
}

func (s *Server) tokenList(c *echo.Context) error {
	var req ops.TokenListRequest
	if aerr := decodeJSON(c, &req); aerr != nil {
		return writeErr(c, aerr)
	}
	v, aerr := ops.ValidateTokenList(&req)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	ctx := c.Request().Context()
	if _, aerr := s.channels.Authorize(ctx, v.ChannelID, v.Password); aerr != nil {
		return writeErr(c, aerr)
	}
	toks, aerr := s.opts.Tokens.List(ctx, v.ChannelID)
	if aerr != nil {
		return writeErr(c, aerr)
	}
	out := tokenList{ChannelID: v.ChannelID, Tokens: make([]tokenListed, 0, min(len(toks), maxTokensListed))}
	if len(toks) > maxTokensListed {
		toks, out.Truncated = toks[:maxTokensListed], true
	}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, tokenListed{TokenID: t.ID, Name: t.Name, Scopes: t.Scopes, CreatedAt: t.CreatedAt})
	}
	// What tokens a channel holds is the owner's business: no shared
	// cache may keep the answer.
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeOK(c, out)
}

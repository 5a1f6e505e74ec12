package httpapi

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/broker/storage"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// Tokens is the integration token registry as the token routes use it.
type Tokens interface {
	Create(ctx context.Context, channelID, name string, scopes []string, now time.Time) (string, apitokens.Token, error)
	Revoke(ctx context.Context, channelID, tokenID string) *apierr.Error
}

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

type tokenRevoked struct {
	ChannelID string `json:"channel_id"`
	TokenID   string `json:"token_id"`
	Revoked   bool   `json:"revoked"`
}

// routeTokens adds POST /channel/token/create and /channel/token/revoke
// (spec integrations.md, "Credentials for integrations"). Both are
// authorized by the channel password, like /channel/rename; the gateway
// bearer token, when enabled, applies as on every PushGo route.
func (s *Server) routeTokens() {
	s.echo.POST("/channel/token/create", s.tokenCreate)
	s.echo.POST("/channel/token/revoke", s.tokenRevoke)
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
		return writeErr(c, storage.Or(err, &apierr.Error{Code: apierr.BrokerUnavailable, Detail: "token could not be stored; retry", RetryAfter: 1}))
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

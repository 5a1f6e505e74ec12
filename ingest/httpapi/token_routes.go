package httpapi

import (
	"context"
	"time"

	"github.com/pushgo/gateway/ingest/apitokens"
	"github.com/pushgo/gateway/schemas/apierr"
)

// Tokens is the integration token registry as the token routes use it.
type Tokens interface {
	Create(ctx context.Context, channelID, name string, scopes []string, now time.Time) (string, apitokens.Token, error)
	Revoke(ctx context.Context, channelID, tokenID string) *apierr.Error
}

// routeTokens adds POST /channel/token/create and /channel/token/revoke.
// STUB: being written.
func (s *Server) routeTokens() {}

package integrations

import (
	"context"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/schemas/apierr"
)

// throttledTokens is Tokens whose failed checks a client address pays for
// (limits.Limits.AuthCheck, AuthFailed): past its failures it is refused
// 429 rate_limited before any check. A token the gateway does not hold in
// memory costs a read of the bucket's leader, so random tokens were
// unauthenticated broker load without a bound (and an invariant of
// DESIGN's: failed credentials are rate limited).
type throttledTokens struct {
	Tokens
	lim *limits.Limits
}

func (t throttledTokens) Authorize(ctx context.Context, header, scope string) (apitokens.Token, *apierr.Error) {
	return t.check(ctx, func() (apitokens.Token, *apierr.Error) { return t.Tokens.Authorize(ctx, header, scope) })
}

func (t throttledTokens) AuthorizeToken(ctx context.Context, token, scope string) (apitokens.Token, *apierr.Error) {
	return t.check(ctx, func() (apitokens.Token, *apierr.Error) { return t.Tokens.AuthorizeToken(ctx, token, scope) })
}

// check runs authorize unless the client has spent its failures, and
// spends one for a token refused as wrong or revoked (not for one lacking a
// scope: that token is the sender's own).
func (t throttledTokens) check(ctx context.Context, authorize func() (apitokens.Token, *apierr.Error)) (apitokens.Token, *apierr.Error) {
	if aerr := t.lim.AuthCheck(ctx); aerr != nil {
		return apitokens.Token{}, aerr
	}
	tok, aerr := authorize()
	if aerr != nil && aerr.Code == apierr.InvalidAPIToken {
		t.lim.AuthFailed(ctx)
	}
	return tok, aerr
}

package apns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/pushgo/gateway/pusher/sender/internal/bearer"
)

// TokenSource supplies the provider authentication token of APNs requests
// (sent as "authorization: bearer <token>"): a .p8 key signing its own
// JWTs, or the PushGo token service (pusher/sender/tokenservice.Cache).
type TokenSource interface {
	// Token returns the token for a request about to be sent. It is called
	// for every request, so it must answer from a cache when it can; ctx
	// is the request's. An error fails the Send with Retry, reason "auth",
	// without a request; it must not contain a credential.
	Token(ctx context.Context) (string, error)
}

// Invalidator is implemented by a TokenSource that can replace a token APNs
// rejected as expired (403 ExpiredProviderToken). The Sender then calls
// Invalidate with the rejected token and sends the request once more with
// the token Token returns next, as the PushGo gateway does.
type Invalidator interface {
	Invalidate(token string)
}

// keySource signs provider tokens with a .p8 key through apns2's token
// package (a JWT renewed every 50 minutes).
type keySource struct{ t *token.Token }

func (k keySource) Token(context.Context) (string, error) {
	if b := k.t.GenerateIfExpired(); b != "" {
		return b, nil
	}
	return "", errors.New("apns: signing the provider token failed")
}

// minResign is the youngest a .p8 key's token may be to be signed again
// when APNs calls it expired: Apple refuses a provider token replaced more
// often than every 20 minutes (429 TooManyProviderTokenUpdates), and a
// younger token called expired says the clock is wrong, which a new
// signature with the same clock does not mend.
const minResign = 20 * time.Minute

// Invalidate signs a new token if rejected is the current one and at least
// minResign old.
func (k keySource) Invalidate(rejected string) {
	k.t.Lock()
	defer k.t.Unlock()
	if k.t.Bearer == rejected && time.Since(time.Unix(k.t.IssuedAt, 0)) >= minResign {
		_, _ = k.t.Generate()
	}
}

// authTransport puts src's token on every request below base.
func authTransport(src TokenSource, base http.RoundTripper) *bearer.Transport {
	t := &bearer.Transport{
		Base: base,
		// push, and apns2's PushWithContext, make a request per send and
		// never read it again.
		OwnsRequests: true,
		Authorize: func(r *http.Request) (string, error) {
			tok, err := src.Token(r.Context())
			if err != nil {
				return "", fmt.Errorf("apns: provider token: %w", err)
			}
			r.Header.Set("authorization", "bearer "+tok)
			return tok, nil
		},
		Expired: func(status int, body []byte) bool {
			var b struct {
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(body, &b, json.RejectUnknownMembers(false))
			return b.Reason == apns2.ReasonExpiredProviderToken
		},
	}
	if inv, ok := src.(Invalidator); ok {
		t.Invalidate = inv.Invalidate
	}
	return t
}

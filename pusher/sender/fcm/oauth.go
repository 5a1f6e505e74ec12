package fcm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/pushgo/gateway/pusher/sender/tokenservice"
)

// tokenLifetime stands for the expiry of an OAuth token that states none
// (a static source): it is asked for again after about this long.
const tokenLifetime = time.Hour

// oauthSource is the AccessSource of a Sender given a credentials file or
// an oauth2.TokenSource, with the project of Options: a tokenservice.Cache
// in front of the token source. The SDK's own transport asked the source
// for a token under a lock and without a deadline, so a token endpoint that
// stalled during the hourly refresh held every FCM send, one after the
// other, far past its SendTimeout (and the pusher's workers with them);
// through the cache a request waits for a token no longer than its context
// allows, and concurrent requests share one fetch. A token FCM rejects is
// asked for again once (Invalidate), but Google's own source hands back
// the token it holds until about 10 s before its expiry: a rejected
// credentials-file token is retried with the policy's back-off, not
// replaced at once.
func oauthSource(ts oauth2.TokenSource, project string) (AccessSource, error) {
	fetch := func(context.Context) (tokenservice.Token, error) {
		// The source takes no context: the credentials file's is bounded
		// by its HTTP client's timeout (credentialsSource), and the cache
		// stops waiting for it at each caller's deadline.
		t, err := ts.Token()
		if err != nil {
			return tokenservice.Token{}, err
		}
		expiry := t.Expiry
		if expiry.IsZero() {
			expiry = time.Now().Add(tokenLifetime)
		}
		return tokenservice.Token{Value: t.AccessToken, ProjectID: project, Expiry: expiry}, nil
	}
	// The oauth2 source replaces a token 10 s before its expiry: the cache
	// asks it again from 5 s before (at 30 s the source would hand back the
	// same token, and the cache would ask again at half of what is left).
	c, err := tokenservice.NewCache(fetch, tokenservice.CacheOptions{Name: "fcm oauth", RefreshBefore: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	return c, nil
}

// credentialsSource returns the token source of a credentials file (a
// service account key, or any credentials JSON Google's library reads),
// whose token requests are each bounded by fetchTimeout.
func credentialsSource(file string, fetchTimeout time.Duration) (oauth2.TokenSource, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials file: %w", err)
	}
	// The library fetches tokens with the HTTP client of this context, for
	// the source's whole life; without one it uses a client with no
	// timeout.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: fetchTimeout})
	creds, err := google.CredentialsFromJSON(ctx, b, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials file: %w", err)
	}
	return creds.TokenSource, nil
}

package fcm

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/pushgo/gateway/pusher/sender/internal/bearer"
)

// AccessSource supplies FCM access tokens together with the Firebase
// project they are valid for: the PushGo token service
// (pusher/sender/tokenservice.Cache) answers both, and the project may
// change with the token.
type AccessSource interface {
	// Access returns the access token and project id for a request about
	// to be sent. It is called for every request, so it must answer from
	// a cache when it can; ctx is the request's. An error fails the Send
	// with Retry, reason "auth", without a request; it must not contain a
	// credential.
	Access(ctx context.Context) (token, projectID string, err error)
}

// Invalidator is implemented by an AccessSource that can replace a token
// FCM rejected (401 or 403). The Sender then calls Invalidate with the
// rejected token and sends the request once more with the token Access
// returns next, as the PushGo gateway does (fcm_client.rs
// token_info_fresh).
type Invalidator interface {
	Invalidate(token string)
}

// sourcedProject stands for the project in the SDK's request URL when the
// project comes from an AccessSource: the SDK needs one when it is made,
// and accessTransport puts the source's project in its place. "-" is not
// a valid project id, so a URL that escaped the rewrite would fail rather
// than reach some project.
const sourcedProject = "-"

// accessTransport authorizes SDK requests with src's token and sends them
// to src's project.
func accessTransport(src AccessSource, base http.RoundTripper) *bearer.Transport {
	t := &bearer.Transport{
		Base: base,
		Authorize: func(r *http.Request) (string, error) {
			tok, project, err := src.Access(r.Context())
			if err != nil {
				return "", fmt.Errorf("fcm: access token: %w", err)
			}
			if project == "" || strings.ContainsAny(project, "/?#%") {
				return "", fmt.Errorf("fcm: access source gave project id %q", project)
			}
			const seg = "/projects/" + sourcedProject + "/"
			if i := strings.LastIndex(r.URL.Path, seg); i >= 0 {
				u := *r.URL
				u.Path = u.Path[:i] + "/projects/" + project + "/" + u.Path[i+len(seg):]
				u.RawPath = ""
				r.URL = &u
			}
			r.Header.Set("Authorization", "Bearer "+tok)
			return tok, nil
		},
		Expired: func(status int, _ []byte) bool {
			return status == http.StatusUnauthorized || status == http.StatusForbidden
		},
	}
	if inv, ok := src.(Invalidator); ok {
		t.Invalidate = inv.Invalidate
	}
	return t
}

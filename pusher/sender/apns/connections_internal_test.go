package apns

import (
	"context"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"github.com/pushgo/gateway/pusher/sender/internal/attempt"
	"github.com/pushgo/gateway/pusher/sender/internal/bearer"
)

// TestOwnTransportsKeepOneConnection: with apns2's own transports (no
// HTTPClient given: production), each client's transport waits for a free
// stream instead of opening a second connection, so a sender holds the
// connections Options.Connections says, no more.
func TestOwnTransportsKeepOneConnection(t *testing.T) {
	s, err := New(Options{TokenSource: fixedToken("t"), Topic: "app.pushgo.test", Connections: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range s.clients {
		var rt http.RoundTripper = c.HTTPClient.Transport
		if a, ok := rt.(*attempt.Transport); ok {
			rt = a.Base
		}
		if b, ok := rt.(*bearer.Transport); ok {
			rt = b.Base
		}
		h2, ok := rt.(*http2.Transport)
		if !ok {
			t.Fatalf("client %d: transport %T, want apns2's *http2.Transport", i, rt)
		}
		if !h2.StrictMaxConcurrentStreams {
			t.Errorf("client %d: a full connection would open another one (StrictMaxConcurrentStreams off)", i)
		}
	}
}

type fixedToken string

func (f fixedToken) Token(context.Context) (string, error) { return string(f), nil }

package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestPrivateGateway checks PUSHGO_TOKEN (spec §1, private gateway): every
// route but /healthz, /readyz and /metrics needs "Bearer <token>" with a
// case-insensitive scheme; missing or wrong is 401 authentication_failed.
func TestPrivateGateway(t *testing.T) {
	t.Parallel()
	token := "private-" + randomHex(t, 16)
	g := startGateway(t, gwConfig{DataDir: t.TempDir(), Token: token})

	send := func(t *testing.T, method, path string, body []byte, auth string) *apiResp {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// An empty value means: send no Authorization header at all.
		r, err := g.Do(ctx, method, path, body, http.Header{"Authorization": {auth}})
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return r
	}
	const password = "private-channel-pw"
	chBody := mustJSON(t, map[string]string{"channel_name": "private", "password": password})

	t.Run("missing or wrong token is 401", func(t *testing.T) {
		for _, auth := range []string{
			"",                               // no header
			"Bearer wrong-token",             // wrong token
			"Bearer " + token + "x",          // longer
			"Bearer " + token[:len(token)-1], // prefix of the token
			"Bearer ",                        // empty token
			"Basic " + token,                 // other scheme
			token,                            // no scheme
			"Bearer " + token + " " + token,  // more than one token
		} {
			r := send(t, http.MethodPost, "/channel/create", chBody, auth)
			mustFail(t, r, http.StatusUnauthorized, "authentication_failed")
		}
		mustFail(t, send(t, http.MethodGet, "/message?title=x", nil, ""), http.StatusUnauthorized, "authentication_failed")
		mustFail(t, send(t, http.MethodGet, "/channel/exists?channel_id=00000000000000000000000000", nil, "Bearer nope"), http.StatusUnauthorized, "authentication_failed")
	})

	t.Run("401 carries X-Request-Id, echoed when sent", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := g.Do(ctx, http.MethodPost, "/event/create", []byte(`{}`), http.Header{"Authorization": {""}, "X-Request-Id": {"e2e-req-1"}})
		if err != nil {
			t.Fatal(err)
		}
		mustFail(t, r, http.StatusUnauthorized, "authentication_failed")
		if got := r.Header.Get("X-Request-Id"); got != "e2e-req-1" {
			t.Errorf("X-Request-Id %q, want the client's e2e-req-1", got)
		}
	})

	var ch string
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		for i, scheme := range []string{"bearer", "Bearer", "BEARER", "bEaReR"} {
			r := send(t, http.MethodPost, "/channel/create", chBody, scheme+" "+token)
			data := mustOK(t, r, "channel_id", "channel_name", "created")
			if i == 0 {
				ch = str(t, data, "channel_id")
			}
		}
	})
	if ch == "" {
		t.FailNow()
	}

	t.Run("write routes need the token", func(t *testing.T) {
		ev := mustJSON(t, map[string]any{
			"channel_id": ch, "password": password, "title": "Private deploy", "status": "running",
			"message": "started", "severity": "normal", "event_time": 1713750000000,
		})
		mustFail(t, send(t, http.MethodPost, "/event/create", ev, ""), http.StatusUnauthorized, "authentication_failed")
		mustFail(t, send(t, http.MethodPost, "/event/create", ev, "Bearer wrong"), http.StatusUnauthorized, "authentication_failed")
		mustOK(t, send(t, http.MethodPost, "/event/create", ev, "bearer "+token), eventKeys...)
		// The 401s appended nothing.
		if n := len(readOps(t, g.natsURL)); n != 1 {
			t.Errorf("PUSHGO_OPS holds %d operations after one accepted create and two 401s, want 1", n)
		}
	})

	t.Run("open routes need no token", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			for _, auth := range []string{"", "Bearer wrong"} {
				if r := send(t, http.MethodGet, path, nil, auth); r.Status != http.StatusOK {
					t.Errorf("GET %s with Authorization %q: %s", path, auth, r)
				}
			}
		}
	})
}

package cli

import (
	"fmt"
	"strings"
	"testing"
)

// TestTokenCommands: pushgo token create sends the name and the scopes
// (events.ingest by default) with the channel's credentials and prints the
// token alone, and is not sent again after a time-out (a retry could make
// a second token); token list prints one tab-separated line per token,
// oldest first, with the creation time in RFC 3339; token revoke sends the
// id and prints it.
func TestTokenCommands(t *testing.T) {
	const tok = "pgo1.q3vbx7m2k4n5p6r7s2t3u4v5." + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	stub, srv := newStub(t, func(_ int, r stubRequest) (int, map[string]string, string) {
		switch r.Path {
		case "/channel/token/create":
			return okAnswer(`{"channel_id":"CHANNEL","token_id":"q3vbx7m2k4n5p6r7s2t3u4v5","token":"` + tok + `","name":"am","scopes":["events.ingest"],"created_at":1713750000000}`)
		case "/channel/token/list":
			return okAnswer(`{"channel_id":"CHANNEL","tokens":[` +
				`{"token_id":"q3vbx7m2k4n5p6r7s2t3u4v5","name":"am","scopes":["events.ingest"],"created_at":1713750000000},` +
				`{"token_id":"aaaaaaaaaaaaaaaaaaaaaaaa","name":"dynatrace prod","scopes":["events.ingest","events.read"],"created_at":1713750060000}],"truncated":false}`)
		case "/channel/token/revoke":
			return okAnswer(`{"channel_id":"CHANNEL","token_id":"` + r.Body["token_id"].(string) + `","revoked":true}`)
		}
		return failAnswer(404, "route_not_found", r.Path)
	})
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}

	r := runMain(t, env, "", "token", "create", "--name", "am")
	if r.code != 0 || r.stdout != tok+"\n" {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runMain(t, env, "", "token", "create", "--name", "dt", "--scope", "events.ingest", "--scope", "events.read", "--json")
	if r.code != 0 || !strings.HasPrefix(r.stdout, `{"channel_id":"CHANNEL","token_id":`) {
		t.Fatalf("token create --json: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runMain(t, env, "", "token", "list")
	want := "q3vbx7m2k4n5p6r7s2t3u4v5\tam\tevents.ingest\t2024-04-22T01:40:00Z\n" +
		"aaaaaaaaaaaaaaaaaaaaaaaa\tdynatrace prod\tevents.ingest,events.read\t2024-04-22T01:41:00Z\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("token list: exit %d, stdout %q, want %q; stderr %q", r.code, r.stdout, want, r.stderr)
	}
	r = runMain(t, env, "", "token", "revoke", "q3vbx7m2k4n5p6r7s2t3u4v5")
	if r.code != 0 || r.stdout != "q3vbx7m2k4n5p6r7s2t3u4v5\n" {
		t.Fatalf("token revoke: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	reqs := stub.got()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for i, want := range []string{
		`map[channel_id:CHANNEL name:am password:the-password scopes:[events.ingest]]`,
		`map[channel_id:CHANNEL name:dt password:the-password scopes:[events.ingest events.read]]`,
		`map[channel_id:CHANNEL password:the-password]`,
		`map[channel_id:CHANNEL password:the-password token_id:q3vbx7m2k4n5p6r7s2t3u4v5]`,
	} {
		if got := fmt.Sprint(reqs[i].Body); got != want { // fmt sorts map keys
			t.Errorf("request %d (%s) body %s, want %s", i, reqs[i].Path, got, want)
		}
	}

	// Usage: a name is required, revoke takes one id; nothing is sent.
	for _, args := range [][]string{{"token", "create"}, {"token", "revoke"}, {"token", "list", "extra"}, {"token", "bogus"}} {
		if r := runMain(t, env, "", args...); r.code != ExitUsage {
			t.Errorf("pushgo %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if n := len(stub.got()); n != 4 {
		t.Errorf("usage errors sent %d requests", n-4)
	}

	// A create whose answer does not come in time is not sent again.
	release := make(chan struct{})
	slow, srv2 := newStub(t, func(int, stubRequest) (int, map[string]string, string) {
		<-release
		return okAnswer(`{}`)
	})
	defer close(release)
	env[EnvURL] = srv2.URL
	r = runMain(t, env, "", "token", "create", "--name", "x", "--timeout", "300ms", "--retries", "3")
	if r.code != ExitUnavailable || len(slow.got()) != 1 {
		t.Fatalf("token create after a time-out: exit %d after %d attempts (stderr %q); want exit 3 after 1", r.code, len(slow.got()), r.stderr)
	}
}

// TestTokenCreateNotRetriedAfter503: a token create or revoke answered 503
// (which can follow a create the broker stored) is not sent again: exit 3,
// saying the token may exist and to check with pushgo token list.
func TestTokenCreateNotRetriedAfter503(t *testing.T) {
	stub, srv := newStub(t, func(int, stubRequest) (int, map[string]string, string) {
		return failAnswer(503, "broker_unavailable", "the broker did not answer")
	})
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	for i, args := range [][]string{{"token", "create", "--name", "am"}, {"token", "revoke", "q3vbx7m2k4n5p6r7s2t3u4v5"}} {
		r := runMain(t, env, "", append(args, "--retries", "3")...)
		if r.code != ExitUnavailable || len(stub.got()) != i+1 || !strings.Contains(r.stderr, "pushgo token list") {
			t.Errorf("pushgo %s after a 503: exit %d after %d attempts, stderr %q; want exit 3 after 1, naming pushgo token list",
				strings.Join(args, " "), r.code, len(stub.got())-i, r.stderr)
		}
	}
}

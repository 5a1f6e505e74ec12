package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sseItem is a history item as the gateway streams it.
func sseItem(seq int) string {
	return fmt.Sprintf("id: %d\nevent: message.create\ndata: {\"seq\":%d,\"entity_type\":\"message\",\"op\":\"message.create\",\"op_id\":\"op-%d\",\"entity_id\":\"m%d\",\"accepted_at\":1776852000000,\"payload\":{\"title\":\"t%d\"}}\n\n", seq, seq, seq, seq, seq)
}

// TestTailReconnectsWithoutGapOrRepeat: the stream ends after 3 items;
// tail reconnects with Last-Event-ID 3, and an item the gateway sends
// again (3) is not printed twice. The state file holds the last item
// printed, and the next run resumes from it.
func TestTailReconnectsWithoutGapOrRepeat(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/channel/stream" || r.Header.Get("X-PushGo-Channel") != "CHANNEL" || r.Header.Get("X-PushGo-Password") != "the-password" {
			w.WriteHeader(403)
			fmt.Fprint(w, `{"success":false,"data":null,"error":"channel password does not match","error_code":"password_mismatch"}`)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		conn := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch conn {
		case 1:
			fmt.Fprint(w, ": keep-alive\n\n"+sseItem(1)+sseItem(2)+sseItem(3)+": stream ended: the log is unavailable; reconnect with Last-Event-ID\n\n")
		default:
			fmt.Fprint(w, sseItem(3)+sseItem(4)+sseItem(5)+sseItem(6))
		}
	}))
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "tail.state")
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	r := runMain(t, env, "", "tail", "--json", "--state", state, "--count", "5")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	var seqs []int
	for _, l := range lines {
		var it struct{ Seq int }
		if err := json.Unmarshal([]byte(l), &it); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		seqs = append(seqs, it.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Fatalf("printed seqs %v, want [1 2 3 4 5]", seqs)
	}
	mu.Lock()
	if fmt.Sprint(lastIDs) != "[ 3]" {
		t.Errorf("Last-Event-ID per connection %q, want none then 3", lastIDs)
	}
	mu.Unlock()
	if !strings.Contains(r.stderr, "reconnecting after 3") {
		t.Errorf("stderr %q does not say it reconnects", r.stderr)
	}
	b, err := os.ReadFile(state)
	if err != nil || strings.TrimSpace(string(b)) != `{"channel_id":"CHANNEL","last_event_id":5}` {
		t.Fatalf("state %s %v", b, err)
	}

	// The next run starts after 5; human output, one line per item.
	r = runMain(t, env, "", "tail", "--state", state, "--count", "1")
	if r.code != 0 || r.stdout != "6\t2026-04-22T10:00:00Z\tmessage.create\tm6\tt6\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	mu.Lock()
	if got := lastIDs[len(lastIDs)-1]; got != "5" {
		t.Errorf("resumed with Last-Event-ID %q, want 5", got)
	}
	mu.Unlock()

	// A refusal ends tail at once: exit 1.
	env[EnvPassword] = "wrong-password"
	r = runMain(t, env, "", "tail")
	if r.code != ExitRefused || !strings.Contains(r.stderr, "password_mismatch") {
		t.Fatalf("wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestTailStateOfAnotherChannel: a state file is a channel's; using it
// for another is a usage error, and an unreadable one too.
func TestTailStateOfAnotherChannel(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "s")
	if err := writeTailState(state, tailState{ChannelID: "OTHER", LastEventID: 9}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v %v, want 0600", fi.Mode(), err)
	}
	env := map[string]string{EnvURL: "http://127.0.0.1:1", EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	if r := runMain(t, env, "", "tail", "--state", state); r.code != ExitUsage || !strings.Contains(r.stderr, "OTHER") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not json"), 0o600)
	if r := runMain(t, env, "", "tail", "--state", junk); r.code != ExitUsage {
		t.Fatalf("junk state: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestTailEndsWhenItCannotWrite: a --state file that cannot be written
// (its directory missing) ends tail with exit 1, as the README says, after
// the lines it printed: it reconnected for ever instead, each batch
// reported as a lost stream, and never saved its place.
func TestTailEndsWhenItCannotWrite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, sseItem(1)+sseItem(2))
	}))
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "missing-dir", "tail.state")
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	r := runMain(t, env, "", "tail", "--state", state, "--count", "5")
	if r.code != ExitRefused || !strings.Contains(r.stderr, "missing-dir") || strings.Contains(r.stderr, "reconnect") {
		t.Fatalf("exit %d, stderr %q: want exit 1 naming the state file, no reconnect", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "1\t") {
		t.Fatalf("stdout %q: want the lines printed before the failure", r.stdout)
	}
}

// TestTailLineHoldsOneOperation: a sender's line breaks, tabs and escape
// sequences stay on the operation's one line, escaped, and never reach
// the terminal as controls.
func TestTailLineHoldsOneOperation(t *testing.T) {
	got := humanItem(7, "message.create", []byte(`{"entity_id":"m7","accepted_at":1776852000000,"payload":{"title":"a\nb\tc\u001b[2J","body":"line 1\nline 2"}}`))
	if got != "7\t2026-04-22T10:00:00Z\tmessage.create\tm7\ta\\nb\\tc\\x1b[2J | line 1\\nline 2\n" {
		t.Fatalf("line %q", got)
	}
}

// TestTailOutageOutlastsEmptyStreams: a proxy that answers 200 and ends
// the stream at once is an outage: --max-outage ends tail (exit 3). The
// 200 alone reset the outage clock, and tail reconnected for ever.
func TestTailOutageOutlastsEmptyStreams(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
	}))
	defer srv.Close()
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	r := runMain(t, env, "", "tail", "--max-outage", "300ms")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "unreachable for more than") {
		t.Fatalf("exit %d, stderr %q: want exit 3 after the outage", r.code, r.stderr)
	}
}

// TestTailOutageOutlastsStreamsTheGatewayEnds: a gateway whose log is
// unavailable answers every stream with its closing comment only; that is
// no connection (each reset the outage and the back-off: tail reconnected
// four times a second for ever), and the reason it gave is said.
func TestTailOutageOutlastsStreamsTheGatewayEnds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": stream ended: the log is unavailable; reconnect with Last-Event-ID\n\n")
	}))
	defer srv.Close()
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	r := runMain(t, env, "", "tail", "--max-outage", "300ms")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "unreachable for more than") ||
		!strings.Contains(r.stderr, "the log is unavailable") || strings.Contains(r.stderr, "reconnected") {
		t.Fatalf("exit %d, stderr %q: want exit 3 after the outage, with the gateway's reason and no reconnection", r.code, r.stderr)
	}
}

// TestTailSaysWhatAgedOut: resumed after 3 (its --state), tail gets the
// gateway's gap event (4 to 9 aged out of its log) and says on stderr what
// it lost; the event prints nothing, and what follows prints as usual.
func TestTailSaysWhatAgedOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 3\nevent: gap\ndata: {\"after\":3,\"first_seq\":10}\n\n"+sseItem(10)+sseItem(11))
	}))
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "tail.state")
	if err := os.WriteFile(state, []byte(`{"channel_id":"CHANNEL","last_event_id":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	r := runMain(t, env, "", "tail", "--json", "--state", state, "--count", "2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "no longer holds its operations after 3 and before 10") {
		t.Errorf("stderr %q does not say what aged out", r.stderr)
	}
	if lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"seq":10`) {
		t.Errorf("stdout %q, want items 10 and 11", r.stdout)
	}
}

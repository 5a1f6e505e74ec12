package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// run is one Main run with env and stdin; serve records server runs.
type run struct {
	code           int
	stdout, stderr string
	served         [][]string
}

func runMain(t *testing.T, env map[string]string, stdin string, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	var r run
	serve := func(_ context.Context, a []string) int {
		r.served = append(r.served, slices.Clone(a))
		return 7
	}
	r.code = Main(ctx, args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: envOf(env)}, serve)
	r.stdout, r.stderr = out.String(), errOut.String()
	return r
}

// TestServerDispatch: no arguments, "serve" and the server's flags alone
// run the server with its flags; a client command, the client's flags and
// -h/--help are the client's.
func TestServerDispatch(t *testing.T) {
	for _, c := range []struct {
		args  []string
		serve []string // nil: the client
	}{
		{[]string{}, []string{}},
		{[]string{"serve"}, []string{}},
		{[]string{"serve", "-target", "ingest"}, []string{"-target", "ingest"}},
		{[]string{"serve", "-h"}, []string{"-h"}},
		{[]string{"-target", "ingest"}, []string{"-target", "ingest"}},
		{[]string{"--target=projector", "-log-level", "debug"}, []string{"--target=projector", "-log-level", "debug"}},
		{[]string{"-rebuild=true"}, []string{"-rebuild=true"}},
		{[]string{"--help"}, nil},
		{[]string{"-h"}, nil},
		{[]string{"help"}, nil},
		{[]string{"--json", "status", "x"}, nil},
		{[]string{"--server=ftp://nowhere", "status", "x"}, nil},
		{[]string{"send", "--title", "x"}, nil},
	} {
		// An unusable gateway URL: a client command ends before sending.
		r := runMain(t, map[string]string{EnvURL: "ftp://nowhere"}, "", c.args...)
		switch {
		case c.serve != nil && (len(r.served) != 1 || !slices.Equal(r.served[0], c.serve) || r.code != 7):
			t.Errorf("%q: served %q (exit %d), want the server with %q and its exit code", c.args, r.served, r.code, c.serve)
		case c.serve == nil && len(r.served) != 0:
			t.Errorf("%q: ran the server with %q, want the client", c.args, r.served)
		}
	}
}

// commandPaths is every command of the tree but the root.
func commandPaths(c *cobra.Command) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if sub.Name() == "help" {
			continue
		}
		out = append(out, strings.Fields(strings.TrimPrefix(sub.CommandPath(), "pushgo ")))
		out = append(out, commandPaths(sub)...)
	}
	return out
}

// TestNoPasswordFlag: no command has a flag that takes a password: a
// password on the command line is an unknown flag (exit 2), sent nowhere.
func TestNoPasswordFlag(t *testing.T) {
	root, _ := newRoot(Env{}, nil)
	paths := commandPaths(root)
	if len(paths) < 14 {
		t.Fatalf("found %d commands: %v", len(paths), paths)
	}
	for _, p := range paths {
		cmd, _, err := root.Find(p)
		if err != nil {
			t.Fatal(err)
		}
		check := func(f *pflag.Flag) {
			if strings.Contains(f.Name, "password") && f.Name != "password-stdin" || strings.Contains(f.Name, "token") {
				t.Errorf("pushgo %s has a flag --%s", strings.Join(p, " "), f.Name)
			}
		}
		cmd.Flags().VisitAll(check)
		cmd.InheritedFlags().VisitAll(check)
		if p[0] == "serve" {
			continue
		}
		r := runMain(t, map[string]string{EnvURL: "http://127.0.0.1:1"}, "", append(slices.Clone(p), "--password", "hunter2-hunter2")...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "unknown flag: --password") {
			t.Errorf("pushgo %s --password: exit %d, stderr %q; want 2, unknown flag", strings.Join(p, " "), r.code, r.stderr)
		}
	}
}

// TestHelpEverywhere: --help at every level exits 0 with the usage, and
// every command's help ends with the exit codes.
func TestHelpEverywhere(t *testing.T) {
	root, _ := newRoot(Env{}, nil)
	for _, p := range append(commandPaths(root), nil) {
		r := runMain(t, nil, "", append(slices.Clone(p), "--help")...)
		if len(p) > 0 && p[0] == "serve" {
			continue // the server's own help
		}
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "Exit codes") {
			t.Errorf("pushgo %s --help: exit %d, stdout %q", strings.Join(p, " "), r.code, r.stdout)
		}
	}
}

// gatewayStub answers the CLI's requests as scripted and records them: it
// stands for the HTTP API only (the e2e tests run the real gateway).
type gatewayStub struct {
	mu       sync.Mutex
	requests []stubRequest
	answer   func(n int, r stubRequest) (status int, header map[string]string, body string)
}

type stubRequest struct {
	Method, Path, Query string
	Header              http.Header
	Body                map[string]any
}

func newStub(t *testing.T, answer func(n int, r stubRequest) (int, map[string]string, string)) (*gatewayStub, *httptest.Server) {
	s := &gatewayStub{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := stubRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()}
		if len(raw) > 0 {
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&req.Body); err != nil {
				t.Errorf("request body is not a JSON object: %v: %s", err, raw)
			}
		}
		s.mu.Lock()
		n := len(s.requests)
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		status, h, body := s.answer(n, req)
		for k, v := range h {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *gatewayStub) got() []stubRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func okAnswer(data string) (int, map[string]string, string) {
	return 200, nil, `{"success":true,"data":` + data + `}`
}

func failAnswer(status int, code, msg string) (int, map[string]string, string) {
	return status, nil, fmt.Sprintf(`{"success":false,"data":null,"error":%q,"error_code":%q,"problem":{"code":%q,"status":%d}}`, msg, code, code, status)
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestFlagsMakeTheBody: the flags of event create become the API's body:
// attrs from --attrs-json with --attr members over it (k=v a string, k:=
// JSON), repeated --tag and --meta, times as now / integers / RFC 3339,
// the credentials from the environment, a generated op_id.
func TestFlagsMakeTheBody(t *testing.T) {
	stub, srv := newStub(t, func(int, stubRequest) (int, map[string]string, string) {
		return okAnswer(`{"channel_id":"CH","op_id":"x","event_id":"0123456789abcdef0123456789abcdef","accepted":true}`)
	})
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	before := time.Now().UnixMilli()
	r := runMain(t, env, "", "event", "create", "--title", "Deploy", "--status", "running", "--message", "started",
		"--severity", "normal", "--attrs-json", `{"a":"from json","b":1,"nested":{"x":true}}`, "--attr", "a=from flag",
		"--attr", "n:=42", "--attr", "gone:=null", "--attr", "url=http://x/?q=a:=b", "--tag", "t1", "--tag", "t2",
		"--meta", "k=v=w", "--started-at", "2026-04-22T10:00:00Z", "--thing", "THING")
	after := time.Now().UnixMilli()
	if r.code != 0 || r.stdout != "0123456789abcdef0123456789abcdef\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	reqs := stub.got()
	if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/event/create" || reqs[0].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("requests %+v", reqs)
	}
	b := reqs[0].Body
	et, _ := b["event_time"].(json.Number).Int64()
	if et < before || et > after {
		t.Errorf("event_time %d, want now (%d..%d)", et, before, after)
	}
	if !hex32.MatchString(fmt.Sprint(b["op_id"])) {
		t.Errorf("op_id %v, want a generated one", b["op_id"])
	}
	delete(b, "event_time")
	delete(b, "op_id")
	got, _ := json.Marshal(b)
	want := `{"attrs":{"a":"from flag","b":1,"gone":null,"n":42,"nested":{"x":true},"url":"http://x/?q=a:=b"},"channel_id":"CHANNEL",` +
		`"message":"started","metadata":{"k":"v=w"},"password":"the-password","severity":"normal","started_at":1776852000000,` +
		`"status":"running","tags":["t1","t2"],"thing_id":"THING","title":"Deploy"}`
	if string(got) != want {
		t.Errorf("body\n %s\nwant\n %s", got, want)
	}
}

// TestWriteRetries: a write answered 503 is sent again, with the same
// op_id and body, and its answer printed; a 4xx is not retried (exit 1,
// the code and message on stderr); 503 to the end is exit 3; a
// Retry-After longer than the CLI waits ends the retries at once.
func TestWriteRetries(t *testing.T) {
	stub, srv := newStub(t, func(n int, r stubRequest) (int, map[string]string, string) {
		if n < 2 {
			return failAnswer(503, "broker_unavailable", "the log is unavailable")
		}
		return okAnswer(`{"channel_id":"CH","op_id":"` + fmt.Sprint(r.Body["op_id"]) + `","message_id":"m1","accepted":true}`)
	})
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	r := runMain(t, env, "", "send", "--title", "hello", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	reqs := stub.got()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (two 503s, then 200)", len(reqs))
	}
	b0, _ := json.Marshal(reqs[0].Body)
	for _, q := range reqs[1:] {
		if b, _ := json.Marshal(q.Body); string(b) != string(b0) {
			t.Errorf("a retry sent %s, the first %s", b, b0)
		}
	}
	if !strings.Contains(r.stdout, `"op_id":"`+fmt.Sprint(reqs[0].Body["op_id"])+`"`) || strings.Count(r.stderr, "retrying") != 2 {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}

	for _, c := range []struct {
		name     string
		answer   func() (int, map[string]string, string)
		code     int
		attempts int
		says     []string
	}{
		{"403", func() (int, map[string]string, string) {
			return failAnswer(403, "password_mismatch", "channel password does not match")
		},
			ExitRefused, 1, []string{"password_mismatch", "HTTP 403", "channel password does not match"}},
		{"409", func() (int, map[string]string, string) { return failAnswer(409, "event_closed", "event is closed") },
			ExitRefused, 1, []string{"event_closed"}},
		{"503 always", func() (int, map[string]string, string) { return failAnswer(503, "broker_unavailable", "down") },
			ExitUnavailable, 2, []string{"broker_unavailable"}},
		{"429 long Retry-After", func() (int, map[string]string, string) {
			s, _, b := failAnswer(429, "rate_limited", "rate limit exceeded")
			return s, map[string]string{"Retry-After": "300"}, b
		}, ExitUnavailable, 1, []string{"rate_limited", "Retry-After: 5m0s"}},
		// A lockout refuses the credentials: exit 1 at once, however short
		// the wait it names, with the wait in the message.
		{"429 too_many_password_failures", func() (int, map[string]string, string) {
			s, _, b := failAnswer(429, "too_many_password_failures", "too many failed password checks")
			return s, map[string]string{"Retry-After": "2"}, b
		}, ExitRefused, 1, []string{"too_many_password_failures", "too many failed password checks", "Retry-After: 2s"}},
		{"500 not JSON", func() (int, map[string]string, string) { return 500, nil, "<html>oops</html>" },
			ExitUnavailable, 1, []string{"HTTP 500", "not a PushGo answer"}},
		{"200 not the envelope", func() (int, map[string]string, string) { return 200, nil, `{"ok":1}` },
			ExitUnavailable, 1, []string{"not a PushGo answer"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stub, srv := newStub(t, func(int, stubRequest) (int, map[string]string, string) { return c.answer() })
			env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
			r := runMain(t, env, "", "send", "--title", "x", "--retries", "1")
			if r.code != c.code || len(stub.got()) != c.attempts || r.stdout != "" {
				t.Fatalf("exit %d after %d attempts (stdout %q, stderr %q), want exit %d after %d", r.code, len(stub.got()), r.stdout, r.stderr, c.code, c.attempts)
			}
			for _, s := range c.says {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q does not say %q", r.stderr, s)
				}
			}
		})
	}
}

// TestChannelCreateNotRetriedBlind: channel create has no op_id, so an
// attempt that may have made the channel is not sent again: one that timed
// out, and one answered 503 (broker_unavailable also answers a create the
// broker stored before the reply timed out); the message says so. A 429
// rate_limited (refused before any handler) is sent again.
func TestChannelCreateNotRetriedBlind(t *testing.T) {
	release := make(chan struct{})
	stub, srv := newStub(t, func(n int, _ stubRequest) (int, map[string]string, string) {
		<-release
		return okAnswer(`{"channel_id":"CH","channel_name":"x","created":true}`)
	})
	defer close(release)
	env := map[string]string{EnvURL: srv.URL, EnvPassword: "the-password"}
	r := runMain(t, env, "", "channel", "create", "--name", "x", "--timeout", "300ms", "--retries", "3")
	if r.code != ExitUnavailable || len(stub.got()) != 1 || !strings.Contains(r.stderr, "no answer in time") ||
		!strings.Contains(r.stderr, "may have created the channel") {
		t.Fatalf("exit %d after %d attempts, stderr %q; want exit 3 after 1, saying the channel may exist", r.code, len(stub.got()), r.stderr)
	}

	stub, srv = newStub(t, func(n int, r stubRequest) (int, map[string]string, string) {
		if n == 0 || n == 1 { // the plain run's only attempt, the --json run's
			return failAnswer(503, "broker_unavailable", "down")
		}
		return okAnswer(`{"channel_id":"CH2","channel_name":"home","created":true}`)
	})
	env[EnvURL] = srv.URL
	r = runMain(t, env, "", "channel", "create", "--name", "home", "--retries", "3")
	if r.code != ExitUnavailable || r.stdout != "" || len(stub.got()) != 1 ||
		!strings.Contains(r.stderr, "broker_unavailable") || !strings.Contains(r.stderr, "may have created the channel") {
		t.Fatalf("after a 503: exit %d, stdout %q, stderr %q, %d attempts; want exit 3 after 1", r.code, r.stdout, r.stderr, len(stub.got()))
	}
	r = runMain(t, env, "", "--json", "channel", "create", "--name", "home", "--retries", "3")
	if r.code != ExitUnavailable || len(stub.got()) != 2 || !strings.Contains(r.stderr, `"error_code":"broker_unavailable"`) || !strings.Contains(r.stderr, "may have created the channel") {
		t.Fatalf("--json after a 503: exit %d, stderr %q", r.code, r.stderr)
	}

	stub, srv = newStub(t, func(n int, r stubRequest) (int, map[string]string, string) {
		if n == 0 {
			return 429, map[string]string{"Retry-After": "0"}, `{"success":false,"data":null,"error":"rate limit exceeded","error_code":"rate_limited"}`
		}
		if r.Body["channel_name"] != "home" || r.Body["password"] != "the-password" || len(r.Body) != 2 {
			return failAnswer(400, "invalid_json_data", fmt.Sprint(r.Body))
		}
		return okAnswer(`{"channel_id":"CH","channel_name":"home","created":true}`)
	})
	env[EnvURL] = srv.URL
	r = runMain(t, env, "", "channel", "create", "--name", "home")
	if r.code != 0 || r.stdout != "CH\n" || len(stub.got()) != 2 {
		t.Fatalf("after a 429 rate_limited: exit %d, stdout %q, stderr %q, %d attempts; want 0 after 2", r.code, r.stdout, r.stderr, len(stub.got()))
	}
}

// TestBadServerRedacted: a --server or PUSHGO_URL that is refused is
// reported without the credentials it holds: a password, or a user part
// alone (a token written as https://TOKEN@host).
func TestBadServerRedacted(t *testing.T) {
	for _, server := range []string{"ftp://user:s3cr3t-pw@h", "http://user:s3cr3t-pw@h", "http://user:s3cr3t-pw@h:bad port", "user:s3cr3t-pw@/nohost", "http://user:s3cr3t-pw@%zz",
		"https://s3cr3t-pw@h", "ftp://s3cr3t-pw@h"} {
		for _, asJSON := range []bool{false, true} {
			args := []string{"send", "--title", "x", "--server", server}
			if asJSON {
				args = append(args, "--json")
			}
			r := runMain(t, map[string]string{EnvChannelID: "CHANNEL", EnvPassword: "the-password"}, "", args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "server") || strings.Contains(r.stderr+r.stdout, "s3cr3t-pw") {
				t.Errorf("--server %q: exit %d, stderr %q; want 2 without the password", server, r.code, r.stderr)
			}
		}
	}
}

// TestUsageErrors: bad flags and arguments are exit 2 with nothing sent.
func TestUsageErrors(t *testing.T) {
	stub, srv := newStub(t, func(int, stubRequest) (int, map[string]string, string) { return okAnswer(`{}`) })
	env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	for _, args := range [][]string{
		{"bogus"},
		{"event", "bogus"},
		{"thing", "get", "x"},
		{"send"},
		{"send", "--title", "x", "--nope"},
		{"send", "--title", "x", "--op-id", "has space"},
		{"send", "--title", "x", "--ttl", "tomorrow"},
		{"send", "--title", "x", "--meta", "novalue"},
		{"send", "--title", "x", "--body", "b", "--body-file", "-"},
		{"send", "--title", "x", "--body-file", "-", "--password-stdin"},
		{"event", "create", "--title", "x", "--status", "s", "--message", "m"},
		{"event", "update", "--status", "s", "--message", "m", "--severity", "low"},
		{"event", "close", "a", "b", "--status", "s", "--message", "m", "--severity", "low"},
		{"thing", "create", "--attr", "noequals"},
		{"thing", "create", "--attr", "k:={bad"},
		{"thing", "create", "--attrs-json", "[1]"},
		{"thing", "update"},
		{"status"},
		{"status", "bad op id"},
		{"tail", "--count", "-1"},
		{"channel", "create"},
		{"send", "--title", "x", "--server", "ftp://h"},
		{"send", "--title", "x", "--server", "http://user:pw@h"},
		{"send", "--title", "x", "--timeout", "0s"},
	} {
		r := runMain(t, env, "pw\n", args...)
		if r.code != ExitUsage {
			t.Errorf("%q: exit %d (stderr %q), want 2", args, r.code, r.stderr)
		}
	}
	if n := len(stub.got()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
}

// TestParseTime: now, integers as they are, RFC 3339 in milliseconds.
func TestParseTime(t *testing.T) {
	now := func() time.Time { return time.UnixMilli(1776852000123) }
	for in, want := range map[string]any{
		"now": int64(1776852000123), "1776852000": int64(1776852000), "1776852000000": int64(1776852000000),
		"2026-04-22T10:00:00Z": int64(1776852000000), "2026-04-22T12:00:00.5+02:00": int64(1776852000500),
	} {
		got, err := parseTime(in, now)
		if err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5", "yesterday", "2026-04-22", "1.5"} {
		if _, err := parseTime(in, now); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

// TestInterruptedWrite: SIGINT (the context ending) while a write waits
// for its answer is exit 130, saying the write may have been applied and
// naming the op_id sent (generated: the user could not repeat it
// otherwise). A channel create, which has no op_id, says what to do
// instead and names no --op-id.
func TestInterruptedWrite(t *testing.T) {
	for _, c := range []struct {
		args     []string
		want     string
		withOpID bool
	}{
		{[]string{"send", "--title", "x"}, "the write may have been applied; repeat it with --op-id ", true},
		{[]string{"event", "create", "--title", "x", "--status", "Deploying", "--message", "m", "--severity", "info"}, "the write may have been applied; repeat it with --op-id ", true},
		{[]string{"channel", "create", "--name", "x"}, "the gateway may have created the channel", false},
		{[]string{"token", "revoke", "q3vbx7m2k4n5p6r7s2t3u4v5"}, "the gateway may have revoked the token", false},
	} {
		arrived, release := make(chan struct{}), make(chan struct{})
		stub, srv := newStub(t, func(int, stubRequest) (int, map[string]string, string) {
			close(arrived)
			<-release
			return okAnswer(`{}`)
		})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		var out, errOut bytes.Buffer
		env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
		code := Main(ctx, c.args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: envOf(env)}, nil)
		close(release)
		stderr := errOut.String()
		if code != ExitInterrupted || !strings.Contains(stderr, "interrupted; "+c.want) || out.Len() != 0 {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want 130 and %q", c.args, code, out.String(), stderr, c.want)
		}
		if c.withOpID {
			stub.mu.Lock()
			sent, _ := stub.requests[0].Body["op_id"].(string)
			stub.mu.Unlock()
			if sent == "" || !strings.Contains(stderr, "--op-id "+sent+" ") {
				t.Errorf("%v: stderr %q does not name the op_id sent, %q", c.args, stderr, sent)
			}
		} else if strings.Contains(stderr, "--op-id") {
			t.Errorf("%v: stderr %q names --op-id, which the command does not take", c.args, stderr)
		}
	}
}

// TestUnavailableWriteNamesItsOpID: a write whose answer is a 503 after
// its retries may have been stored (the publish timed out after the
// broker stored it); the error names the generated op_id to repeat it
// with, in text and in --json.
func TestUnavailableWriteNamesItsOpID(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		stub, srv := newStub(t, func(int, stubRequest) (int, map[string]string, string) {
			return http.StatusServiceUnavailable, nil, `{"success":false,"error":"the broker did not answer","error_code":"broker_unavailable"}`
		})
		args := []string{"send", "--title", "x", "--retries", "0"}
		if asJSON {
			args = append(args, "--json")
		}
		var out, errOut bytes.Buffer
		env := map[string]string{EnvURL: srv.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
		code := Main(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: envOf(env)}, nil)
		stub.mu.Lock()
		sent, _ := stub.requests[0].Body["op_id"].(string)
		stub.mu.Unlock()
		if code != ExitUnavailable || sent == "" || !strings.Contains(errOut.String(), "repeat it with --op-id "+sent+" ") {
			t.Errorf("json %v: exit %d, stderr %q; want 3 naming the op_id sent, %q", asJSON, code, errOut.String(), sent)
		}
	}
}

// TestInterruptedStdinRead: SIGINT while the command reads standard
// input (--password-stdin from a terminal, or a pipe kept open) ends it
// with 130: the read ignored the signal, and only Ctrl-D or a kill ended it.
func TestInterruptedStdinRead(t *testing.T) {
	for _, args := range [][]string{{"send", "--title", "x", "--password-stdin"}, {"send", "--title", "x", "--body-file", "-"}} {
		pr, pw := io.Pipe() // its writer never writes nor closes
		defer pw.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut bytes.Buffer
		env := map[string]string{EnvURL: "http://127.0.0.1:1", EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
		code := make(chan int, 1)
		stdin := &readStarted{r: pr, started: make(chan struct{})}
		go func() {
			code <- Main(ctx, args, Env{Stdin: stdin, Stdout: &out, Stderr: &errOut, Getenv: envOf(env)}, nil)
		}()
		<-stdin.started // the interrupt comes while the read is under way, not before it
		cancel()
		select {
		case c := <-code:
			if c != ExitInterrupted {
				t.Errorf("%v: exit %d, stderr %q; want 130", args, c, errOut.String())
			}
			if strings.Contains(errOut.String(), "applied") {
				t.Errorf("%v: stderr %q speaks of a write, interrupted before anything was sent", args, errOut.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: still reading standard input 10 s after the interrupt", args)
		}
	}
}

// readStarted is r that closes started when its first Read begins.
type readStarted struct {
	r       io.Reader
	once    sync.Once
	started chan struct{}
}

func (s *readStarted) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	return s.r.Read(p)
}

// TestRedirectNotFollowed: a gateway URL that answers a redirect (307,
// which would resend the body, or 301) is not followed by any command,
// tail included: the password never reaches the other server, and the
// command exits 1 naming where to point PUSHGO_URL.
func TestRedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var reached []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		reached = append(reached, fmt.Sprintf("%s %s header %q body %s", r.Method, r.URL, r.Header.Get("X-PushGo-Password"), raw))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":true,"data":{"channel_id":"CH","message_id":"m"}}`)
	}))
	t.Cleanup(elsewhere.Close)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusMovedPermanently} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/base"+r.URL.Path, status)
		}))
		t.Cleanup(redirector.Close)
		env := map[string]string{EnvURL: redirector.URL, EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
		for _, args := range [][]string{
			{"send", "--title", "x"},
			{"channel", "create", "--name", "home"},
			{"token", "list"},
			{"tail", "--max-outage", "10s"},
		} {
			r := runMain(t, env, "", args...)
			want := "redirected to " + elsewhere.URL + "/base: set PUSHGO_URL"
			if r.code != ExitRefused || !strings.Contains(r.stderr, want) {
				t.Errorf("%d: pushgo %s: exit %d, stderr %q; want exit 1 saying %q", status, strings.Join(args, " "), r.code, r.stderr, want)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reached) != 0 {
		t.Errorf("the redirect was followed, the password sent elsewhere: %q", reached)
	}
}

// TestInterruptAfterRefusedConnectionsSaysNothingWasSent: interrupted in
// a retry's back-off after only refused connections, a write was not
// applied, and the message says so instead of "may have been applied".
func TestInterruptAfterRefusedConnectionsSaysNothingWasSent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	errOut := &signalWriter{seen: "retrying in", hit: cancel}
	env := map[string]string{EnvURL: "http://127.0.0.1:1", EnvChannelID: "CHANNEL", EnvPassword: "the-password"}
	code := Main(ctx, []string{"send", "--title", "x", "--retries", "3"}, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: errOut, Getenv: envOf(env)}, nil)
	stderr := errOut.String()
	if code != ExitInterrupted || !strings.Contains(stderr, "nothing was sent") || strings.Contains(stderr, "may have been applied") {
		t.Fatalf("exit %d, stderr %q: want 130 saying nothing was sent", code, stderr)
	}
}

// signalWriter is a buffer that calls hit once what was written holds
// seen (the retry's warning: the command is in its back-off).
type signalWriter struct {
	bytes.Buffer
	seen string
	hit  func()
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.Buffer.String(), w.seen) {
		w.once.Do(w.hit)
	}
	return n, err
}

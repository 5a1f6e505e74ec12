package e2e

// The pushgo command line client (issue 15, part 3), driven as a script
// drives it: the built binary run with exec against running gateways, its
// stdout, stderr and exit code read back, and what it wrote checked
// through the HTTP API.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// cliResult is one finished run of the CLI.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("pushgo %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cliEnv is the environment of a CLI run: the test's without any PUSHGO_
// variable, plus env.
func cliEnv(env ...string) []string {
	out := make([]string, 0, len(os.Environ())+len(env))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHGO_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// runCLI runs pushgo with args, env (KEY=VALUE) and stdin, and waits for
// it to end (bounded: a CLI command that hangs fails the test).
func runCLI(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pushgoBin, args...)
	cmd.Env = cliEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("pushgo %s: %v (stderr: %s)", strings.Join(args, " "), err, stderr.String())
	}
	return r
}

// mustCLI runs the CLI and requires exit code 0.
func mustCLI(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	return r
}

// wantExit requires exit code code and a stderr containing each of
// stderrHas.
func wantExit(t *testing.T, r cliResult, code int, stderrHas ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("want exit %d: %s", code, r)
		return
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not say %q: %s", s, r)
		}
	}
}

// jsonLine decodes stdout (one JSON object and a newline) of a --json run.
func jsonLine(t *testing.T, r cliResult) map[string]any {
	t.Helper()
	if !strings.HasSuffix(r.stdout, "\n") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("--json output is not one line: %s", r)
	}
	m, err := decodeObject([]byte(r.stdout))
	if err != nil {
		t.Fatalf("--json output is not a JSON object: %v: %s", err, r)
	}
	return m
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// readBack reads an entity's snapshot through the API.
func readBack(t *testing.T, g *gateway, ch chanCred, route, idKey, id string) map[string]any {
	t.Helper()
	r := g.Post(t, route, mustJSON(t, map[string]string{"channel_id": ch.ID, "password": ch.Password, idKey: id}))
	if r.Status != 200 {
		t.Fatalf("%s: %s", route, r)
	}
	return r.Envelope.Data
}

// historyLen is the number of operations in the channel's history.
func historyLen(t *testing.T, g *gateway, ch chanCred) int {
	t.Helper()
	n := 0
	for _, c := range historyOpIDs(t, g, ch) {
		n += c
	}
	return n
}

// TestCLICommands drives every command of the client against one gateway:
// channel create (password on stdin, --save), send, event
// create/update/close, thing create/update/archive/delete, status, the
// --json output of each, idempotent retries by --op-id, the refusals
// (wrong password, unknown channel, closed event, deleted thing), missing
// and unsafe credentials, an unreachable gateway, and --help at every
// level.
func TestCLICommands(t *testing.T) {
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	// The CLI talks to the gateway through a validating proxy, so its
	// requests and the answers it parses are checked against the OpenAPI
	// document like the suite's own clients'.
	server := "PUSHGO_URL=" + apiValidatingProxy(t, g.base)
	const password = "correct-horse-cli"

	t.Run("help", func(t *testing.T) {
		r := mustCLI(t, nil, "", "--help")
		for _, s := range []string{"channel", "send", "event", "thing", "tail", "status", "serve",
			"PUSHGO_CHANNEL_ID", "PUSHGO_CHANNEL_PASSWORD", "PUSHGO_TOKEN", "PUSHGO_URL", "Exit codes:", "--password-stdin", "--json"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("pushgo --help does not mention %q:\n%s", s, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "--password ") {
			t.Errorf("pushgo --help lists a --password flag:\n%s", r.stdout)
		}
		for _, path := range [][]string{{"channel"}, {"channel", "create"}, {"send"}, {"event"}, {"event", "create"},
			{"event", "update"}, {"event", "close"}, {"thing"}, {"thing", "create"}, {"thing", "update"},
			{"thing", "archive"}, {"thing", "delete"}, {"tail"}, {"status"}, {"token"}, {"token", "list"}, {"token", "create"}, {"token", "revoke"}} {
			r := mustCLI(t, nil, "", append(path, "--help")...)
			if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "pushgo "+strings.Join(path, " ")) {
				t.Errorf("pushgo %s --help: no usage:\n%s", strings.Join(path, " "), r.stdout)
			}
			if len(path) > 1 || path[0] == "send" || path[0] == "tail" || path[0] == "status" {
				if !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "Examples:") {
					t.Errorf("pushgo %s --help: no exit codes or examples:\n%s", strings.Join(path, " "), r.stdout)
				}
			}
		}
		// The server's own flags, through serve.
		r = mustCLI(t, nil, "", "serve", "-h")
		if !strings.Contains(r.stderr, "-target") || !strings.Contains(r.stderr, "PUSHGO_DATA_DIR") {
			t.Errorf("pushgo serve -h does not list the server's flags: %s", r)
		}
	})

	// channel create: the password on stdin; the id on stdout.
	r := mustCLI(t, []string{server}, password+"\n", "channel", "create", "--name", "cli-home", "--password-stdin")
	chID := strings.TrimSpace(r.stdout)
	if !channelID.MatchString(chID) || r.stdout != chID+"\n" {
		t.Fatalf("channel create printed %q, want one channel id line", r.stdout)
	}
	ch := chanCred{ID: chID, Password: password}
	if got := g.Get(t, "/channel/exists?channel_id="+chID, nil); got.Envelope.Data["exists"] != true || got.Envelope.Data["channel_name"] != "cli-home" {
		t.Fatalf("the created channel is not there: %s", got)
	}
	creds := []string{server, "PUSHGO_CHANNEL_ID=" + chID, "PUSHGO_CHANNEL_PASSWORD=" + password}

	t.Run("channel create --json and --save", func(t *testing.T) {
		saved := filepath.Join(t.TempDir(), "other.env")
		r := mustCLI(t, []string{server, "PUSHGO_CHANNEL_PASSWORD=other-password"}, "", "channel", "create", "--name", "other", "--json", "--save", saved)
		data := jsonLine(t, r)
		if got := sortedKeys(data); !slices.Equal(got, []string{"channel_id", "channel_name", "created"}) || data["created"] != true || data["channel_name"] != "other" {
			t.Fatalf("channel create --json: %v", data)
		}
		fi, err := os.Stat(saved)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("--save file: %v, mode %v; want mode 0600", err, fi.Mode())
		}
		// The saved file alone is enough for the next command.
		r = mustCLI(t, nil, "", "send", "--credentials", saved, "--title", "via the saved file")
		if !hex32.MatchString(strings.TrimSpace(r.stdout)) {
			t.Fatalf("send with --credentials printed %q, want a message id", r.stdout)
		}
		wantExit(t, runCLI(t, []string{server, "PUSHGO_CHANNEL_PASSWORD=other-password"}, "", "channel", "create", "--name", "again", "--save", saved),
			2, "exists")
	})

	t.Run("send", func(t *testing.T) {
		r := mustCLI(t, creds, "", "send", "--title", "Disk 2 failed", "--body", "bay 2", "--severity", "high",
			"--url", "https://nas.local", "--tag", "nas", "--tag", "disk", "--meta", "rack=r1", "--op-id", "cli-send-1", "--json")
		data := jsonLine(t, r)
		if got := sortedKeys(data); !slices.Equal(got, []string{"accepted", "channel_id", "message_id", "op_id"}) ||
			data["op_id"] != "cli-send-1" || data["channel_id"] != chID || !hex32.MatchString(fmt.Sprint(data["message_id"])) {
			t.Fatalf("send --json: %v", data)
		}
		// The same --op-id again: the same message, nothing appended.
		again := jsonLine(t, mustCLI(t, creds, "", "send", "--title", "Disk 2 failed", "--body", "bay 2", "--severity", "high",
			"--url", "https://nas.local", "--tag", "nas", "--tag", "disk", "--meta", "rack=r1", "--op-id", "cli-send-1", "--json"))
		if again["message_id"] != data["message_id"] {
			t.Fatalf("a retried send made message %v, the first %v", again["message_id"], data["message_id"])
		}
		if n := historyOpIDs(t, g, ch)["cli-send-1"]; n != 1 {
			t.Fatalf("op_id cli-send-1 is %d times in the history, want 1", n)
		}
		// The message's fields as the API stored them.
		h := g.Post(t, "/channel/history", mustJSON(t, map[string]any{"channel_id": chID, "password": password, "kinds": []string{"message"}}))
		items, _ := h.Envelope.Data["items"].([]any)
		if len(items) != 1 {
			t.Fatalf("history of messages: %s", h)
		}
		p := items[0].(map[string]any)["payload"].(map[string]any)
		if p["title"] != "Disk 2 failed" || p["body"] != "bay 2" || p["severity"] != "high" || p["url"] != "https://nas.local" ||
			fmt.Sprint(p["tags"]) != "[nas disk]" || fmt.Sprint(p["metadata"]) != "map[rack:r1]" {
			t.Fatalf("the message as stored: %v", p)
		}
		// Human output: the message id alone; the body from stdin.
		r = mustCLI(t, creds, "line one\nline two\n", "send", "--title", "from stdin", "--body-file", "-")
		if !hex32.MatchString(strings.TrimSpace(r.stdout)) || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("send printed %q, want the message id", r.stdout)
		}
	})

	var evID string
	t.Run("event create update close", func(t *testing.T) {
		r := mustCLI(t, creds, "", "event", "create", "--title", "Production deployment", "--status", "running",
			"--message", "Deployment started", "--severity", "normal", "--attr", "service=api", "--attr", "progress:=0",
			"--attrs-json", `{"revision":"8f3c2a1","region":"eu"}`, "--event-time", "2026-04-22T10:00:00Z")
		evID = strings.TrimSpace(r.stdout)
		if !hex32.MatchString(evID) {
			t.Fatalf("event create printed %q, want an event id", r.stdout)
		}
		data := jsonLine(t, mustCLI(t, creds, "", "event", "update", evID, "--status", "publishing", "--message", "Image pushed",
			"--severity", "high", "--attr", "progress:=0.75", "--attr", "region:=null", "--json"))
		if data["event_id"] != evID || data["accepted"] != true || !hex32.MatchString(fmt.Sprint(data["op_id"])) {
			t.Fatalf("event update --json: %v", data)
		}
		r = mustCLI(t, creds, "", "event", "close", evID, "--status", "success", "--message", "Deployment completed", "--severity", "normal", "--attr", "progress:=1")
		if strings.TrimSpace(r.stdout) != evID {
			t.Fatalf("event close printed %q, want %s", r.stdout, evID)
		}
		snap := readBack(t, g, ch, "/event/get", "event_id", evID)
		attrs, _ := snap["attrs"].(map[string]any)
		if snap["state"] != "CLOSED" || snap["status"] != "success" || snap["title"] != "Production deployment" ||
			fmt.Sprint(attrs) != "map[progress:1 revision:8f3c2a1 service:api]" || snap["started_at"] != float64(1776852000000) {
			t.Fatalf("the event as folded: %v", snap)
		}
		// A closed event refuses another close: exit 1, the code on stderr.
		wantExit(t, runCLI(t, creds, "", "event", "close", evID, "--status", "x", "--message", "again", "--severity", "low"),
			1, "event_closed")
		// A required flag missing is a usage error, before any request.
		wantExit(t, runCLI(t, creds, "", "event", "update", evID, "--status", "x", "--message", "y"), 2, "--severity")
		wantExit(t, runCLI(t, creds, "", "event", "update", "--status", "x", "--message", "y", "--severity", "low"), 2, "EVENT_ID")
	})

	t.Run("thing create update archive delete", func(t *testing.T) {
		r := mustCLI(t, creds, "", "thing", "create", "--title", "Home NAS", "--location-type", "physical",
			"--location-value", "home/living-room", "--attr", "online:=true", "--attr", "disk_used:=0.72", "--tag", "nas",
			"--external-id", "serial=ABC123")
		thID := strings.TrimSpace(r.stdout)
		if !hex32.MatchString(thID) {
			t.Fatalf("thing create printed %q, want a thing id", r.stdout)
		}
		mustCLI(t, creds, "", "thing", "update", thID, "--attrs-json", `{"disks":{"1":"ok","2":"failed"}}`, "--attr", "temperature:=43.2")
		if s := readBack(t, g, ch, "/thing/get", "thing_id", thID); s["state"] != "active" ||
			fmt.Sprint(s["attrs"]) != "map[disk_used:0.72 disks:map[1:ok 2:failed] online:true temperature:43.2]" {
			t.Fatalf("the thing after update: %v", s)
		}
		data := jsonLine(t, mustCLI(t, creds, "", "thing", "archive", thID, "--json"))
		if data["thing_id"] != thID || data["accepted"] != true {
			t.Fatalf("thing archive --json: %v", data)
		}
		if s := readBack(t, g, ch, "/thing/get", "thing_id", thID); s["state"] != "archived" {
			t.Fatalf("the thing after archive: %v", s)
		}
		first := jsonLine(t, mustCLI(t, creds, "", "thing", "delete", thID, "--op-id", "cli-thing-delete", "--observed-at", "1776852000000", "--json"))
		if s := readBack(t, g, ch, "/thing/get", "thing_id", thID); s["state"] != "deleted" {
			t.Fatalf("the thing after delete: %v", s)
		}
		// Repeating the delete (the same op_id and body) answers as the
		// first time; without the first call's time the body differs, and
		// the refusal says which flag to repeat.
		if again := jsonLine(t, mustCLI(t, creds, "", "thing", "delete", thID, "--op-id", "cli-thing-delete", "--observed-at", "1776852000000", "--json")); fmt.Sprint(again) != fmt.Sprint(first) {
			t.Fatalf("the repeated delete answered %v, the first %v", again, first)
		}
		wantExit(t, runCLI(t, creds, "", "thing", "delete", thID, "--op-id", "cli-thing-delete"), 1, "op_id_conflict", "--observed-at")
		// A new operation on the deleted thing is refused.
		wantExit(t, runCLI(t, creds, "", "thing", "update", thID, "--attr", "x=1"), 1, "thing_deleted")
	})

	t.Run("status", func(t *testing.T) {
		data := jsonLine(t, mustCLI(t, creds, "", "status", "cli-send-1", "--json"))
		if data["op_id"] != "cli-send-1" || data["entity_type"] != "message" || !slices.Contains(
			[]string{"accepted", "processing", "sent", "partially_failed", "failed"}, fmt.Sprint(data["status"])) {
			t.Fatalf("status --json: %v", data)
		}
		r := mustCLI(t, creds, "", "status", "cli-send-1")
		if !strings.HasPrefix(r.stdout, "cli-send-1\t") || !strings.Contains(r.stdout, "message") {
			t.Fatalf("status printed %q", r.stdout)
		}
		// Without a channel the op_id is looked up in every channel.
		mustCLI(t, []string{server}, "", "status", "cli-send-1")
		wantExit(t, runCLI(t, creds, "", "status", "no-such-op"), 1, "send_status_not_found")
	})

	t.Run("token create list revoke", func(t *testing.T) {
		tok := strings.TrimSpace(mustCLI(t, creds, "", "token", "create", "--name", "cli alertmanager").stdout)
		if !regexp.MustCompile(`^pgo1\.[a-z2-7]{24}\.[0-9a-f]{64}$`).MatchString(tok) {
			t.Fatalf("token create printed %q, want the token alone", tok)
		}
		id := strings.Split(tok, ".")[1]
		data := jsonLine(t, mustCLI(t, creds, "", "token", "create", "--name", "cli reader", "--scope", "events.read", "--json"))
		if data["name"] != "cli reader" || fmt.Sprint(data["scopes"]) != "[events.read]" {
			t.Fatalf("token create --json: %v", data)
		}
		// The token works on an integration route.
		pd := func() int {
			return g.Post(t, "/v2/enqueue", mustJSON(t, map[string]any{"routing_key": tok, "event_action": "trigger",
				"payload": map[string]any{"summary": "CLI token check", "source": "e2e", "severity": "info"}})).Status
		}
		if st := pd(); st != http.StatusAccepted {
			t.Fatalf("the token the CLI printed: PagerDuty enqueue answered %d", st)
		}
		lines := strings.Split(strings.TrimSuffix(mustCLI(t, creds, "", "token", "list").stdout, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], id+"\tcli alertmanager\tevents.ingest\t") || !strings.Contains(lines[1], "\tcli reader\tevents.read\t") {
			t.Fatalf("token list printed %q", lines)
		}
		if strings.Contains(strings.Join(lines, "\n"), tok[len(tok)-64:]) {
			t.Fatal("token list shows a secret")
		}
		if r := mustCLI(t, creds, "", "token", "revoke", id); r.stdout != id+"\n" {
			t.Fatalf("token revoke printed %q", r.stdout)
		}
		if st := pd(); st == http.StatusAccepted {
			t.Fatal("the token still works after token revoke")
		}
		list := jsonLine(t, mustCLI(t, creds, "", "token", "list", "--json"))
		if toks, _ := list["tokens"].([]any); len(toks) != 1 || list["truncated"] != false {
			t.Fatalf("token list --json after the revoke: %v", list)
		}
		wantExit(t, runCLI(t, creds, "", "token", "revoke", id), 1, "token_not_found")
		bad := []string{server, "PUSHGO_CHANNEL_ID=" + chID, "PUSHGO_CHANNEL_PASSWORD=not-the-password"}
		wantExit(t, runCLI(t, bad, "", "token", "list"), 1, "password_mismatch", "HTTP 403")
		wantExit(t, runCLI(t, creds, "", "token", "create"), 2, "--name")
	})

	t.Run("bad credentials", func(t *testing.T) {
		before := historyLen(t, g, ch)
		bad := []string{server, "PUSHGO_CHANNEL_ID=" + chID, "PUSHGO_CHANNEL_PASSWORD=not-the-password"}
		wantExit(t, runCLI(t, bad, "", "send", "--title", "x"), 1, "password_mismatch", "HTTP 403")
		r := runCLI(t, bad, "", "event", "create", "--title", "x", "--status", "s", "--message", "m", "--severity", "low", "--json")
		wantExit(t, r, 1)
		var e map[string]any
		if err := json.Unmarshal([]byte(r.stderr), &e); err != nil || e["error_code"] != "password_mismatch" || e["status"] != float64(403) || e["exit_code"] != float64(1) || r.stdout != "" {
			t.Errorf("--json error: stderr is not the JSON error object (%v): %s", err, r)
		}
		wantExit(t, runCLI(t, bad, "", "tail"), 1, "password_mismatch")
		unknown := []string{server, "PUSHGO_CHANNEL_ID=" + "0000000000000000000000000Z", "PUSHGO_CHANNEL_PASSWORD=" + password}
		wantExit(t, runCLI(t, unknown, "", "thing", "create", "--title", "x"), 1, "channel_not_found")
		if after := historyLen(t, g, ch); after != before {
			t.Fatalf("refused commands appended %d operations", after-before)
		}
	})

	t.Run("missing or unsafe credentials", func(t *testing.T) {
		wantExit(t, runCLI(t, []string{server, "PUSHGO_CHANNEL_ID=" + chID}, "", "send", "--title", "x"), 2, "PUSHGO_CHANNEL_PASSWORD", "--password-stdin")
		wantExit(t, runCLI(t, []string{server, "PUSHGO_CHANNEL_PASSWORD=" + password}, "", "send", "--title", "x"), 2, "PUSHGO_CHANNEL_ID")
		wantExit(t, runCLI(t, []string{server}, "", "channel", "create", "--name", "x"), 2, "PUSHGO_CHANNEL_PASSWORD")
		// There is no --password flag.
		wantExit(t, runCLI(t, creds, "", "send", "--title", "x", "--password", password), 2, "unknown flag: --password")
		wantExit(t, runCLI(t, []string{server}, "", "channel", "create", "--name", "x", "--password="+password), 2, "unknown flag: --password")
		// A credentials file others can read is refused, as ssh refuses a key.
		file := filepath.Join(t.TempDir(), "creds.env")
		content := "# test\nPUSHGO_CHANNEL_ID=" + chID + "\nexport PUSHGO_CHANNEL_PASSWORD='" + password + "'\n"
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, 0o644); err != nil {
			t.Fatal(err)
		}
		wantExit(t, runCLI(t, []string{server}, "", "send", "--title", "x", "--credentials", file), 2, "chmod 600")
		if err := os.Chmod(file, 0o600); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, []string{server}, "", "send", "--title", "from a file", "--credentials", file)
		mustCLI(t, []string{server, "PUSHGO_CREDENTIALS=" + file}, "", "send", "--title", "from PUSHGO_CREDENTIALS")
		// The password on stdin beats the environment's.
		wantExit(t, runCLI(t, creds, "wrong-password\n", "send", "--title", "x", "--password-stdin"), 1, "password_mismatch")
	})

	t.Run("usage errors", func(t *testing.T) {
		wantExit(t, runCLI(t, creds, "", "bogus"), 2, "unknown command")
		wantExit(t, runCLI(t, creds, "", "send", "--title", "x", "--event-time", "now"), 2, "unknown flag")
		wantExit(t, runCLI(t, creds, "", "send", "--title", "x", "--occurred-at", "yesterday"), 2, "--occurred-at")
		wantExit(t, runCLI(t, creds, "", "thing", "create", "--attr", "novalue"), 2, "--attr")
		wantExit(t, runCLI(t, creds, "", "send", "--title", "x", "--op-id", "bad op id"), 2, "--op-id")
		// A validation error of the gateway is a refusal, naming the field.
		wantExit(t, runCLI(t, creds, "", "event", "create", "--title", "x", "--status", "s", "--message", "m", "--severity", "urgent"), 1, "invalid_severity")
	})

	t.Run("gateway unavailable", func(t *testing.T) {
		down := fmt.Sprintf("PUSHGO_URL=http://127.0.0.1:%d", freePort(t))
		env := []string{down, "PUSHGO_CHANNEL_ID=" + chID, "PUSHGO_CHANNEL_PASSWORD=" + password}
		wantExit(t, runCLI(t, env, "", "send", "--title", "x", "--retries", "1"), 3, "gateway unavailable", "retrying")
		wantExit(t, runCLI(t, env, "", "status", "cli-send-1", "--retries", "0"), 3, "gateway unavailable")
		wantExit(t, runCLI(t, env, "", "tail", "--max-outage", "1s"), 3, "unreachable")
	})
}

// TestCLIServe: "pushgo serve" and "pushgo" with only the server's flags
// still run the gateway (the other tests start it with no arguments), and
// the client talks to a private gateway with PUSHGO_TOKEN.
func TestCLIServe(t *testing.T) {
	const token = "cli-private-token-0123456789"
	g := startGateway(t, gwConfig{DataDir: t.TempDir(), Token: token, Args: []string{"serve", "-log-level", "info"}})
	ch := createChannel(t, g, "served", "served-password")
	env := []string{"PUSHGO_URL=" + apiValidatingProxy(t, g.base), "PUSHGO_CHANNEL_ID=" + ch, "PUSHGO_CHANNEL_PASSWORD=served-password"}
	wantExit(t, runCLI(t, env, "", "send", "--title", "no token"), 1, "authentication_failed", "HTTP 401")
	r := mustCLI(t, append(env, "PUSHGO_TOKEN="+token), "", "send", "--title", "with the token")
	if !hex32.MatchString(strings.TrimSpace(r.stdout)) {
		t.Fatalf("send printed %q", r.stdout)
	}
	// The token from a credentials file, too.
	file := filepath.Join(t.TempDir(), "private.env")
	if err := os.WriteFile(file, []byte("PUSHGO_TOKEN="+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, env, "", "send", "--title", "token from the file", "--credentials", file)

	// The server's flags alone, as before the client existed.
	g2 := startGateway(t, gwConfig{DataDir: t.TempDir(), Args: []string{"-log-level", "info"}})
	mustCLI(t, []string{"PUSHGO_URL=" + apiValidatingProxy(t, g2.base)}, "long-enough-password\n", "channel", "create", "--name", "flags-only", "--password-stdin")
}

// lineReader collects a running process's stdout line by line.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every new line
	done  chan struct{} // closed at EOF
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{more: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			close(lr.more)
			lr.more = make(chan struct{})
			lr.mu.Unlock()
		}
	}()
	return lr
}

// waitFor waits until the output has n lines and returns them.
func (lr *lineReader) waitFor(t *testing.T, n int, bound time.Duration, what func() string) []string {
	t.Helper()
	deadline := time.After(bound)
	for {
		lr.mu.Lock()
		lines, more := slices.Clone(lr.lines), lr.more
		lr.mu.Unlock()
		if len(lines) >= n {
			return lines
		}
		select {
		case <-more:
		case <-lr.done:
			t.Fatalf("output ended after %d of %d lines: %v\n%s", len(lines), n, lines, what())
		case <-deadline:
			t.Fatalf("%d of %d lines within %s: %v\n%s", len(lines), n, bound, lines, what())
		}
	}
}

// tailItem is one line of pushgo tail --json.
type tailItem struct {
	Seq        uint64         `json:"seq"`
	OpID       string         `json:"op_id"`
	Op         string         `json:"op"`
	EntityType string         `json:"entity_type"`
	ChannelID  string         `json:"channel_id"`
	Payload    map[string]any `json:"payload"`
}

func parseTail(t *testing.T, lines []string) []tailItem {
	t.Helper()
	out := make([]tailItem, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
			t.Fatalf("tail --json line %d is not a JSON object: %v: %s", i, err, l)
		}
	}
	return out
}

// wantTail requires items to be exactly the operations opIDs, in that
// order, each once, with increasing sequence numbers.
func wantTail(t *testing.T, items []tailItem, opIDs []string) {
	t.Helper()
	got := make([]string, len(items))
	for i, it := range items {
		got[i] = it.OpID
		if i > 0 && it.Seq <= items[i-1].Seq {
			t.Errorf("line %d: seq %d after %d", i, it.Seq, items[i-1].Seq)
		}
	}
	if !slices.Equal(got, opIDs) {
		t.Fatalf("tail printed op_ids\n  %v\nwant (each once, in order)\n  %v", got, opIDs)
	}
}

// TestCLITailResumes: pushgo tail prints a channel's operations as they
// are appended, goes on across a gateway restarted (SIGKILL, then started
// again on the same data directory and address) with no gap and no
// duplicate, operations appended while it could not connect included, and
// a later invocation resumes from its --state file or from --after.
func TestCLITailResumes(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, gwConfig{DataDir: dir})
	httpAddr := strings.TrimPrefix(g.base, "http://")
	natsURL, err := url.Parse(g.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	const password = "tail-password"
	ch := createChannel(t, g, "tail", password)
	// Through a validating proxy (see TestCLICommands), which stays up
	// while the gateway behind it is killed and restarted: tail then sees
	// the proxy's 502 as an outage, like a gateway behind a load balancer.
	env := []string{"PUSHGO_URL=" + apiValidatingProxy(t, g.base), "PUSHGO_CHANNEL_ID=" + ch, "PUSHGO_CHANNEL_PASSWORD=" + password}
	state := filepath.Join(t.TempDir(), "tail.state")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tail := exec.CommandContext(ctx, pushgoBin, "tail", "--json", "--state", state)
	tail.Env = cliEnv(env...)
	stderr := &syncBuffer{}
	tail.Stderr = stderr
	stdout, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	tailDone := make(chan error, 1)
	out := newLineReader(stdout)
	go func() {
		<-out.done // read everything before Wait closes the pipe
		tailDone <- tail.Wait()
	}()
	t.Cleanup(func() {
		_ = tail.Process.Kill()
		<-tailDone
	})
	what := func() string { return "tail's stderr: " + stderr.String() }

	var sent []string
	send := func(n int, tag string) {
		t.Helper()
		for i := range n {
			op := fmt.Sprintf("tail-%s-%d", tag, i)
			mustCLI(t, env, "", "send", "--title", op, "--op-id", op)
			sent = append(sent, op)
		}
	}
	send(3, "before")
	wantTail(t, parseTail(t, out.waitFor(t, 3, 30*time.Second, what)), sent)

	// The gateway dies and comes back on the same data and address.
	g.kill()
	if !waitText(stderr, "stream lost", 30*time.Second) {
		t.Fatalf("tail did not say the stream was lost: %s", what())
	}
	// While tail cannot reach it, the gateway appends two operations: it
	// runs on the same data at another address, then stops.
	elsewhere := startGateway(t, gwConfig{DataDir: dir})
	for i := range 2 {
		op := fmt.Sprintf("tail-while-away-%d", i)
		mustCLI(t, []string{"PUSHGO_URL=" + apiValidatingProxy(t, elsewhere.base), env[1], env[2]}, "", "send", "--title", op, "--op-id", op)
		sent = append(sent, op)
	}
	if err := elsewhere.terminate(); err != nil {
		t.Fatalf("the gateway elsewhere did not stop cleanly: %v", err)
	}
	g = startGateway(t, gwConfig{DataDir: dir, HTTPAddr: httpAddr, NATSAddr: natsURL.Host})
	send(3, "after")
	items := parseTail(t, out.waitFor(t, 8, 60*time.Second, what))
	wantTail(t, items, sent)
	if !waitText(stderr, "reconnected", 10*time.Second) {
		t.Fatalf("tail did not say it reconnected: %s", what())
	}
	for _, it := range items {
		if it.ChannelID != ch || it.Op != "message.create" || it.EntityType != "message" || it.Payload["title"] != it.OpID {
			t.Fatalf("tail item %+v is not the message sent", it)
		}
	}

	t.Logf("tail's stderr across the restart:\n%s", stderr.String())

	// SIGINT: tail stops with 0 and its state holds the last seq printed.
	if err := tail.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tailDone:
		if err != nil {
			t.Fatalf("tail after SIGINT: %v, want exit 0; %s", err, what())
		}
		tailDone <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("tail did not stop within 30s of SIGINT: %s", what())
	}
	// The whole output, once tail has stopped: no line repeated after the
	// eighth either (a reconnection that printed one again).
	<-out.done // its standard output read to the end
	out.mu.Lock()
	all := slices.Clone(out.lines)
	out.mu.Unlock()
	wantTail(t, parseTail(t, all), sent)
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		ChannelID   string `json:"channel_id"`
		LastEventID uint64 `json:"last_event_id"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.ChannelID != ch || st.LastEventID != items[7].Seq {
		t.Fatalf("state file %s (%v), want channel %s, last_event_id %d", b, err, ch, items[7].Seq)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode: %v %v, want 0600", fi.Mode(), err)
	}

	// Sent while no tail runs; the next tail with the state file prints
	// exactly those, then stops at --count.
	before := len(sent)
	send(2, "offline")
	r := mustCLI(t, env, "", "tail", "--json", "--state", state, "--count", "2")
	wantTail(t, parseTail(t, strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")), sent[before:])
	// --after a sequence number starts right after it.
	r = mustCLI(t, env, "", "tail", "--json", "--after", fmt.Sprint(items[1].Seq), "--count", "4")
	wantTail(t, parseTail(t, strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")), sent[2:6])
	// Human output: one line per operation, its seq first.
	r = mustCLI(t, env, "", "tail", "--count", "1")
	if !strings.HasPrefix(r.stdout, fmt.Sprintf("%d\t", items[0].Seq)) || !strings.Contains(r.stdout, "message.create") || !strings.Contains(r.stdout, sent[0]) {
		t.Fatalf("tail printed %q", r.stdout)
	}
	// A state file of another channel is refused.
	other := createChannel(t, g, "other", password)
	wantExit(t, runCLI(t, []string{env[0], "PUSHGO_CHANNEL_ID=" + other, env[2]}, "", "tail", "--state", state, "--count", "1"), 2, "--state")
}

// waitText waits until b's text contains s.
func waitText(b *syncBuffer, s string, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		if strings.Contains(b.String(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.Contains(b.String(), s)
}

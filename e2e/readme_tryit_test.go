package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The README's "Try it" section and how this test runs it. The section's
// sh blocks are what a newcomer pastes; the test runs them as they are
// with two changes, and only these:
//   - the line that starts the gateway (readmeStartLine) is dropped: the
//     test runs the binary it built, started by startGateway;
//   - readmeAddr is replaced by that gateway's address.
const (
	readmeSection   = "## Try it"
	readmeStartLine = "make run &"
	readmeAddr      = "127.0.0.1:8080"
)

// curlWrapper is put in front of the README's commands. It shadows curl
// with a shell function that runs the real curl unchanged and appends, for
// each call that exited 0, a header line and the answer to
// $README_TRYIT_LOG, so the test can check every answer afterwards. A
// failing call fails as it would without the wrapper (and `sh -e` stops).
const curlWrapper = `curl() {
	readme_answer=$(command curl "$@") || { readme_rc=$?; printf '%s\n' "$readme_answer"; return $readme_rc; }
	printf '%s\n' "$readme_answer"
	printf '>>> curl %s\n%s\n' "$(printf '%s ' "$@" | tr '\n' ' ')" "$readme_answer" >>"$README_TRYIT_LOG"
}
`

// curlCall finds curl used as a command in a line of the script.
var curlCall = regexp.MustCompile(`(^|[\s;&|($])curl\s`)

// TestReadmeTryIt runs the README's "Try it" commands against the built
// binary with sh -e, so the README cannot drift from the gateway: every
// command must succeed and every answer must say so.
func TestReadmeTryIt(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("the README's Try it commands need curl, and it is not on PATH (%v): install curl (Debian: apt-get install curl)", err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("the README's Try it commands need a POSIX sh on PATH: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script, curls := tryItScript(t, string(readme))

	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	// curl talks to the gateway through the OpenAPI validation, as the
	// suite's own clients do: what the README shows is held to the
	// document too.
	addr := strings.TrimPrefix(apiValidatingProxy(t, g.base), "http://")
	script = strings.ReplaceAll(script, readmeAddr, addr)

	dir := t.TempDir()
	logFile := filepath.Join(dir, "answers.log")
	scriptFile := filepath.Join(dir, "tryit.sh")
	if err := os.WriteFile(scriptFile, []byte(curlWrapper+script), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "-e", scriptFile)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "README_TRYIT_LOG="+logFile)
	cmd.WaitDelay = 5 * time.Second
	out, runErr := cmd.CombinedOutput()
	if runErr != nil {
		t.Fatalf("the README's Try it commands failed (sh -e, gateway at %s): %v\n---- script ----\n%s---- output ----\n%s",
			addr, runErr, script, out)
	}

	answers := readAnswers(t, logFile)
	if len(answers) < curls {
		t.Fatalf("the script has %d curl commands but %d answers were recorded: is a curl called other than as `curl`?\n---- output ----\n%s",
			curls, len(answers), out)
	}
	for _, a := range answers {
		if err := answerSucceeded(a.body); err != nil {
			t.Errorf("%s\n  answer %s\n  %v", a.call, a.body, err)
		}
	}
	if t.Failed() {
		t.Logf("---- output ----\n%s", out)
	}
}

// tryItScript returns the sh blocks of the README's Try it section joined
// in order, without the start line, and the number of curl commands in
// them. It fails the test unless each curl is called with -f (a failing
// status must stop sh -e) and the start line occurs exactly once.
func tryItScript(t *testing.T, readme string) (string, int) {
	t.Helper()
	var (
		script       strings.Builder
		inSection    bool
		inBlock      bool
		blocks       int
		startLines   int
		curls        int
		sectionFound bool
	)
	sc := bufio.NewScanner(strings.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case inBlock && strings.HasPrefix(trimmed, "```"):
			inBlock = false
			script.WriteString("\n")
		case inBlock:
			if strings.HasPrefix(trimmed, readmeStartLine) {
				startLines++
				script.WriteString("# (README line " + fmt.Sprint(n) + ", the gateway start, dropped by the test)\n")
				continue
			}
			code, _, _ := strings.Cut(line, " #")
			if curlCall.MatchString(code) && !strings.HasPrefix(trimmed, "#") {
				curls++
				if !strings.Contains(code, " -f") && !strings.Contains(code, "--fail") {
					t.Errorf("README line %d: curl without -f (an error status would not stop sh -e): %s", n, line)
				}
			}
			script.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			inSection = line == readmeSection
			sectionFound = sectionFound || inSection
		case inSection && (trimmed == "```sh" || trimmed == "```shell" || trimmed == "```bash"):
			inBlock = true
			blocks++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	switch {
	case !sectionFound:
		t.Fatalf("README.md has no %q section", readmeSection)
	case blocks == 0:
		t.Fatalf("README.md's %q section has no ```sh block", readmeSection)
	case inBlock:
		t.Fatalf("README.md's %q section has an unclosed code block", readmeSection)
	case startLines != 1:
		t.Fatalf("README.md's %q blocks have %d lines starting with %q, want 1: the test drops that line to use its own gateway",
			readmeSection, startLines, readmeStartLine)
	case curls == 0:
		t.Fatalf("README.md's %q blocks call no curl", readmeSection)
	}
	if !strings.Contains(script.String(), readmeAddr) {
		t.Fatalf("README.md's %q blocks never name %s, the address the test replaces by its gateway's", readmeSection, readmeAddr)
	}
	return script.String(), curls
}

type recordedAnswer struct {
	call string
	body []byte
}

// readAnswers parses the wrapper's log: a ">>> curl …" line, then the
// answer up to the next such line.
func readAnswers(t *testing.T, file string) []recordedAnswer {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no answer was recorded (%v)", err)
	}
	var out []recordedAnswer
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(line, ">>> curl ") {
			out = append(out, recordedAnswer{call: strings.TrimSpace(strings.TrimPrefix(line, ">>> "))})
			continue
		}
		if len(out) == 0 {
			t.Fatalf("answer log does not start with a call line: %q", line)
		}
		out[len(out)-1].body = append(out[len(out)-1].body, line...)
	}
	for i := range out {
		out[i].body = bytes.TrimSpace(out[i].body)
	}
	return out
}

// answerSucceeded checks one answer: the gateway's envelope with success
// true, or Dynatrace's ingest answer with every result OK.
func answerSucceeded(body []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	if raw, ok := m["success"]; ok {
		// No error members on success (the Android app reads a null one as
		// the string "null": see envelope in harness_test.go).
		_, hasErr := m["error"]
		_, hasCode := m["error_code"]
		if string(raw) != "true" || hasErr || hasCode {
			return fmt.Errorf("want success true and no error or error_code member")
		}
		return nil
	}
	if raw, ok := m["eventIngestResults"]; ok {
		var results []struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(raw, &results); err != nil || len(results) == 0 {
			return fmt.Errorf("eventIngestResults is not a non-empty list (%v)", err)
		}
		for _, r := range results {
			if r.Status != "OK" {
				return fmt.Errorf("an ingest result has status %q, want OK", r.Status)
			}
		}
		return nil
	}
	return fmt.Errorf("neither the gateway's envelope nor a Dynatrace ingest answer")
}

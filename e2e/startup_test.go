package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/apitest"
)

// Issue 12: startup errors are one clear line and a non-zero exit, never a
// panic; a start that can heal (a corrupt projection: it is disposable)
// heals with a loud line instead.

// launch starts pushgo with env (PUSHGO_* from the environment dropped)
// listening on httpAddr, without waiting for anything: the process may
// exit at once. It is killed at cleanup.
func launch(t *testing.T, httpAddr string, env ...string) *gateway {
	t.Helper()
	startCount.Lock()
	startCount.n++
	name := fmt.Sprintf("pushgo#%d", startCount.n)
	startCount.Unlock()
	g := &gateway{t: t, name: name, base: "http://" + httpAddr, output: &syncBuffer{}, done: make(chan struct{}),
		Client: &apitest.Client{Base: "http://" + httpAddr, HTTP: &http.Client{Timeout: 15 * time.Second, Transport: apiValidating(t, nil)}}}
	var full []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHGO_") {
			full = append(full, kv)
		}
	}
	g.cmd = exec.Command(pushgoBin)
	g.cmd.Env = append(append(full, "PUSHGO_HTTP_ADDR="+httpAddr), env...)
	g.cmd.Stdout, g.cmd.Stderr = g.output, g.output
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s---- end of %s ----", name, g.output.String(), name)
		}
	})
	return g
}

// waitExit waits for g to exit (bound: a test that hangs is a failure, not
// a slow pass) and returns its output.
func (g *gateway) waitExit(bound time.Duration) string {
	g.t.Helper()
	select {
	case <-g.done:
	case <-time.After(bound):
		g.t.Fatalf("%s did not exit within %s", g.name, bound)
	}
	return g.output.String()
}

// checkOneClearLine fails t unless out is the output of a failed start:
// no panic or goroutine dump, and exactly one ERROR line, "pushgo stopped",
// holding every want.
func checkOneClearLine(t *testing.T, g *gateway, out string, want ...string) {
	t.Helper()
	if g.waitErr == nil {
		t.Fatalf("%s exited 0:\n%s", g.name, out)
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("%s panicked:\n%s", g.name, out)
	}
	var errLines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], `msg="pushgo stopped"`) {
		t.Fatalf("want one ERROR line, pushgo stopped, got %d:\n%s", len(errLines), out)
	}
	for _, w := range want {
		if !strings.Contains(errLines[0], w) {
			t.Fatalf("the ERROR line does not say %q:\n%s", w, errLines[0])
		}
	}
}

// TestRunTwiceIsOneClearLine is `make run` twice: a second pushgo on the
// first one's data directory and ports. It exits non-zero with one line
// naming the busy port (it was the NATS server's own error line, then a
// 30-second wait and a second line, with the first process's JetStream
// store opened by the second in the meantime), and the first process goes
// on serving.
func TestRunTwiceIsOneClearLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startGateway(t, gwConfig{DataDir: dir})
	ch := createChannel(t, a, "twice", "correct-horse")
	second := launch(t, strings.TrimPrefix(a.base, "http://"), "PUSHGO_DATA_DIR="+dir,
		"PUSHGO_NATS_LISTEN="+strings.TrimPrefix(a.natsURL, "nats://"))
	out := second.waitExit(60 * time.Second)
	checkOneClearLine(t, second, out, "address already in use")
	if l := firstLine(out, "level=ERROR"); !strings.Contains(l, strings.TrimPrefix(a.base, "http://")) && !strings.Contains(l, strings.TrimPrefix(a.natsURL, "nats://")) {
		t.Fatalf("the ERROR line names neither busy address:\n%s", l)
	}
	// The first process was not disturbed.
	postOK(t, a, "/message", map[string]any{"channel_id": ch, "password": "correct-horse", "title": "still here"})
	a.waitReady(10 * time.Second)
}

// TestSecondGatewayOnTheDataDirIsOneClearLine: a second pushgo on the
// first one's data directory, on free ports. It exits non-zero with one
// line saying the directory is in use, before its broker opens the store:
// it used to start a second NATS server on the running one's store, which
// rebuilt the stream's state files from under it ("Stream state outdated,
// last block has additional entries, will rebuild"), and stopped only at
// the projection's lock. The first process goes on serving, its messages
// kept.
func TestSecondGatewayOnTheDataDirIsOneClearLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startGateway(t, gwConfig{DataDir: dir})
	ch := createChannel(t, a, "shared-dir", "correct-horse")
	postOK(t, a, "/message", map[string]any{"channel_id": ch, "password": "correct-horse", "title": "before"})
	second := launch(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "PUSHGO_DATA_DIR="+dir,
		fmt.Sprintf("PUSHGO_NATS_LISTEN=127.0.0.1:%d", freePort(t)))
	out := second.waitExit(60 * time.Second)
	checkOneClearLine(t, second, out, "in use", dir, "PUSHGO_DATA_DIR")
	for _, opened := range []string{"embedded broker started", "Filestore", "will rebuild"} {
		if strings.Contains(out, opened) {
			t.Fatalf("the second process opened the store (%q in its output):\n%s", opened, out)
		}
	}
	postOK(t, a, "/message", map[string]any{"channel_id": ch, "password": "correct-horse", "title": "after"})
	a.waitReady(10 * time.Second)
}

// TestBusyBrokerPortIsOneClearLine: the embedded broker's port is taken
// (by anything): one line naming it, and the data directory's store is
// not opened.
func TestBusyBrokerPortIsOneClearLine(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	g := launch(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "PUSHGO_DATA_DIR="+dir, "PUSHGO_NATS_LISTEN="+ln.Addr().String())
	out := g.waitExit(60 * time.Second)
	checkOneClearLine(t, g, out, ln.Addr().String(), "address already in use")
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); !os.IsNotExist(err) {
		t.Errorf("the broker's store was opened before the port was found busy (stat: %v)", err)
	}
}

// TestCorruptProjectionAtStart: a projection whose files are garbage, for
// a projector-only process and for the default target. The process heals
// (the projection is disposable: it is rebuilt from the log, saying so
// loudly, and then answers from it); never a stop, a panic or a goroutine
// dump.
func TestCorruptProjectionAtStart(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"projector", "all"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a := startGateway(t, gwConfig{DataDir: dir})
			ch := createChannel(t, a, "corrupt", "correct-horse")
			for i := range 5 {
				postOK(t, a, "/message", map[string]any{"channel_id": ch, "password": "correct-horse", "title": fmt.Sprintf("m%d", i)})
			}
			// Everything folded, so the projection holds it all.
			hist := postOK(t, a, "/channel/history", map[string]any{"channel_id": ch, "password": "correct-horse"})
			if n := len(hist["items"].([]any)); n != 5 {
				t.Fatalf("history before: %d items", n)
			}
			if err := a.terminate(); err != nil {
				t.Fatalf("first run: %v", err)
			}
			corruptDir(t, projectionDir(dir))

			env := []string{"PUSHGO_DATA_DIR=" + dir, fmt.Sprintf("PUSHGO_NATS_LISTEN=127.0.0.1:%d", freePort(t))}
			if target != "all" {
				env = append(env, "PUSHGO_TARGET="+target)
			}
			g := launch(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), env...)
			ready := false
			deadline := time.Now().Add(60 * time.Second)
			for !ready && !g.exited() && time.Now().Before(deadline) {
				if r, err := g.Do(t.Context(), "GET", "/readyz", nil, nil); err == nil && r.Status == 200 {
					ready = true
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			out := g.output.String()
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Fatalf("panicked:\n%s", out)
			}
			switch {
			case ready:
				// Healed: said so loudly, and the data is back.
				if !strings.Contains(out, "level=ERROR") || !strings.Contains(strings.ToLower(out), "projection") {
					t.Fatalf("healed without an ERROR line about the projection:\n%s", out)
				}
				if target == "all" {
					hist := postOK(t, g, "/channel/history", map[string]any{"channel_id": ch, "password": "correct-horse"})
					if n := len(hist["items"].([]any)); n != 5 {
						t.Fatalf("history after the rebuild: %d items, want 5", n)
					}
				} else {
					// Ready means within the catch-up lag of the log's end,
					// not folded to it: the fold commits the last few
					// operations just after (or as soon as a read waits).
					for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
						r := g.Get(t, "/readyz", nil)
						if applied, _ := r.Data["projector_applied"].(float64); applied >= 5 {
							break
						} else if time.Now().After(deadline) {
							t.Fatalf("projector applied %v within 30 s of the rebuild, want every operation: %s", r.Data["projector_applied"], r)
						}
					}
				}
				t.Logf("healed: %s", firstLine(out, "PROJECTION"))
			default:
				// The README's promise is a heal: a corrupt projection is
				// deleted and folded again, never a stop.
				t.Fatalf("not healed within 60s (exited: %v):\n%s", g.exited(), out)
			}
		})
	}
}

// corruptDir overwrites every file of a Pebble directory but its lock with
// random bytes of the same length (at least 64).
func corruptDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		garbage := make([]byte, max(info.Size(), 64))
		_, _ = rand.Read(garbage)
		if err := os.WriteFile(filepath.Join(dir, e.Name()), garbage, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no projection files in %s", dir)
	}
}

// firstLine is the first line of out holding s ("" when none).
func firstLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

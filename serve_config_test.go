package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadSettingStopsTheStartWithExitStatus2: a setting whose value cannot
// be used is one line on standard error naming its variable, and exit
// status 2, before anything starts (no broker store in the data
// directory): the project's rule, which these broke. PUSHGO_HTTP_ADDR=
// notanaddr and PUSHGO_PUBLIC_BASE_URL=notaurl were exit 1, in net's or the
// pusher's words, the second after the embedded broker had started; a
// PUSHGO_THING_UPDATE_QUIET that is no channel id, and "*" in
// PUSHGO_THING_UPDATE_ALERTS, started the gateway; PUSHGO_LIMIT_*=-1 did
// not say that 0 is taken.
func TestBadSettingStopsTheStartWithExitStatus2(t *testing.T) {
	for _, c := range []struct{ env, value, want string }{
		{"PUSHGO_HTTP_ADDR", "notanaddr", `pushgo: PUSHGO_HTTP_ADDR "notanaddr": want host:port, such as 127.0.0.1:8080, :8080 or [::1]:8080 (missing port in address)`},
		{"PUSHGO_PUBLIC_BASE_URL", "notaurl", `pushgo: PUSHGO_PUBLIC_BASE_URL "notaurl": want an absolute http(s) URL of at most 512 bytes, such as https://push.example.com`},
		{"PUSHGO_THING_UPDATE_QUIET", "not-a-channel", `pushgo: PUSHGO_THING_UPDATE_QUIET "not-a-channel": "not-a-channel" is not a channel id (26 characters of Crockford base32); want channel ids (comma-separated) or * for every channel`},
		{"PUSHGO_THING_UPDATE_ALERTS", "*", `pushgo: PUSHGO_THING_UPDATE_ALERTS "*": want channel ids (comma-separated), the channels exempted from PUSHGO_THING_UPDATE_QUIET; * would exempt every channel: thing updates ring by default, so leave PUSHGO_THING_UPDATE_QUIET empty instead`},
		{"PUSHGO_LIMIT_CHANNEL_CREATE", "-1", `pushgo: PUSHGO_LIMIT_CHANNEL_CREATE "-1": want a positive integer, or 0 or off for no limit`},
	} {
		t.Run(c.env, func(t *testing.T) {
			dir := t.TempDir()
			// A gateway of its own, should the setting be taken: its data
			// here, no fixed port.
			t.Setenv("PUSHGO_DATA_DIR", dir)
			t.Setenv("PUSHGO_HTTP_ADDR", "127.0.0.1:0")
			t.Setenv("PUSHGO_NATS_LISTEN", "off")
			t.Setenv(c.env, c.value)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code, stderr := withStderr(t, func() int { return serve(ctx, nil) })
			if code != 2 || stderr != c.want+"\n" {
				t.Errorf("exit status %d, standard error:\n%s\nwant 2 and %q", code, stderr, c.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "jetstream")); !os.IsNotExist(err) {
				t.Errorf("the embedded broker started (%s/jetstream: %v)", dir, err)
			}
		})
	}
}

// withStderr runs f with os.Stderr captured and returns f's result and
// what it wrote there.
func withStderr(t *testing.T, f func() int) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	var out strings.Builder
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&out, r)
	}()
	code := f()
	os.Stderr = stderr
	_ = w.Close()
	<-copied
	_ = r.Close()
	return code, out.String()
}

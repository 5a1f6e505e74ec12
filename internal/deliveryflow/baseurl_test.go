package deliveryflow_test

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pushgo/gateway/pusher"
)

// logSink is a log a test reads after the pusher wrote it.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAPNsWithoutAPublicBaseURLIsWarnedOf: the Apple app acknowledges a
// direct push with its base_url and provider_device_key; a pusher with
// APNs and no PUSHGO_PUBLIC_BASE_URL sends no base_url, so the app can
// acknowledge nothing and files every push again at its next full sync.
// The pusher says so at start, and does not when the URL is set.
func TestAPNsWithoutAPublicBaseURLIsWarnedOf(t *testing.T) {
	for _, c := range []struct {
		base   string
		warned bool
	}{{"", true}, {"https://push.example.test", false}} {
		var out logSink
		setup(t, func(cfg *pusher.Config) {
			cfg.PublicBaseURL, cfg.Logger = c.base, slog.New(slog.NewTextHandler(&out, nil))
		})
		if got := strings.Contains(out.String(), "PUSHGO_PUBLIC_BASE_URL is not set"); got != c.warned {
			t.Errorf("base URL %q: warned %v, want %v; the log:\n%s", c.base, got, c.warned, out.String())
		}
	}
}

// TestAPublicBaseURLTheAppsRefuseIsWarnedOf: the PushGo apps use a gateway
// only over https (the Apple app then acks no direct push and pulls no
// wake-up), and the Android app only at the root of its host; a pusher
// started with such a PUSHGO_PUBLIC_BASE_URL says what the apps will not
// do, and says nothing of an https URL at a host's root or of one on this
// machine (a test gateway).
func TestAPublicBaseURLTheAppsRefuseIsWarnedOf(t *testing.T) {
	for _, c := range []struct {
		base string
		want []string
	}{
		{"http://push.example.test", []string{"is plain http"}},
		{"https://example.test/pushgo/", []string{"has a path"}},
		{"http://example.test/pushgo", []string{"is plain http", "has a path"}},
		{"https://push.example.test/", nil},
		{"https://push.example.test:8443", nil},
		{"http://127.0.0.1:8080", nil},
		{"http://localhost:8080/x", nil},
		{"http://[::1]:8080", nil},
	} {
		var out logSink
		setup(t, func(cfg *pusher.Config) {
			cfg.PublicBaseURL, cfg.Logger = c.base, slog.New(slog.NewTextHandler(&out, nil))
		})
		log := out.String()
		for _, caveat := range []string{"is plain http", "has a path"} {
			if got, want := strings.Contains(log, caveat), slices.Contains(c.want, caveat); got != want {
				t.Errorf("base URL %q: warned %q %v, want %v; the log:\n%s", c.base, caveat, got, want, log)
			}
		}
	}
}

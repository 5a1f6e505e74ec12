package deliveryflow_test

import (
	"bytes"
	"log/slog"
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

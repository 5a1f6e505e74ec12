package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushgo/gateway/schemas/apierr"
)

// syncBuffer is a log sink the server's goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAClientThatLeftIsNoServerError: a read whose client hung up before
// the answer (the handler then answers 503, to nobody) is counted as 499
// with no error code and not logged as a server error; the same 503
// answered to a client still there is a server error, counted and logged.
func TestAClientThatLeftIsNoServerError(t *testing.T) {
	m := newMetrics()
	var logs syncBuffer
	e := echo.New()
	e.Use(observe(m, slog.New(slog.NewTextHandler(&logs, nil))))
	answered, started := make(chan struct{}, 2), make(chan struct{}, 1)
	e.GET("/wait", func(c *echo.Context) error {
		defer func() { answered <- struct{}{} }()
		started <- struct{}{}
		select { // a read waiting for the projector, which never answers
		case <-c.Request().Context().Done():
		case <-time.After(30 * time.Second):
		}
		return writeErr(c, &apierr.Error{Code: apierr.ReadUnavailable, RetryAfter: 1})
	})
	e.GET("/fail", func(c *echo.Context) error {
		defer func() { answered <- struct{}{} }()
		return writeErr(c, &apierr.Error{Code: apierr.ReadUnavailable, RetryAfter: 1})
	})
	srv := httptest.NewServer(e)
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started // the handler has it: hang up
	conn.Close()
	select {
	case <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler did not see its client go")
	}
	resp, err := srv.Client().Get(srv.URL + "/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-answered
	// The middleware counts after the handler returns: wait for both.
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.requests.WithLabelValues("/fail", "503")) < 1 || testutil.ToFloat64(m.requests.WithLabelValues("/wait", "499")) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not counted: /wait 499 %v, /fail 503 %v", testutil.ToFloat64(m.requests.WithLabelValues("/wait", "499")),
				testutil.ToFloat64(m.requests.WithLabelValues("/fail", "503")))
		}
		time.Sleep(time.Millisecond)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/wait", "503")); n != 0 {
		t.Errorf("the hung-up read counted %v times as 503", n)
	}
	if n := testutil.ToFloat64(m.errors.WithLabelValues("/wait", string(apierr.ReadUnavailable))); n != 0 {
		t.Errorf("the hung-up read counted %v times as read_unavailable", n)
	}
	if n := testutil.ToFloat64(m.errors.WithLabelValues("/fail", string(apierr.ReadUnavailable))); n != 1 {
		t.Errorf("the 503 to a client still there counted %v times as read_unavailable, want 1", n)
	}
	out := logs.String()
	if strings.Contains(out, "route=/wait") {
		t.Errorf("the hung-up read logged at info or above:\n%s", out)
	}
	if !strings.Contains(out, "http: server error") || !strings.Contains(out, "route=/fail") {
		t.Errorf("the 503 to a client still there is not logged as a server error:\n%s", out)
	}
}

package httpapi

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
)

// An error no route handles is logged by its route's pattern, never its
// path: a compat route's path holds its channel's password.
func TestUnhandledErrorLogsNoPath(t *testing.T) {
	var logs bytes.Buffer
	s := New(nil, nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.Echo().GET("/bark/:key", func(c *echo.Context) error { return errors.New("a handler's failure") })
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/bark/0123456789ABCDEFGHJKMNPQRS:correct-horse", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	out := logs.String()
	if !strings.Contains(out, "unhandled error") || !strings.Contains(out, "/bark/:key") || strings.Contains(out, "correct-horse") {
		t.Fatalf("log: %s", out)
	}
}

package attempt

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRecordAndStop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(503)
		io.WriteString(w, `{"error":"x"}`)
	}))
	defer srv.Close()
	c := &http.Client{Transport: &Transport{Base: http.DefaultTransport}}

	ctx, rec, cancel := Start(context.Background(), true)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	attempted, status, h, terr := rec.Result()
	if !attempted || status != 503 || h.Get("Retry-After") != "5" || terr != nil || string(rec.Body()) != `{"error":"x"}` {
		t.Errorf("record: %v %d %v %v %q", attempted, status, h, terr, rec.Body())
	}
	if !rec.Stopped() || ctx.Err() == nil {
		t.Errorf("the context was not stopped after the first attempt")
	}
	req, _ = http.NewRequestWithContext(context.WithoutCancel(ctx), "GET", srv.URL, nil)
	if _, err := c.Do(req); !errors.Is(err, errSecondAttempt) {
		t.Errorf("second attempt: %v", err)
	}

	// Without a Record, requests pass through.
	resp, err = c.Get(srv.URL)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// newHTTPClient is the one client every load goroutine shares: keep-alive,
// exactly `conns` connections to the gateway, no proxy (all traffic stays
// on 127.0.0.1 whatever the environment says), no compression.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
		Timeout: 2 * opTimeout,
	}
}

var successPrefix = []byte(`{"success":true`)

// post sends one JSON request and requires HTTP 200 with the success
// envelope. It returns the body (for the set-up, which needs the ids).
func post(ctx context.Context, c *http.Client, url string, body []byte, keep bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	defer resp.Body.Close()
	// Read the whole body so the connection is reused.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, successPrefix) {
		return nil, fmt.Errorf("%s %d %s", req.URL.Path, resp.StatusCode, errorCode(b))
	}
	if !keep {
		return nil, nil
	}
	return b, nil
}

// exchange sends one JSON POST with an Authorization header (when auth is
// not "") and returns the status and body whatever the status: the
// integration routes answer 201 and their own envelopes. Only transport
// failures are errors.
func exchange(ctx context.Context, c *http.Client, url, auth string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("transport: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, b, nil
}

// errorCode extracts error_code from a failure envelope for the report.
func errorCode(b []byte) string {
	var env struct {
		Success   bool    `json:"success"`
		ErrorCode *string `json:"error_code"`
	}
	if json.Unmarshal(b, &env) != nil {
		if len(b) > 80 {
			b = b[:80]
		}
		return fmt.Sprintf("non-envelope body %q", b)
	}
	if env.ErrorCode == nil {
		return fmt.Sprintf("success=%v, no error_code", env.Success)
	}
	return *env.ErrorCode
}

// dataField decodes one string member of a success envelope's data.
func dataField(b []byte, name string) (string, error) {
	var env struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return "", err
	}
	s, ok := env.Data[name].(string)
	if !ok || s == "" {
		return "", fmt.Errorf("response data has no %s: %s", name, b)
	}
	return s, nil
}

package bearer_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pushgo/gateway/pusher/sender/internal/bearer"
)

// rt answers scripted statuses and records the authorization it saw.
type rt struct {
	reqs     []*http.Request
	statuses []int
	auths    []string
	bodies   []string
}

func (r *rt) RoundTrip(req *http.Request) (*http.Response, error) {
	r.reqs = append(r.reqs, req)
	r.auths = append(r.auths, req.Header.Get("Authorization"))
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	r.bodies = append(r.bodies, string(b))
	st := r.statuses[0]
	r.statuses = r.statuses[1:]
	return &http.Response{StatusCode: st, Body: io.NopCloser(strings.NewReader(`{"reason":"x"}`)), Header: http.Header{}}, nil
}

// source hands out t1, t2, … and moves on when invalidated.
type source struct {
	n       int
	invalid []string
	fail    bool
}

func (s *source) transport(base http.RoundTripper) *bearer.Transport {
	return &bearer.Transport{
		Base: base,
		Authorize: func(r *http.Request) (string, error) {
			if s.fail {
				return "", errors.New("no token")
			}
			tok := "t" + string(rune('1'+s.n))
			r.Header.Set("Authorization", "Bearer "+tok)
			return tok, nil
		},
		Expired:    func(status int, body []byte) bool { return string(body) == `{"reason":"x"}` },
		Invalidate: func(tok string) { s.invalid = append(s.invalid, tok); s.n++ },
	}
}

func TestRetriesOnceWithAFreshToken(t *testing.T) {
	base := &rt{statuses: []int{403, 200}}
	s := &source{}
	req, _ := http.NewRequest(http.MethodPost, "https://p.invalid/x", strings.NewReader("body"))
	resp, err := s.transport(base).RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if strings.Join(base.auths, ",") != "Bearer t1,Bearer t2" || strings.Join(base.bodies, ",") != "body,body" || strings.Join(s.invalid, ",") != "t1" {
		t.Fatalf("auths %v bodies %v invalidated %v", base.auths, base.bodies, s.invalid)
	}
	if req.Header.Get("Authorization") != "" {
		t.Error("the caller's request was modified")
	}
}

func TestNoReplayWithoutGetBody(t *testing.T) {
	base := &rt{statuses: []int{401}}
	s := &source{}
	req, _ := http.NewRequest(http.MethodPost, "https://p.invalid/x", io.NopCloser(strings.NewReader("body")))
	req.GetBody = nil
	resp, err := s.transport(base).RoundTrip(req)
	if err != nil || resp.StatusCode != 401 || len(base.auths) != 1 || len(s.invalid) != 0 {
		t.Fatalf("%v %v, %d requests", resp, err, len(base.auths))
	}
}

func TestRejectionStandsWithTheSameToken(t *testing.T) {
	base := &rt{statuses: []int{403}}
	s := &source{}
	tr := s.transport(base)
	tr.Invalidate = func(string) {} // the source cannot replace it
	req, _ := http.NewRequest(http.MethodPost, "https://p.invalid/x", strings.NewReader("body"))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 403 || len(base.auths) != 1 {
		t.Fatalf("%v %v, %d requests", resp, err, len(base.auths))
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != `{"reason":"x"}` {
		t.Fatalf("body %q", b)
	}
}

func TestAuthorizeErrorSendsNothing(t *testing.T) {
	base := &rt{}
	s := &source{fail: true}
	body := &closeRecorder{Reader: strings.NewReader("body")}
	req, _ := http.NewRequest(http.MethodPost, "https://p.invalid/x", body)
	_, err := s.transport(base).RoundTrip(req)
	if err == nil || len(base.auths) != 0 || !body.closed {
		t.Fatalf("err %v, %d requests, body closed %v", err, len(base.auths), body.closed)
	}
	// Marked, through an HTTP client's *url.Error too, so a sender tells
	// "no credential" (reason auth) from a failed connection.
	if !bearer.IsCredential(&url.Error{Op: "Post", URL: "https://p.invalid/x", Err: err}) {
		t.Fatalf("err %T %v not marked as a credential error", err, err)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestOwnedRequestsAreAuthorizedInPlace: a sender that makes a request per
// send has it authorized as it is, and the retry after an expired token
// still goes with a fresh one; any other caller's request is left as it
// made it.
func TestOwnedRequestsAreAuthorizedInPlace(t *testing.T) {
	base := &rt{statuses: []int{403, 200}}
	s := &source{}
	tr := s.transport(base)
	tr.OwnsRequests = true
	req, _ := http.NewRequest(http.MethodPost, "https://p.invalid/x", strings.NewReader("body"))
	req.Header.Set("Apns-Topic", "app")
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if len(base.reqs) != 2 || base.reqs[0] != req {
		t.Fatalf("the first attempt was not the caller's own request")
	}
	if strings.Join(base.auths, ",") != "Bearer t1,Bearer t2" || strings.Join(base.bodies, ",") != "body,body" {
		t.Fatalf("auths %v bodies %v", base.auths, base.bodies)
	}

	base = &rt{statuses: []int{200}}
	req, _ = http.NewRequest(http.MethodPost, "https://p.invalid/x", strings.NewReader("body"))
	req.Header.Set("Apns-Topic", "app")
	if _, err := s.transport(base).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if base.reqs[0] == req || req.Header.Get("Authorization") != "" || len(req.Header) != 1 {
		t.Errorf("a request the transport does not own was changed: %v", req.Header)
	}
	if got := base.reqs[0].Header.Get("Apns-Topic"); got != "app" {
		t.Errorf("the caller's header did not go with the request: %q", got)
	}
}

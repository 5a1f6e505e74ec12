package sendertest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/go-json-experiment/json"
)

// TokenServiceRequest is one request as FakeTokenService received it.
type TokenServiceRequest struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	// Granted is the token answered, "" when the request failed.
	Granted string
}

// FakeTokenService is a local PushGo token service (the protocol of
// pushgo-gateway src/token_providers/remote/gateway.rs):
//
//	GET /provider/token/production?provider=apns  → apns-production-<n>
//	GET /provider/token/sandbox?provider=apns     → apns-sandbox-<n>
//	GET /provider/token?provider=fcm              → fcm-<n>, project_id
//
// Each successful answer is {"success":true,"error":null,"data":{"token",
// "expires_in","project_id"}} with the next token of that path (n counts
// that path's grants from 1), ExpiresIn seconds (default 3600), and, for
// FCM, ProjectID (default "pushgo-official"). Other paths and providers get
// 404 or 400 in the same envelope. Fail makes it answer errors.
type FakeTokenService struct {
	srv *httptest.Server

	mu        sync.Mutex
	reqs      []TokenServiceRequest
	grants    map[string]int
	expiresIn int64
	project   string
	failWith  int    // 0: answer tokens
	failBody  string // with failWith
}

// NewFakeTokenService starts a FakeTokenService on loopback; it stops when
// t ends.
func NewFakeTokenService(t testing.TB) *FakeTokenService {
	f := &FakeTokenService{grants: map[string]int{}, expiresIn: 3600, project: "pushgo-official"}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the service's base URL (PUSHGO_TOKEN_SERVICE_URL).
func (f *FakeTokenService) URL() string { return f.srv.URL }

// SetExpiresIn sets the expires_in (seconds) of later answers.
func (f *FakeTokenService) SetExpiresIn(seconds int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expiresIn = seconds
}

// SetProjectID sets the FCM project_id of later answers ("" omits it).
func (f *FakeTokenService) SetProjectID(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.project = p
}

// Fail makes later requests fail with HTTP status (with
// {"success":false,"error":"token service unavailable","data":null}); 200
// answers success false with HTTP 200; 0 restores token answers.
func (f *FakeTokenService) Fail(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWith, f.failBody = status, "token service unavailable"
}

// Requests returns every request received, in order.
func (f *FakeTokenService) Requests() []TokenServiceRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TokenServiceRequest(nil), f.reqs...)
}

// Count returns how many requests reached path (such as
// "/provider/token/production"), failed ones included.
func (f *FakeTokenService) Count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if r.Path == path {
			n++
		}
	}
	return n
}

type tokenAnswer struct {
	Success bool       `json:"success"`
	Error   *string    `json:"error"`
	Data    *tokenData `json:"data"`
}

type tokenData struct {
	Token     string `json:"token"`
	ExpiresIn int64  `json:"expires_in"`
	ProjectID string `json:"project_id,omitempty"`
}

func (f *FakeTokenService) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req := TokenServiceRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
	status, a := f.answer(req)
	if a.Success {
		req.Granted = a.Data.Token
	}
	f.reqs = append(f.reqs, req)
	b, _ := json.Marshal(a)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// answer decides the answer to req; f.mu is held.
func (f *FakeTokenService) answer(req TokenServiceRequest) (int, tokenAnswer) {
	fail := func(status int, msg string) (int, tokenAnswer) { return status, tokenAnswer{Error: &msg} }
	var prefix string
	switch provider := req.Query.Get("provider"); {
	case req.Method != http.MethodGet:
		return fail(http.StatusMethodNotAllowed, "method not allowed")
	case req.Path == "/provider/token/production" || req.Path == "/provider/token/sandbox":
		if provider != "apns" {
			return fail(http.StatusBadRequest, "unsupported provider")
		}
		prefix = "apns-" + req.Path[len("/provider/token/"):]
	case req.Path == "/provider/token":
		if provider != "fcm" {
			return fail(http.StatusBadRequest, "unsupported provider")
		}
		prefix = "fcm"
	default:
		return fail(http.StatusNotFound, "not found")
	}
	if f.failWith != 0 {
		return fail(f.failWith, f.failBody)
	}
	f.grants[req.Path]++
	d := &tokenData{Token: prefix + "-" + strconv.Itoa(f.grants[req.Path]), ExpiresIn: f.expiresIn}
	if prefix == "fcm" {
		d.ProjectID = f.project
	}
	return http.StatusOK, tokenAnswer{Success: true, Data: d}
}

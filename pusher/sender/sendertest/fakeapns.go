package sendertest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/net/http2"

	"github.com/pushgo/gateway/pusher/payload"
)

// APNsRequest is one request as FakeAPNs received it.
type APNsRequest struct {
	Token  string
	Proto  string // "HTTP/2.0"
	Header http.Header
	Body   []byte
	// KeyID and TeamID are the kid header and iss claim of the bearer JWT
	// ("" when absent or malformed).
	KeyID, TeamID string
	// RemoteAddr is the client's address: one per connection.
	RemoteAddr string
}

// FakeAPNs is a local APNs provider API: POST /3/device/{token} over TLS
// with HTTP/2, answering scripted statuses with APNs' JSON reason bodies.
// It implements Provider.
type FakeAPNs struct {
	Queue
	srv *httptest.Server

	mu   sync.Mutex
	reqs []APNsRequest
}

var _ Provider = (*FakeAPNs)(nil)

// NewFakeAPNs starts a FakeAPNs on loopback; it stops when t ends.
func NewFakeAPNs(t testing.TB) *FakeAPNs {
	f := &FakeAPNs{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", f.serve)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the endpoint to give the APNs sender (its Options.Endpoint).
func (f *FakeAPNs) URL() string { return f.srv.URL }

// Client is an HTTP client that trusts the fake's certificate and speaks
// HTTP/2 (the APNs sender's Options.HTTPClient).
func (f *FakeAPNs) Client() *http.Client { return f.srv.Client() }

// NewClient is like Client but with a transport of its own that keeps to
// one connection, as the APNs sender's own transports do (a full connection
// makes a request wait for a stream): every client it returns opens one
// connection of its own, and the sender may pipeline a device's pushes over
// it (the APNs sender's Options.NewHTTPClient; see sender.WithWritten).
func (f *FakeAPNs) NewClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	return &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, StrictMaxConcurrentStreams: true}}
}

// Platform implements Provider.
func (f *FakeAPNs) Platform() payload.Provider { return payload.APNs }

// Capabilities implements Provider.
func (f *FakeAPNs) Capabilities() Capability {
	return CapProviderID | CapInterruptionLevel | CapAuth | CapAlert | CapCollapse
}

// Requests returns every request received, in order.
func (f *FakeAPNs) Requests() []APNsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]APNsRequest(nil), f.reqs...)
}

func (f *FakeAPNs) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := APNsRequest{Token: r.PathValue("token"), Proto: r.Proto, Header: r.Header.Clone(), Body: body, RemoteAddr: r.RemoteAddr}
	req.KeyID, req.TeamID = parseBearer(r.Header.Get("Authorization"))
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()

	a := f.Next(observeAPNs(req))
	if !wait(r, a) {
		return
	}
	status, reason := apnsAnswer(a.Kind)
	if a.Reason != "" {
		reason = a.Reason
	}
	id := r.Header.Get("apns-id")
	if id == "" {
		id = "00000000-0000-4000-8000-000000000000"
	}
	w.Header().Set("apns-id", id)
	setRetryAfter(w, a)
	if status == http.StatusOK {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b := `{"reason":` + strconv.Quote(reason)
	if status == http.StatusGone {
		b += `,"timestamp":` + strconv.FormatInt(time.Now().UnixMilli(), 10)
	}
	io.WriteString(w, b+"}")
}

func apnsAnswer(k AnswerKind) (int, string) {
	switch k {
	case Unregistered:
		return http.StatusGone, "Unregistered"
	case BadToken:
		return http.StatusBadRequest, "BadDeviceToken"
	case BadRequest:
		return http.StatusBadRequest, "BadCollapseId"
	case AuthError:
		return http.StatusForbidden, "InvalidProviderToken"
	case ExpiredAuth:
		return http.StatusForbidden, "ExpiredProviderToken"
	case TooManyRequests:
		return http.StatusTooManyRequests, "TooManyRequests"
	case Unavailable:
		return http.StatusServiceUnavailable, "ServiceUnavailable"
	case Internal:
		return http.StatusInternalServerError, "InternalServerError"
	}
	return http.StatusOK, ""
}

// observeAPNs translates a request into the common form, noting what Apple
// would reject.
func observeAPNs(req APNsRequest) Observed {
	h := req.Header
	o := Observed{
		Token:      req.Token,
		CollapseID: h.Get("apns-collapse-id"),
		ID:         h.Get("apns-id"),
		Authorized: req.KeyID != "" && req.TeamID != "",
		Data:       map[string]string{},
	}
	if req.Proto != "HTTP/2.0" {
		o.Problems = append(o.Problems, "not HTTP/2: "+req.Proto)
	}
	if h.Get("apns-topic") == "" {
		o.Problems = append(o.Problems, "no apns-topic")
	}
	if len(req.Body) > payload.MaxPayloadBytes {
		o.Problems = append(o.Problems, "payload over 4096 bytes: "+strconv.Itoa(len(req.Body)))
	}
	if len(o.CollapseID) > payload.MaxCollapseIDBytes {
		o.Problems = append(o.Problems, "apns-collapse-id over 64 bytes")
	}
	prio := h.Get("apns-priority")
	o.High = prio == "10"
	if prio != "" && prio != "10" && prio != "5" {
		o.Problems = append(o.Problems, "bad apns-priority "+prio)
	}
	if e := h.Get("apns-expiration"); e != "" {
		sec, err := strconv.ParseInt(e, 10, 64)
		switch {
		case err != nil || sec < 0:
			o.Problems = append(o.Problems, "bad apns-expiration "+e)
		case sec == 0:
			o.NowOrNever = true
		default:
			o.Expires = time.Unix(sec, 0)
		}
	}

	var top map[string]jsontext.Value
	if err := json.Unmarshal(req.Body, &top); err != nil {
		o.Problems = append(o.Problems, "body is not a JSON object: "+err.Error())
		return o
	}
	var aps struct {
		Alert *struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"alert"`
		ContentAvailable  int    `json:"content-available"`
		InterruptionLevel string `json:"interruption-level"`
		ThreadID          string `json:"thread-id"`
		Sound             any    `json:"sound"`
	}
	if err := json.Unmarshal(top["aps"], &aps, json.RejectUnknownMembers(false)); err != nil {
		o.Problems = append(o.Problems, "bad aps: "+err.Error())
	}
	for k, v := range top {
		if k == "aps" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			o.Problems = append(o.Problems, "data key "+k+" is not a string")
			continue
		}
		o.Data[k] = s
	}
	o.InterruptionLevel, o.ThreadID = aps.InterruptionLevel, aps.ThreadID
	switch snd := aps.Sound.(type) {
	case nil:
	case string:
		o.Sound = snd
	case map[string]any:
		// A critical alert's sound, as Apple documents it: a name, critical
		// 1 and a volume from 0 to 1.
		name, _ := snd["name"].(string)
		critical, _ := snd["critical"].(float64)
		volume, ok := snd["volume"].(float64)
		o.Sound, o.CriticalSound = name, critical == 1
		if name == "" || !ok || volume < 0 || volume > 1 {
			o.Problems = append(o.Problems, "bad sound dictionary")
		}
	default:
		o.Problems = append(o.Problems, "aps.sound is neither a name nor a dictionary")
	}
	if aps.Alert != nil {
		o.Alert, o.Title, o.Body = true, aps.Alert.Title, aps.Alert.Body
	}
	switch pt := h.Get("apns-push-type"); pt {
	case "background":
		o.Background = true
		if prio != "5" {
			o.Problems = append(o.Problems, "background push with apns-priority "+prio)
		}
		if aps.ContentAvailable != 1 || aps.Alert != nil || aps.Sound != nil {
			o.Problems = append(o.Problems, "background push needs content-available 1 and no alert or sound")
		}
	case "alert":
		if aps.Alert == nil {
			o.Problems = append(o.Problems, "alert push without an alert")
		}
	default:
		o.Problems = append(o.Problems, "bad apns-push-type "+pt)
	}
	return o
}

// parseBearer returns the kid and iss of an APNs provider token, without
// checking the signature.
func parseBearer(h string) (kid, iss string) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", ""
	}
	var head struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil ||
		json.Unmarshal(hb, &head, json.RejectUnknownMembers(false)) != nil ||
		json.Unmarshal(cb, &claims, json.RejectUnknownMembers(false)) != nil ||
		head.Alg != "ES256" || claims.Iat == 0 {
		return "", ""
	}
	return head.Kid, claims.Iss
}

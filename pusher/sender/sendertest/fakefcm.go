package sendertest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/pusher/payload"
)

// FCMRequest is one request as FakeFCM received it.
type FCMRequest struct {
	Project string
	Header  http.Header
	Body    []byte
}

// FakeFCM is a local FCM HTTP v1 API: POST
// /v1/projects/{project}/messages:send, answering scripted results with
// FCM's error bodies. It implements Provider.
type FakeFCM struct {
	Queue
	srv *httptest.Server
	seq atomic.Int64

	mu   sync.Mutex
	reqs []FCMRequest
}

var _ Provider = (*FakeFCM)(nil)

// NewFakeFCM starts a FakeFCM on loopback; it stops when t ends.
func NewFakeFCM(t testing.TB) *FakeFCM {
	f := &FakeFCM{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/projects/{rest...}", f.serve)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// Endpoint is the FCM base URL to give the FCM sender (its
// Options.Endpoint).
func (f *FakeFCM) Endpoint() string { return f.srv.URL + "/v1" }

// Platform implements Provider.
func (f *FakeFCM) Platform() payload.Provider { return payload.FCM }

// Capabilities implements Provider.
func (f *FakeFCM) Capabilities() Capability { return CapAuth }

// Requests returns every request received, in order.
func (f *FakeFCM) Requests() []FCMRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FCMRequest(nil), f.reqs...)
}

func (f *FakeFCM) serve(w http.ResponseWriter, r *http.Request) {
	project, ok := strings.CutSuffix(r.PathValue("rest"), "/messages:send")
	if !ok || project == "" || strings.Contains(project, "/") {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	req := FCMRequest{Project: project, Header: r.Header.Clone(), Body: body}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()

	o := observeFCM(req, time.Now())
	a := f.Next(o)
	if !wait(r, a) {
		return
	}
	setRetryAfter(w, a)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if o.tooBig && a.Kind == OK {
		// What FCM answers a message over its count, whatever was scripted.
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"code":400,"message":"Android message is too big","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`)
		return
	}
	if a.Kind == OK {
		io.WriteString(w, `{"name":"projects/`+project+`/messages/`+strconv.FormatInt(f.seq.Add(1), 10)+`"}`)
		return
	}
	status, grpc, code, msg, field := fcmAnswer(a.Kind)
	if a.Reason != "" {
		code = a.Reason
	}
	details := []any{}
	if code != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})
	}
	if field != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []any{map[string]any{"field": field, "description": "Invalid value"}}})
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": grpc, "details": details,
	}}, json.Deterministic(true))
	w.WriteHeader(status)
	w.Write(b)
}

// fcmAnswer returns the HTTP status, google.rpc status, FCM error code,
// message and offending field of an answer, as FCM sends them.
func fcmAnswer(k AnswerKind) (status int, grpc, code, msg, field string) {
	switch k {
	case Unregistered:
		return 404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", ""
	case BadToken:
		return 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", ""
	case BadRequest:
		return 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'", "message.android.ttl"
	case AuthError:
		return 403, "PERMISSION_DENIED", "", "Permission 'cloudmessaging.messages.create' denied on resource.", ""
	case ExpiredAuth:
		return 401, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.", ""
	case TooManyRequests:
		return 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.", ""
	case Unavailable:
		return 503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", ""
	case Internal:
		return 500, "INTERNAL", "INTERNAL", "Internal error encountered.", ""
	}
	return 200, "", "", "", ""
}

// observeFCM translates a request into the common form. Every push must
// be data-only: Android shows a message with a notification block itself
// while the app is in the background, and the PushGo Android app never
// sees it (PushGoMessagingService.onMessageReceived reads message.data).
func observeFCM(req FCMRequest, now time.Time) Observed {
	var m struct {
		Message struct {
			Token        string         `json:"token"`
			Data         map[string]any `json:"data"`
			Notification jsontext.Value `json:"notification"`
			Android      *struct {
				CollapseKey  string         `json:"collapse_key"`
				Priority     string         `json:"priority"`
				TTL          string         `json:"ttl"`
				Notification jsontext.Value `json:"notification"`
			} `json:"android"`
		} `json:"message"`
	}
	o := Observed{Data: map[string]string{}}
	if err := json.Unmarshal(req.Body, &m, json.RejectUnknownMembers(false)); err != nil {
		o.Problems = append(o.Problems, "body: "+err.Error())
		return o
	}
	msg := m.Message
	o.Token = msg.Token
	auth := req.Header.Get("Authorization")
	o.Authorized = len(auth) > len("Bearer ") && strings.EqualFold(auth[:len("Bearer ")], "Bearer ")
	for k, v := range msg.Data {
		s, ok := v.(string)
		if !ok {
			o.Problems = append(o.Problems, "data key "+k+" is not a string")
			continue
		}
		o.Data[k] = s
	}
	o.Title, o.Body = o.Data["title"], o.Data["body"]
	if len(msg.Notification) > 0 {
		o.Problems = append(o.Problems, "notification block set: FCM pushes must be data-only")
	}
	// FCM's own count of the data, as measured against the live API: each
	// key and value and six bytes a pair, and 39 bytes more (not the data
	// map's JSON, a few dozen bytes less: pushes FCM refused passed a fake
	// that counted so).
	size := 39
	for k, v := range o.Data {
		size += len(k) + len(v) + 6
	}
	if a := msg.Android; a != nil {
		o.CollapseID = a.CollapseKey
		o.High = a.Priority == "high"
		if a.Priority != "" && a.Priority != "high" && a.Priority != "normal" {
			o.Problems = append(o.Problems, "bad android priority "+a.Priority)
		}
		if a.TTL != "" {
			secs, err := strconv.ParseFloat(strings.TrimSuffix(a.TTL, "s"), 64)
			switch {
			case err != nil || !strings.HasSuffix(a.TTL, "s") || secs < 0:
				o.Problems = append(o.Problems, "bad ttl "+a.TTL)
			case secs == 0:
				o.NowOrNever = true
			default:
				o.Expires = now.Add(time.Duration(secs * float64(time.Second))).Truncate(time.Second)
			}
		}
		if len(a.Notification) > 0 {
			o.Problems = append(o.Problems, "android.notification set: FCM pushes must be data-only")
		}
	}
	if size > payload.MaxPayloadBytes {
		o.Problems = append(o.Problems, "data over 4096 bytes as FCM counts it: "+strconv.Itoa(size))
		o.tooBig = true
	}
	return o
}

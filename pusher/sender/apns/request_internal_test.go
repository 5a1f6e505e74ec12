package apns

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sideshow/apns2"
)

// TestPushIsApns2sRequest: push makes the request apns2's PushWithContext
// makes (method, path, every header, body) and reads its answers into the
// same Response, for notifications with and without each optional header
// and for accepted, rejected and unregistered answers.
func TestPushIsApns2sRequest(t *testing.T) {
	type seen struct {
		method, path string
		header       http.Header
		body         string
	}
	var (
		mu   sync.Mutex
		reqs []seen
	)
	answers := map[string]func(w http.ResponseWriter){
		"ok": func(w http.ResponseWriter) { w.Header().Set("apns-id", "A1B2"); w.Header().Set("apns-unique-id", "U1") },
		"bad": func(w http.ResponseWriter) {
			w.Header().Set("apns-id", "A1B2")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"reason":"BadDeviceToken"}`)
		},
		"gone": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, `{"reason":"Unregistered","timestamp":1713750000000}`)
		},
		"garbled": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"reason":`)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Del("Accept-Encoding")
		h.Del("User-Agent")
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.URL.Path, h, string(b)})
		mu.Unlock()
		answers[r.Header.Get("apns-collapse-id")](w)
	}))
	defer srv.Close()
	c := apns2.NewTokenClient(nil)
	c.Host, c.HTTPClient = srv.URL, srv.Client()

	body := []byte(`{"aps":{"alert":{"title":"T","body":"B"}},"delivery_id":"1:ab"}`)
	for _, n := range []*apns2.Notification{
		{DeviceToken: "aa11", Topic: "app.pushgo", ApnsID: "5e3b0000-0000-0000-0000-000000000001", CollapseID: "ok",
			Priority: 10, Expiration: time.Unix(1713750000, 0), PushType: apns2.PushTypeAlert, Payload: body},
		{DeviceToken: "bb22", Topic: "app.pushgo", CollapseID: "bad", Priority: 5, PushType: apns2.PushTypeBackground, Payload: body},
		{DeviceToken: "cc33", CollapseID: "gone", Payload: body},
		{DeviceToken: "dd44", Topic: "app.pushgo.watch", CollapseID: "garbled", Payload: body},
	} {
		want, wantErr := c.PushWithContext(context.Background(), n)
		got, gotErr := push(context.Background(), c, n)
		if (wantErr == nil) != (gotErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: push answered %+v, %v; apns2 %+v, %v", n.CollapseID, got, gotErr, want, wantErr)
		}
		mu.Lock()
		a, b := reqs[len(reqs)-2], reqs[len(reqs)-1]
		mu.Unlock()
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: push sent %+v; apns2 sent %+v", n.CollapseID, b, a)
		}
	}
}

// TestSuccessWithABodyKeepsItsConnection: a 200 that carries a body (a
// proxy's, in chunks) is read to its end, so the connection serves the
// next push instead of being dropped and dialled again.
func TestSuccessWithABodyKeepsItsConnection(t *testing.T) {
	var conns sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("apns-id", "A1")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // chunked: no length known before the body
		io.WriteString(w, `{"note":"proxied"}`)
	}))
	n := 0
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Store(c, true)
		}
	}
	srv.Start()
	defer srv.Close()
	c := apns2.NewTokenClient(nil)
	c.Host, c.HTTPClient = srv.URL, srv.Client()
	for range 3 {
		r, err := push(context.Background(), c, &apns2.Notification{DeviceToken: "aa11", Topic: "app.pushgo", Payload: []byte(`{"aps":{}}`)})
		if err != nil || r.StatusCode != http.StatusOK || r.ApnsID != "A1" {
			t.Fatalf("push: %+v, %v", r, err)
		}
	}
	conns.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("three pushes took %d connections, want 1", n)
	}
}

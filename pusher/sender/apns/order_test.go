package apns_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestPipelinedPushesArriveInOrder: each device's pushes, each started
// once the one before was reported written (as the pusher's scheduler
// does), arrive at the provider in the order they were started, while the
// provider answers them out of order. The provider here reads each
// connection's frames in order and records every request at its headers:
// the order Apple's front end sees, whatever it serves concurrently after.
func TestPipelinedPushesArriveInOrder(t *testing.T) {
	srv := newFrameAPNs(t)
	s, err := apns.New(apns.Options{Key: p8(t), KeyID: keyID, TeamID: teamID, Topic: topic,
		Endpoint: srv.url, NewHTTPClient: srv.client, Connections: 2, SendTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const devices, pushes = 6, 40
	var wg sync.WaitGroup
	for d := range devices {
		token := fmt.Sprintf("%064x", d)
		wg.Go(func() {
			var sends sync.WaitGroup
			for i := range pushes {
				n := build(t, ops.MessageCreate, "m"+strconv.Itoa(i), ops.MessagePayload{Title: fmt.Sprintf("push-%d-end", i), Severity: "normal", OccurredAt: 1}, token)
				turn := make(chan struct{})
				var once sync.Once
				end := func() { once.Do(func() { close(turn) }) }
				sends.Go(func() {
					defer end()
					if res := s.Send(sender.WithWritten(t.Context(), end), n); res.Outcome != sender.Sent {
						t.Errorf("device %d push %d: %v", d, i, res)
					}
				})
				<-turn
			}
			sends.Wait()
		})
	}
	wg.Wait()

	got := srv.arrivals()
	if len(got) != devices*pushes {
		t.Fatalf("%d pushes arrived, want %d", len(got), devices*pushes)
	}
	next := map[string]int{}
	for _, a := range got {
		if a.delivery != next[a.token] {
			t.Fatalf("device %s…: push %d arrived when %d was next: out of the order they were started", a.token[:8], a.delivery, next[a.token])
		}
		next[a.token]++
	}
	if srv.overtaken() == 0 {
		t.Fatal("every answer came in the order of the requests: the test did not pipeline")
	}
}

type arrival struct {
	token    string
	delivery int // the push's index, from its title
	body     []byte
}

var pushIndex = regexp.MustCompile(`push-(\d+)-end`)

func (f *frameAPNs) arrivals() []arrival {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []arrival
	for _, a := range f.got {
		out = append(out, arrival{token: a.token, delivery: a.delivery})
	}
	return out
}

func (f *frameAPNs) overtaken() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.over
}

// frameAPNs is a minimal APNs over HTTP/2 that records requests in the
// order their headers are read from each connection and answers each after
// a random delay of up to 3 ms (so answers overtake each other).
type frameAPNs struct {
	url    string
	client func() *http.Client

	mu   sync.Mutex
	got  []*arrival
	over int // answers written before an earlier request's
}

func newFrameAPNs(t *testing.T) *frameAPNs {
	// Borrow httptest's certificate.
	ts := httptest.NewUnstartedServer(nil)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	cert, roots := ts.TLS.Certificates, x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &frameAPNs{url: "https://" + ln.Addr().String()}
	f.client = func() *http.Client {
		return &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, StrictMaxConcurrentStreams: true}}
	}
	cfg := &tls.Config{Certificates: cert, NextProtos: []string{http2.NextProtoTLS}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go f.serve(tls.Server(c, cfg))
		}
	}()
	return f
}

func (f *frameAPNs) serve(c *tls.Conn) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	var wmu sync.Mutex
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	henc := hpack.NewEncoder(&hbuf)
	write := func(w func() error) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = w()
	}
	write(func() error { return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}) })
	var answered uint32 // highest stream answered, under wmu
	bodies := map[uint32]*arrival{}
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return
		}
		var end uint32
		switch frame := frame.(type) {
		case *http2.SettingsFrame:
			if !frame.IsAck() {
				write(fr.WriteSettingsAck)
			}
		case *http2.MetaHeadersFrame:
			// Recorded at its headers; its index is read from its body.
			a := &arrival{token: strings.TrimPrefix(frame.PseudoValue("path"), "/3/device/"), delivery: -1}
			f.mu.Lock()
			f.got = append(f.got, a)
			f.mu.Unlock()
			bodies[frame.StreamID] = a
			if frame.StreamEnded() {
				end = frame.StreamID
			}
		case *http2.DataFrame:
			if n := frame.Header().Length; n > 0 {
				write(func() error { return fr.WriteWindowUpdate(0, n) })
				write(func() error { return fr.WriteWindowUpdate(frame.StreamID, n) })
			}
			if a := bodies[frame.StreamID]; a != nil {
				a.body = append(a.body, frame.Data()...)
			}
			if frame.StreamEnded() {
				end = frame.StreamID
			}
		}
		if end == 0 {
			continue
		}
		if a := bodies[end]; a != nil {
			delete(bodies, end)
			if m := pushIndex.FindSubmatch(a.body); m != nil {
				f.mu.Lock()
				a.delivery, _ = strconv.Atoi(string(m[1]))
				f.mu.Unlock()
			}
		}
		time.AfterFunc(time.Duration(rand.IntN(3000))*time.Microsecond, func() {
			write(func() error {
				if end < answered {
					f.mu.Lock()
					f.over++
					f.mu.Unlock()
				}
				answered = max(answered, end)
				hbuf.Reset()
				henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: end, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
			})
		})
	}
}

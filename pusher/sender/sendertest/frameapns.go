package sendertest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FrameAPNs is a minimal APNs for order tests: HTTP/2 over TLS, each
// connection's frames read in order by one goroutine, so it sees a
// connection's requests in the order they arrived, which FakeAPNs
// (net/http's server, a handler per stream) cannot show: its handlers race.
// Every request is answered 200, after the delay its OnRequest asked for,
// so answers may overtake each other.
type FrameAPNs struct {
	url      string
	rootsPEM []byte
	roots    *x509.CertPool

	pending   atomic.Int64 // requests received, not yet answered
	overtaken atomic.Int64 // answers written after a later request's
}

// FrameRequest is one complete request a FrameAPNs received.
type FrameRequest struct {
	Token         string // from the path
	Authorization string
	Body          []byte
}

// NewFrameAPNs starts a FrameAPNs on loopback; it stops when t ends.
// onRequest is called with each complete request (its last frame read), on
// its connection's reader, so in the order of the connection's requests;
// it returns how long to wait before answering.
func NewFrameAPNs(t testing.TB, onRequest func(FrameRequest) time.Duration) *FrameAPNs {
	t.Helper()
	// httptest's certificate (127.0.0.1), borrowed.
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	certs, cert := ts.TLS.Certificates, ts.Certificate()
	ts.Close()
	f := &FrameAPNs{rootsPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), roots: x509.NewCertPool()}
	f.roots.AddCert(cert)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = "https://" + ln.Addr().String()
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	cfg := &tls.Config{Certificates: certs, NextProtos: []string{http2.NextProtoTLS}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go f.serve(tls.Server(c, cfg), onRequest)
		}
	}()
	return f
}

// URL is the endpoint to give the APNs sender (Options.Endpoint,
// PUSHGO_APNS_ENDPOINT).
func (f *FrameAPNs) URL() string { return f.url }

// RootsPEM is the certificate that signs the server's, PEM-encoded (for a
// process: SSL_CERT_FILE).
func (f *FrameAPNs) RootsPEM() []byte { return f.rootsPEM }

// NewClient returns a client with a transport of its own that keeps to one
// connection, as the APNs sender's own transports do (the APNs sender's
// Options.NewHTTPClient).
func (f *FrameAPNs) NewClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, StrictMaxConcurrentStreams: true}}
}

// Pending is the number of requests received and not yet answered.
func (f *FrameAPNs) Pending() int64 { return f.pending.Load() }

// Overtaken is the number of answers written after the answer of a later
// request on the same connection.
func (f *FrameAPNs) Overtaken() int64 { return f.overtaken.Load() }

func (f *FrameAPNs) serve(c *tls.Conn, onRequest func(FrameRequest) time.Duration) {
	defer c.Close()
	br := bufio.NewReader(c)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	var (
		wmu      sync.Mutex // the framer's writes, and answered
		hbuf     bytes.Buffer
		answered uint32 // the highest stream answered
	)
	fr := http2.NewFramer(c, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	henc := hpack.NewEncoder(&hbuf)
	write := func(w func() error) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = w()
	}
	write(func() error { return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1000}) })
	streams := map[uint32]*FrameRequest{}
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return // the client went away
		}
		var ended uint32
		switch fm := frame.(type) {
		case *http2.SettingsFrame:
			if !fm.IsAck() {
				write(fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !fm.IsAck() {
				write(func() error { return fr.WritePing(true, fm.Data) })
			}
		case *http2.MetaHeadersFrame:
			req := &FrameRequest{Token: strings.TrimPrefix(fm.PseudoValue("path"), "/3/device/")}
			for _, h := range fm.RegularFields() {
				if h.Name == "authorization" {
					req.Authorization = h.Value
				}
			}
			streams[fm.StreamID] = req
			if fm.StreamEnded() {
				ended = fm.StreamID
			}
		case *http2.DataFrame:
			if n := fm.Header().Length; n > 0 {
				write(func() error {
					if err := fr.WriteWindowUpdate(0, n); err != nil {
						return err
					}
					return fr.WriteWindowUpdate(fm.StreamID, n)
				})
			}
			if req := streams[fm.StreamID]; req != nil {
				req.Body = append(req.Body, fm.Data()...)
			}
			if fm.StreamEnded() {
				ended = fm.StreamID
			}
		case *http2.RSTStreamFrame:
			delete(streams, fm.StreamID)
		}
		req := streams[ended]
		if ended == 0 || req == nil {
			continue
		}
		delete(streams, ended)
		f.pending.Add(1) // before onRequest: a request it recorded is pending until answered
		time.AfterFunc(onRequest(*req), func() {
			defer f.pending.Add(-1)
			write(func() error {
				if ended < answered {
					f.overtaken.Add(1)
				}
				answered = max(answered, ended)
				hbuf.Reset()
				henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				henc.WriteField(hpack.HeaderField{Name: "apns-id", Value: "00000000-0000-0000-0000-000000000000"})
				return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: ended, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
			})
		})
	}
}

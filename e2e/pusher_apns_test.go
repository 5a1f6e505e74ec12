package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// apnsProvider is what the pusher processes need to send to the recorder's
// APNs fronts: a token-auth key and the root that signs the fronts'
// certificate (SSL_CERT_FILE: Go's system roots on Linux).
type apnsProvider struct {
	env   []string // PUSHGO_APNS_* and SSL_CERT_FILE, without the endpoint
	certs []tls.Certificate
}

const apnsTopic = "dev.pushgo.e2e"

func newAPNsProvider(t *testing.T) *apnsProvider {
	t.Helper()
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "AuthKey.p8")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// httptest's certificate (127.0.0.1), borrowed for the fronts.
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	certs := ts.TLS.Certificates
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	return &apnsProvider{certs: certs, env: []string{
		"PUSHGO_APNS_KEY_FILE=" + keyFile, "PUSHGO_APNS_KEY_ID=E2EKEY1234", "PUSHGO_APNS_TEAM_ID=E2ETEAM123",
		"PUSHGO_APNS_TOPIC=" + apnsTopic, "SSL_CERT_FILE=" + roots, "SSL_CERT_DIR=" + dir,
	}}
}

// apnsFront starts a minimal APNs for replica: HTTP/2 over TLS, each
// connection's frames read in order by one goroutine, so a request is
// recorded, in the recorder's one order across every replica, when its
// last frame arrives: the order the provider received them in, which an
// HTTP/2 server running a handler per stream cannot show (its handlers
// race). Each request is answered 200 after the recorder's random delay,
// out of order, so a replica always has pushes in flight. It returns the
// endpoint (PUSHGO_APNS_ENDPOINT).
func (r *pushRecorder) apnsFront(t *testing.T, replica int, p *apnsProvider) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		connsMu sync.Mutex
		conns   []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
	})
	cfg := &tls.Config{Certificates: p.certs, NextProtos: []string{http2.NextProtoTLS}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			go r.serveAPNs(tls.Server(c, cfg), replica)
		}
	}()
	return "https://" + ln.Addr().String()
}

// apnsStream is a request being received by an APNs front.
type apnsStream struct {
	token, auth string
	body        []byte
}

func (r *pushRecorder) serveAPNs(c *tls.Conn, replica int) {
	defer c.Close()
	br := bufio.NewReader(c)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	var (
		wmu  sync.Mutex
		hbuf bytes.Buffer
	)
	fr := http2.NewFramer(c, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	henc := hpack.NewEncoder(&hbuf)
	write := func(f func() error) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = f()
	}
	write(func() error {
		return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1000})
	})
	streams := map[uint32]*apnsStream{}
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return // the sender went away (killed, or the test ended)
		}
		var ended uint32
		switch f := frame.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				write(fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				write(func() error { return fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			st := &apnsStream{token: strings.TrimPrefix(f.PseudoValue("path"), "/3/device/")}
			for _, h := range f.RegularFields() {
				if h.Name == "authorization" {
					st.auth = h.Value
				}
			}
			streams[f.StreamID] = st
			if f.StreamEnded() {
				ended = f.StreamID
			}
		case *http2.DataFrame:
			if n := f.Header().Length; n > 0 {
				write(func() error {
					if err := fr.WriteWindowUpdate(0, n); err != nil {
						return err
					}
					return fr.WriteWindowUpdate(f.StreamID, n)
				})
			}
			if st := streams[f.StreamID]; st != nil {
				st.body = append(st.body, f.Data()...)
			}
			if f.StreamEnded() {
				ended = f.StreamID
			}
		case *http2.RSTStreamFrame:
			delete(streams, f.StreamID)
		}
		st := streams[ended]
		if ended == 0 || st == nil {
			continue
		}
		delete(streams, ended)
		var body struct {
			DeliveryID string `json:"delivery_id"`
			OpID       string `json:"op_id"`
		}
		_ = json.Unmarshal(st.body, &body) // a body that does not decode is a push the checks find wrong
		r.mu.Lock()
		r.pushes = append(r.pushes, recordedPush{Order: len(r.pushes), Replica: replica, At: time.Now(), Token: st.token,
			DeliveryID: body.DeliveryID, OpID: body.OpID, APNs: true, Authorized: strings.HasPrefix(st.auth, "bearer ")})
		delay := r.lo + time.Duration(r.rng.Int64N(int64(r.hi-r.lo)+1))
		r.mu.Unlock()
		r.inFlight.Add(1)
		time.AfterFunc(delay, func() {
			defer r.inFlight.Add(-1)
			write(func() error {
				hbuf.Reset()
				henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				henc.WriteField(hpack.HeaderField{Name: "apns-id", Value: "00000000-0000-0000-0000-000000000000"})
				return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: ended, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
			})
		})
	}
}

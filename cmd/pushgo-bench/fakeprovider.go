package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"hash/maphash"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// fakeProvider is the delivery phases' push provider: a counting stand-in
// for APNs (TLS, HTTP/2, POST /3/device/{token}) and FCM (plain HTTP,
// POST /v1/projects/{project}/messages:send) on loopback. It answers 200
// after a fixed, settable latency and records, for each request, when it
// arrived and the operation's acceptance time carried in the push data
// ("ingested_at", ms), so the accept-to-provider latency is measured where
// the provider sees the push. It keeps no bodies (sendertest's fakes keep
// every request, which is what a conformance test wants and a 200,000-push
// run does not).
//
// The fake APNs' certificate (self-signed, its own root) names 127.0.0.1
// and Apple's APNs hosts, and its listener also takes connections handed to
// it by a CONNECT tunnel (handOff): so a server that can only reach Apple's
// hosts through a proxy, such as gorush, reaches this fake when it trusts
// the certificate (gorush.go).
type fakeProvider struct {
	apns    *apnsServer // fakeapns.go; its listener also takes tunnelled connections
	fcm     *httptest.Server
	latency atomic.Int64 // ns
	rec     atomic.Pointer[arrivals]
	fcmSeq  atomic.Int64
}

// arrivals is what the fake received since the last reset.
type arrivals struct {
	n  atomic.Int64 // distinct deliveries (delivery id, device token) received
	mu sync.Mutex
	at []int64 // arrival, unix ns
	// accepted is the operation's accepted_at (ms) of the same request.
	accepted []int64
	// seen holds a 64-bit hash of each delivery (delivery id and token),
	// not the strings: a map without pointers is not scanned by the
	// garbage collector (a million string keys made every collection
	// mark them).
	seen   map[uint64]struct{}
	dups   int64 // a delivery id received again for a device (a retry: at least once)
	bad    int64 // a request without a delivery id or ingested_at
	fromMs int64
	stale  int64 // pushes of operations accepted before fromMs
}

// apnsMaxStreams is the concurrent-stream limit the fake advertises, as
// APNs does (1,000 per connection).
const apnsMaxStreams = 1000

func newFakeProvider() (*fakeProvider, error) {
	f := &fakeProvider{}
	f.reset(0, 0)
	var err error
	if f.apns, err = newAPNsServer(f); err != nil {
		return nil, err
	}
	fm := http.NewServeMux()
	fm.HandleFunc("POST /v1/projects/{rest...}", f.serveFCM)
	f.fcm = httptest.NewUnstartedServer(fm)
	f.fcm.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.fcm.Start()
	return f, nil
}

// apnsSenderClient is the HTTP client sideshow/apns2 builds for production
// (x/net HTTP/2, 15 s read-idle ping, 60 s client timeout) as the APNs
// sender sets it up (one connection: a full one makes a request wait for a
// stream) with roots as its only roots, and its transport.
func apnsSenderClient(roots *x509.CertPool) (*http.Client, *http2.Transport) {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ReadIdleTimeout: 15 * time.Second,
		StrictMaxConcurrentStreams: true}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, tr
}

func (f *fakeProvider) apnsURL() string     { return f.apns.url }
func (f *fakeProvider) fcmEndpoint() string { return f.fcm.URL + "/v1" }

func (f *fakeProvider) close() {
	f.apns.close()
	f.fcm.Close()
}

// reset starts a new record of the pushes of operations accepted from
// fromMs on (later pushes of earlier operations are counted as stale) and
// sets the latency of the next answers.
func (f *fakeProvider) reset(latency time.Duration, fromMs int64) *arrivals {
	a := &arrivals{seen: map[uint64]struct{}{}, fromMs: fromMs}
	f.rec.Store(a)
	f.latency.Store(int64(latency))
	return a
}

// deliverySeed seeds the hashes of the deliveries the fake has seen.
var deliverySeed = maphash.MakeSeed()

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// serveFCM answers one FCM send (the token is in the body: one delivery id
// per device) after the fake's latency.
func (f *fakeProvider) serveFCM(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UnixNano()
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(r.Body)
	if err == nil {
		f.rec.Load().record(now, buf.Bytes(), "")
	}
	bodyPool.Put(buf)
	if err != nil {
		return
	}
	if d := time.Duration(f.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done(): // abandoned by the sender: no answer
			t.Stop()
			return
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	io.WriteString(w, `{"name":"projects/pushgo-bench/messages/`+strconv.FormatInt(f.fcmSeq.Add(1), 10)+`"}`)
}

// record notes one request: the data keys are flat strings in both
// providers' bodies (APNs beside aps, FCM in message.data). A delivery is
// its delivery id and the device token of an APNs request's path: the
// gateway's ids name the device already, and gorush sends one payload
// (one id) to many tokens (gorush.go).
func (a *arrivals) record(at int64, body []byte, token string) {
	id, ok1 := jsonString(body, "delivery_id")
	acc, ok2 := jsonString(body, "ingested_at")
	ms, err := strconv.ParseInt(string(acc), 10, 64)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok1 || !ok2 || err != nil {
		a.bad++
		return
	}
	if ms < a.fromMs {
		a.stale++
		return
	}
	var h maphash.Hash
	h.SetSeed(deliverySeed)
	h.Write(id)
	h.WriteByte('/')
	h.WriteString(token)
	key := h.Sum64()
	if _, dup := a.seen[key]; dup {
		a.dups++
		return
	}
	a.seen[key] = struct{}{}
	a.at = append(a.at, at)
	a.accepted = append(a.accepted, ms)
	a.n.Add(1)
}

// jsonString finds "key":"value" in b and returns value (no escapes: the
// keys read here are ids and digits).
func jsonString(b []byte, key string) ([]byte, bool) {
	pat := make([]byte, 0, len(key)+5)
	pat = append(pat, '"')
	pat = append(pat, key...)
	pat = append(pat, `":"`...)
	i := bytes.Index(b, pat)
	if i < 0 {
		return nil, false
	}
	rest := b[i+len(pat):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// arrivalStats summarises a record: when the first and the last push
// arrived, the accept-to-provider latencies (arrival - accepted_at) of the
// pushes accepted at or after fromMs, sorted, and the rate between the
// 10th and the 90th percentile arrival (the steady rate, without the
// ramp-up and the tail).
type arrivalStats struct {
	n, dups, bad, stale int64
	first, last         time.Time
	lat                 []time.Duration
	steady              float64
	// tail: the pushes at or above the p99 of lat, each from its
	// operation's acceptance (ms precision) to its arrival, in arrival order.
	tail []tailPoint
}

func (a *arrivals) stats(fromMs int64) arrivalStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := arrivalStats{n: int64(len(a.at)), dups: a.dups, bad: a.bad, stale: a.stale}
	if len(a.at) == 0 {
		return s
	}
	at := slices.Clone(a.at)
	slices.Sort(at)
	s.first, s.last = time.Unix(0, at[0]), time.Unix(0, at[len(at)-1])
	if n := len(at); n >= 10 {
		lo, hi := at[n/10], at[n*9/10]
		if hi > lo {
			s.steady = float64(n*9/10-n/10) / time.Duration(hi-lo).Seconds()
		}
	}
	s.lat = make([]time.Duration, 0, len(a.at))
	for i, t := range a.at {
		if a.accepted[i] >= fromMs {
			s.lat = append(s.lat, time.Duration(t-a.accepted[i]*int64(time.Millisecond)))
		}
	}
	slices.Sort(s.lat)
	p99 := percentile(s.lat, 0.99)
	for i, t := range a.at {
		if acc := a.accepted[i] * int64(time.Millisecond); a.accepted[i] >= fromMs && time.Duration(t-acc) >= p99 {
			s.tail = append(s.tail, tailPoint{At: acc, Lat: time.Duration(t - acc)})
		}
	}
	return s
}

// apnsHosts are Apple's APNs hosts, which the fake APNs' certificate names
// beside loopback.
var apnsHosts = []string{"api.push.apple.com", "api.sandbox.push.apple.com", "api.development.push.apple.com"}

// fakeAPNsCert is a fresh self-signed certificate (its own root) for
// 127.0.0.1, ::1, localhost and apnsHosts.
func fakeAPNsCert() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("pushgo-bench: fake APNs key: " + err.Error())
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "pushgo-bench fake APNs"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              append([]string{"localhost"}, apnsHosts...),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("pushgo-bench: fake APNs certificate: " + err.Error())
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// apnsCertPEM is the fake APNs' certificate in PEM, for a client's roots.
func (f *fakeProvider) apnsCertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.apns.cert.Raw})
}

// handOff gives the fake APNs a connection accepted elsewhere (a CONNECT
// tunnel's client side): it is served as if accepted by its own listener,
// TLS handshake included.
func (f *fakeProvider) handOff(c net.Conn) error { return f.apns.ln.handOff(c) }

// handOffListener is a listener whose Accept also returns the connections
// handed to it.
type handOffListener struct {
	net.Listener
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandOffListener(l net.Listener) *handOffListener {
	h := &handOffListener{Listener: l, conns: make(chan net.Conn), closed: make(chan struct{})}
	go h.pump()
	return h
}

// pump passes the inner listener's connections to Accept until either is
// closed.
func (h *handOffListener) pump() {
	for {
		c, err := h.Listener.Accept()
		if err != nil {
			h.Close()
			return
		}
		if h.handOff(c) != nil {
			c.Close()
			return
		}
	}
}

func (h *handOffListener) handOff(c net.Conn) error {
	select {
	case h.conns <- c:
		return nil
	case <-h.closed:
		return net.ErrClosed
	}
}

func (h *handOffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handOffListener) Close() error {
	err := net.ErrClosed
	h.once.Do(func() {
		close(h.closed)
		err = h.Listener.Close()
	})
	return err
}

package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// The delivery phases' fake provider (fakeprovider.go) runs in a process of
// its own: this binary started again with roleEnv=provider. A provider is
// the far end of the harness, like the load generator: in the gateway's
// process its TLS and HTTP/2 serving took a fifth of the CPU of the
// latency row and shared the gateway's scheduler and garbage collector,
// while gorush, measured against the same fake, had it in another process.
// Out of process, both systems face it alike, and this process's CPU and
// profiles are the gateway's.
//
// The process writes one line, its providerHello (the fake's addresses and
// certificate, the CONNECT proxy gorush reaches it through, and a control
// address), then serves until its standard input closes (the parent ends
// or dies). The control API, on loopback, HTTP:
//
//	POST /reset?latency=D&from=MS  a new record, answers after D
//	GET  /wait?want=N&timeout=D    until N pushes are recorded or D passed; {"n":…}
//	GET  /stats?from=MS            the record's providerStats
//	GET  /tunnels                  CONNECT tunnels opened so far; {"n":…}
const roleProvider = "provider"

// providerHello is the provider process's first line.
type providerHello struct {
	PID     int    `json:"pid"`
	APNs    string `json:"apns"`    // the fake APNs' base URL (TLS, HTTP/2)
	FCM     string `json:"fcm"`     // the fake FCM's endpoint (…/v1)
	Proxy   string `json:"proxy"`   // host:port of the CONNECT proxy to the fake APNs
	Control string `json:"control"` // the control API's base URL
	CertPEM string `json:"cert"`    // the fake APNs' certificate, its own root
}

// providerStats is arrivalStats on the wire: times in unix ns, latencies
// in ns, sorted.
type providerStats struct {
	N      int64       `json:"n"`
	Dups   int64       `json:"dups"`
	Bad    int64       `json:"bad"`
	Stale  int64       `json:"stale"`
	First  int64       `json:"first"`
	Last   int64       `json:"last"`
	Lat    []int64     `json:"lat"`
	Steady float64     `json:"steady"`
	Tail   []tailPoint `json:"tail,omitempty"`
}

func (s arrivalStats) wire() providerStats {
	w := providerStats{N: s.n, Dups: s.dups, Bad: s.bad, Stale: s.stale, Steady: s.steady, Lat: make([]int64, len(s.lat)), Tail: s.tail}
	if s.n > 0 {
		w.First, w.Last = s.first.UnixNano(), s.last.UnixNano()
	}
	for i, d := range s.lat {
		w.Lat[i] = int64(d)
	}
	return w
}

func (w providerStats) stats() arrivalStats {
	s := arrivalStats{n: w.N, dups: w.Dups, bad: w.Bad, stale: w.Stale, steady: w.Steady, lat: make([]time.Duration, len(w.Lat)), tail: w.Tail}
	if w.N > 0 {
		s.first, s.last = time.Unix(0, w.First), time.Unix(0, w.Last)
	}
	for i, d := range w.Lat {
		s.lat[i] = time.Duration(d)
	}
	return s
}

// runProviderProcess is the provider process: it serves the fake, its
// proxy and the control API until stdin closes.
func runProviderProcess(stdin io.Reader, stdout io.Writer) int {
	f, err := newFakeProvider()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo-bench provider:", err)
		return 1
	}
	defer f.close()
	px, err := newAPNsProxy(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo-bench provider:", err)
		return 1
	}
	defer px.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo-bench provider:", err)
		return 1
	}
	srv := &http.Server{Handler: providerControl(f, px), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	hello := providerHello{PID: os.Getpid(), APNs: f.apnsURL(), FCM: f.fcmEndpoint(), Proxy: px.addr(),
		Control: "http://" + ln.Addr().String(), CertPEM: string(f.apnsCertPEM())}
	if err := json.NewEncoder(stdout).Encode(hello); err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, stdin) // until the parent closes it, or dies
	return 0
}

// providerControl is the control API of a provider process.
func providerControl(f *fakeProvider, px *apnsProxy) http.Handler {
	count := func(w http.ResponseWriter, n int64) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n":%d}`, n)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		lat, err1 := time.ParseDuration(r.URL.Query().Get("latency"))
		from, err2 := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.reset(lat, from)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		want, err1 := strconv.ParseInt(r.URL.Query().Get("want"), 10, 64)
		limit, err2 := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a := f.rec.Load()
		// A millisecond's poll in this process: cheaper than a request
		// per poll from the gateway's.
		deadline := time.Now().Add(limit)
		for a.n.Load() < want && time.Now().Before(deadline) && r.Context().Err() == nil {
			time.Sleep(time.Millisecond)
		}
		count(w, a.n.Load())
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		from, err := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.rec.Load().stats(from).wire())
	})
	mux.HandleFunc("GET /tunnels", func(w http.ResponseWriter, r *http.Request) { count(w, px.tunnels.Load()) })
	return mux
}

// providerProc is a started provider process, as the parent drives it.
type providerProc struct {
	*childProc
	hello  providerHello
	ctl    *http.Client
	roots  *x509.CertPool
	trMu   sync.Mutex
	apnsTr []*http2.Transport // the APNs sender's transports, closed with the process
}

// providerStartLimit bounds a provider process's start (until its hello).
const providerStartLimit = 30 * time.Second

// startProviderProc starts a provider process and reads its hello.
func startProviderProc(ctx context.Context) (_ *providerProc, err error) {
	c, err := startChild(roleProvider)
	if err != nil {
		return nil, fmt.Errorf("provider process: %w", err)
	}
	p := &providerProc{childProc: c, ctl: &http.Client{Timeout: deliveryWait + time.Minute}}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	line := make(chan []byte, 1)
	go func() {
		defer c.stdout.Close()
		l, _ := bufio.NewReader(c.stdout).ReadBytes('\n')
		line <- l
		_, _ = io.Copy(io.Discard, c.stdout)
	}()
	select {
	case l := <-line:
		if err := json.Unmarshal(l, &p.hello); err != nil {
			return nil, fmt.Errorf("provider process: its hello %q: %w", l, err)
		}
	case <-time.After(providerStartLimit):
		return nil, fmt.Errorf("provider process: no hello within %s", providerStartLimit)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM([]byte(p.hello.CertPEM)) {
		return nil, errors.New("provider process: its certificate does not parse")
	}
	return p, nil
}

func (p *providerProc) apnsURL() string     { return p.hello.APNs }
func (p *providerProc) fcmEndpoint() string { return p.hello.FCM }
func (p *providerProc) proxyAddr() string   { return p.hello.Proxy }
func (p *providerProc) apnsCertPEM() []byte { return []byte(p.hello.CertPEM) }

// apnsClient is an HTTP client of the APNs sender trusting the fake
// (apnsSenderClient).
func (p *providerProc) apnsClient() *http.Client {
	c, tr := apnsSenderClient(p.roots)
	p.trMu.Lock()
	p.apnsTr = append(p.apnsTr, tr)
	p.trMu.Unlock()
	return c
}

// cpu is the provider process's CPU time so far (0 where /proc is not).
func (p *providerProc) cpu() time.Duration {
	d, err := procCPU(p.hello.PID)
	if err != nil {
		return 0
	}
	return d
}

// close ends the process and the sender's connections to it.
func (p *providerProc) close() {
	p.trMu.Lock()
	for _, tr := range p.apnsTr {
		tr.CloseIdleConnections()
	}
	p.trMu.Unlock()
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// call makes one control request and decodes its JSON answer into out
// (nil: none expected).
func (p *providerProc) call(ctx context.Context, method, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, p.hello.Control+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.ctl.Do(req)
	if err != nil {
		return fmt.Errorf("provider process %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("provider process %s: %s %s", path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// tunnels is the CONNECT tunnels the proxy opened so far.
func (p *providerProc) tunnels(ctx context.Context) int64 {
	var n struct{ N int64 }
	if p.call(ctx, http.MethodGet, "/tunnels", nil, &n) != nil {
		return -1
	}
	return n.N
}

// providerRecord is the record the provider keeps since a reset.
type providerRecord struct {
	p *providerProc
}

// reset starts a new record of the pushes of operations accepted from
// fromMs on and sets the latency of the next answers (fakeProvider.reset).
func (p *providerProc) reset(ctx context.Context, latency time.Duration, fromMs int64) (*providerRecord, error) {
	q := url.Values{"latency": {latency.String()}, "from": {strconv.FormatInt(fromMs, 10)}}
	if err := p.call(ctx, http.MethodPost, "/reset", q, nil); err != nil {
		return nil, err
	}
	return &providerRecord{p: p}, nil
}

// wait waits until the record has want distinct pushes, or deliveryWait.
func (r *providerRecord) wait(ctx context.Context, want int64) error {
	deadline := time.Now().Add(deliveryWait)
	for {
		left := time.Until(deadline)
		var n struct{ N int64 }
		q := url.Values{"want": {strconv.FormatInt(want, 10)}, "timeout": {min(left, 5*time.Second).String()}}
		if err := r.p.call(ctx, http.MethodGet, "/wait", q, &n); err != nil {
			return err
		}
		switch {
		case n.N >= want:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%d of %d notifications not received within %s", want-n.N, want, deliveryWait)
		}
	}
}

// stats summarises the record (arrivals.stats).
func (r *providerRecord) stats(ctx context.Context, fromMs int64) (arrivalStats, error) {
	var w providerStats
	if err := r.p.call(ctx, http.MethodGet, "/stats", url.Values{"from": {strconv.FormatInt(fromMs, 10)}}, &w); err != nil {
		return arrivalStats{}, err
	}
	return w.stats(), nil
}

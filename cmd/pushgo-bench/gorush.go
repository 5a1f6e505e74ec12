package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// gorush beside ours (issue 11's budget: notifications/s at the provider
// latency >= 1.0x gorush tuned, in the same run). With -gorush PATH the
// delivery phase, after its own throughput run at -provider-latency, starts
// the gorush binary at PATH on 127.0.0.1 and sends it the same
// notifications (-delivery-msgs messages, each to the -delivery-devices
// devices' APNs tokens, from -delivery-clients clients) through
// POST /api/push, against the same fake APNs (TLS HTTP/2, the same provider
// process, the same latency); then it stops it. The table gets a side-by-side: each
// system's notifications/s (first request to last push at the fake) and
// CPU per notification (its process's CPU time over the run / the pushes
// received), and ours over gorush.
//
// gorush (sideshow/apns2) sends only to Apple's hosts; its one supported
// detour is core.http_proxy. So gorush gets a CONNECT proxy in the
// provider process (providerproc.go), which hands each tunnel to the fake APNs' listener (no copy: the
// fake serves the tunnelled connection itself), and the fake's certificate,
// which names Apple's hosts, as its only root (SSL_CERT_FILE, SSL_CERT_DIR).
//
// Ours runs in this process beside the bursts' load client; gorush runs in
// its own; the fake in a third for both. So ours' CPU per notification is
// this process's less the load client's share, which is this process's
// CPU per notification during gorush's run (the gateway idle then): both figures
// count the system alone, the gross figure is printed beside. Both count
// the work left after the last push (ours: acknowledgements, receipts and
// their fold), until this process is quiet again (settle).

// gorushOptions are the delivery phase's -gorush flags.
type gorushOptions struct {
	gorushPath    string
	gorushWorkers int // core.worker_num
	gorushPushes  int // ios.max_concurrent_pushes
	gorushTokens  int // device tokens per gorush notification
	gorushVersion string
}

// gorushNotifs is the gorush notifications of one message (one
// POST /api/push): the devices, o.gorushTokens tokens each.
func gorushNotifs(o *deliveryPhase) int {
	return (o.deliveryDevices + o.gorushTokens - 1) / o.gorushTokens
}

func (p *gorushOptions) gorushFlags(fs *flagSet) {
	fs.StringVar(&p.gorushPath, "gorush", "", "delivery phases: run this gorush binary beside ours at -provider-latency (the same fake APNs, notifications and clients) and print the ratio; build it with: go install github.com/appleboy/gorush@v1.22.0")
	fs.IntVar(&p.gorushWorkers, "gorush-workers", 64, "delivery phases: gorush's core.worker_num (with -gorush)")
	fs.IntVar(&p.gorushPushes, "gorush-pushes", 1000, "delivery phases: gorush's ios.max_concurrent_pushes, its APNs requests in flight (with -gorush; gorush's default is 100)")
	fs.IntVar(&p.gorushTokens, "gorush-tokens", 100, "delivery phases: device tokens per gorush notification; one POST /api/push per message carries the notifications to every device (with -gorush)")
}

// gorushSetup checks the flags and reads gorush's version from its build
// information.
func (p *gorushOptions) gorushSetup(provider string) error {
	if p.gorushPath == "" {
		return nil
	}
	switch {
	case provider != providerAPNs:
		return errors.New("-gorush needs -provider apns (gorush is driven through the fake APNs only)")
	case p.gorushWorkers < 1 || p.gorushPushes < 1 || p.gorushTokens < 1:
		return errors.New("-gorush-workers, -gorush-pushes and -gorush-tokens must be at least 1")
	}
	path, err := exec.LookPath(p.gorushPath)
	if err != nil {
		return fmt.Errorf("-gorush: %w", err)
	}
	if p.gorushPath, err = filepath.Abs(path); err != nil {
		return fmt.Errorf("-gorush: %w", err)
	}
	p.gorushVersion = gorushVersion(p.gorushPath)
	return nil
}

// gorushVersion is the gorush module's version in the binary's build
// information: the main module of a go install, a dependency of a wrapper
// module; "" when the binary has none.
func gorushVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	if bi.Main.Path == "github.com/appleboy/gorush" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/appleboy/gorush" {
			return d.Version
		}
	}
	return ""
}

// gorushLabel names gorush's row.
func (p *gorushOptions) gorushLabel() string {
	v := p.gorushVersion
	if v == "" {
		v = "(version unknown)"
	}
	return "gorush " + v + " tuned"
}

func (p *gorushOptions) gorushHeader() string {
	if p.gorushPath == "" {
		return ""
	}
	return fmt.Sprintf("; beside %s (%d workers, %d concurrent pushes)", p.gorushLabel(), p.gorushWorkers, p.gorushPushes)
}

// gorushLimit bounds gorush's start, warm-up and runs, and the waits for a
// quiet process after each of ours' and gorush's runs (settle).
func (p *gorushOptions) gorushLimit(runs int) time.Duration {
	if p.gorushPath == "" {
		return 0
	}
	return time.Minute + 2*deliveryWait + time.Duration(runs)*(deliveryWait+15*time.Second+2*settleMax)
}

// gorushRow is one measured gorush run (medians over -runs).
type gorushRow struct {
	notifs   int64         // pushes received
	sent     int64         // messages accepted (POST /api/push answered 200)
	took     time.Duration // first request to the last arrival
	rate     float64       // notifs / took
	steady   float64       // arrivals/s between the 10th and 90th percentile arrival
	p50, p99 time.Duration // request sent to push at the fake
	cpuPer   time.Duration // gorush's process CPU time per notification, until this process is quiet
	benchPer time.Duration // this process's (load client, idle gateway) per notification
	conns    int64         // APNs connections gorush opened since its start, warm-up included (CONNECT tunnels)
	dups     int64
	errors   int64
	errKinds map[string]int
	cpu      cpuUse // this process, and the others less gorush
	gorush   float64
}

func (gorushRow) columns() []column[gorushRow] {
	return []column[gorushRow]{
		mid(func(r *gorushRow) *int64 { return &r.notifs }),
		mid(func(r *gorushRow) *int64 { return &r.sent }),
		mid(func(r *gorushRow) *time.Duration { return &r.took }),
		mid(func(r *gorushRow) *float64 { return &r.rate }),
		mid(func(r *gorushRow) *float64 { return &r.steady }),
		mid(func(r *gorushRow) *time.Duration { return &r.p50 }),
		mid(func(r *gorushRow) *time.Duration { return &r.p99 }),
		mid(func(r *gorushRow) *time.Duration { return &r.cpuPer }),
		mid(func(r *gorushRow) *time.Duration { return &r.benchPer }),
		mid(func(r *gorushRow) *float64 { return &r.gorush }),
		mid(func(r *gorushRow) *int64 { return &r.conns }),
		sum(func(r *gorushRow) *int64 { return &r.dups }),
		sum(func(r *gorushRow) *int64 { return &r.errors }),
		busiest(func(r *gorushRow) *cpuUse { return &r.cpu }),
		kinds(func(r *gorushRow) *map[string]int { return &r.errKinds }),
	}
}

func (r gorushRow) progress(_ *options, name string, run int) {
	fmt.Fprintf(os.Stderr, "  run %d  %-32s %7d notifs in %8s: %6.0f/s (steady %6.0f/s)  request->provider p50 %s p99 %s  cpu/notif gorush %s, load client %s",
		run+1, name, r.notifs, fmtSecs(r.took), r.rate, r.steady, fmtDur(r.p50), fmtDur(r.p99), fmtMicros(r.cpuPer), fmtMicros(r.benchPer))
	fmt.Fprintf(os.Stderr, "  errors %d dups %d [cpu: gorush %.2f cores, us %.2f, fake provider %.2f, others %.2f of %d]\n",
		r.errors, r.dups, r.gorush, r.cpu.self, r.cpu.provider, r.cpu.others, numCPU())
	for k, v := range r.errKinds {
		fmt.Fprintf(os.Stderr, "         %d x %s\n", v, k)
	}
	if r.cpu.others > 0.25 {
		fmt.Fprintf(os.Stderr, "  warning: other processes used %.2f cores during this phase: the numbers above are disturbed\n", r.cpu.others)
	}
}

// gorushServer is a running gorush and its CONNECT proxy to the fake.
type gorushServer struct {
	o       *deliveryPhase
	fake    *providerProc
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process ended; then waitErr is set
	waitErr error
	base    string // gorush's HTTP API
	client  *http.Client
}

// benchGorush starts gorush, measures it -runs times at -provider-latency
// and stops it.
func (e *deliveryEnv) benchGorush(ctx context.Context, o *deliveryPhase) (gorushRow, error) {
	fmt.Fprintf(os.Stderr, "== %s (%s): the same %d devices x %d messages, fake APNs at %s\n",
		o.gorushLabel(), o.gorushPath, o.deliveryDevices, o.deliveryMsgs, fmtLatency(o.providerLatency))
	g, err := startGorush(ctx, o, e.fake)
	if err != nil {
		return gorushRow{}, fmt.Errorf("gorush: %w", err)
	}
	defer g.stop()
	name := fmt.Sprintf("gorush @%s (%d dev x %d)", fmtLatency(o.providerLatency), o.deliveryDevices, o.deliveryMsgs)
	return repeat(ctx, o.options, name, func(run int) (gorushRow, error) { return g.throughput(ctx, run) })
}

func startGorush(ctx context.Context, o *deliveryPhase, fake *providerProc) (_ *gorushServer, err error) {
	g := &gorushServer{o: o, fake: fake, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			g.stop()
		}
	}()
	if g.dir, err = os.MkdirTemp("", "pushgo-bench-gorush-*"); err != nil {
		return nil, err
	}
	key, err := p8()
	if err != nil {
		return nil, err
	}
	keyPath, roots := filepath.Join(g.dir, "AuthKey_ABC123DEFG.p8"), filepath.Join(g.dir, "roots.pem")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(roots, fake.apnsCertPEM(), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	perMsg := gorushNotifs(o)
	cfg := gorushConfig(port, "http://"+fake.proxyAddr(), keyPath, o.gorushWorkers, o.gorushPushes,
		max(8192, 2*o.deliveryMsgs*perMsg), max(100, perMsg))
	cfgPath := filepath.Join(g.dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	g.logPath = filepath.Join(g.dir, "gorush.log")
	logf, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	g.cmd = exec.CommandContext(ctx, o.gorushPath, "-c", cfgPath)
	g.cmd.Dir = g.dir
	g.cmd.Env = gorushEnv(os.Environ(), roots, g.dir)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.WaitDelay = 5 * time.Second
	if err := startTied(g.cmd); err != nil {
		return nil, err
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	g.base = "http://127.0.0.1:" + strconv.Itoa(port)
	g.client = newHTTPClient(o.deliverySenders)
	if err := g.waitReady(ctx); err != nil {
		return nil, err
	}
	// Warm-up: one notification to the first tokens at no latency, so the
	// measured runs find gorush's APNs connection open (ours' warmed up on
	// the run at 0 ms).
	a, err := fake.reset(ctx, 0, time.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	n := min(o.deliveryDevices, o.gorushTokens)
	body := gorushBody(nil, "warm-up", time.Now().UnixMilli(), n, o.gorushTokens)
	if err := g.push(ctx, body); err != nil {
		return nil, fmt.Errorf("warm-up: %w%s", err, g.logTail())
	}
	if err := a.wait(ctx, int64(n)); err != nil {
		return nil, fmt.Errorf("warm-up: %w (%d APNs connections through the proxy)%s", err, g.fake.tunnels(ctx), g.logTail())
	}
	fmt.Fprintf(os.Stderr, "  gorush ready on %s (pid %d): %d workers, %d concurrent pushes, %d tokens per notification; warm-up pushes arrived\n",
		g.base, g.cmd.Process.Pid, o.gorushWorkers, o.gorushPushes, o.gorushTokens)
	return g, nil
}

// gorushConfig is gorush's configuration: its HTTP API on 127.0.0.1:port,
// the local queue (queue notifications), async (answers once queued, as it
// is deployed), up to perRequest notifications a request, APNs with a p8
// key through proxy, the tuned worker and push counts, access log off
// (gorush would write a line per push), FCM off.
func gorushConfig(port int, proxy, keyPath string, workers, pushes, queue, perRequest int) string {
	return fmt.Sprintf(`core:
  enabled: true
  address: "127.0.0.1"
  port: "%d"
  worker_num: %d
  queue_num: %d
  max_notification: %d
  sync: false
  mode: "release"
  shutdown_timeout: 5
  http_proxy: %q
  pid:
    enabled: false
grpc:
  enabled: false
android:
  enabled: false
huawei:
  enabled: false
ios:
  enabled: true
  key_path: %q
  key_type: "p8"
  key_id: "ABC123DEFG"
  team_id: "TEAM123456"
  production: false
  max_concurrent_pushes: %d
  max_retry: 0
queue:
  engine: "local"
stat:
  engine: "memory"
log:
  format: "string"
  access_log: "stdout"
  access_level: "error"
  error_log: "stderr"
  error_level: "error"
`, port, workers, queue, perRequest, proxy, keyPath, pushes)
}

// gorushEnv is the environment of gorush: this one without proxy, TLS
// root or GORUSH_ settings (gorush's configuration reads GORUSH_*), with
// the fake's certificate as the only root.
func gorushEnv(env []string, roots, dir string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch u := strings.ToUpper(k); {
		case strings.HasPrefix(u, "GORUSH_"), u == "SSL_CERT_FILE", u == "SSL_CERT_DIR",
			u == "HTTP_PROXY", u == "HTTPS_PROXY", u == "NO_PROXY", u == "ALL_PROXY":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "SSL_CERT_FILE="+roots, "SSL_CERT_DIR="+dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits for gorush's /healthz, or its exit.
func (g *gorushServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/healthz", nil)
		if resp, err := g.client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-g.exited:
			return fmt.Errorf("exited before answering /healthz: %v%s", g.waitErr, g.logTail())
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s/healthz within 30s%s", g.base, g.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// apnsProxy is the CONNECT proxy gorush reaches the fake APNs through: it
// runs in the provider process, beside the fake.
type apnsProxy struct {
	fake    *fakeProvider
	ln      net.Listener
	tunnels atomic.Int64
	wg      sync.WaitGroup
}

// newAPNsProxy listens on loopback and serves until close.
func newAPNsProxy(f *fakeProvider) (*apnsProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	px := &apnsProxy{fake: f, ln: ln}
	px.wg.Go(px.serve)
	return px, nil
}

func (px *apnsProxy) addr() string { return px.ln.Addr().String() }

func (px *apnsProxy) close() {
	px.ln.Close()
	px.wg.Wait()
}

// serve accepts CONNECT requests until the proxy is closed.
func (px *apnsProxy) serve() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.wg.Go(func() { px.tunnel(c) })
	}
}

// tunnel answers one CONNECT to an APNs host and hands the connection to
// the fake APNs, which does the TLS handshake gorush expects from Apple.
func (px *apnsProxy) tunnel(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		c.Close()
		return
	}
	if req.Method != http.MethodConnect || !isAPNsAddr(req.Host) {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		c.Close()
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	conn := c
	if br.Buffered() > 0 { // the client did not wait for the answer
		conn = &prereadConn{Conn: c, r: br}
	}
	px.tunnels.Add(1)
	if px.fake.handOff(conn) != nil {
		c.Close()
	}
}

func isAPNsAddr(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port != "443" {
		return false
	}
	for _, h := range apnsHosts {
		if host == h {
			return true
		}
	}
	return false
}

// prereadConn is a connection whose first bytes were read into r.
type prereadConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *prereadConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// push sends one POST /api/push and requires gorush's 200 answer.
func (g *gorushServer) push(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	code, b, err := exchange(ctx, g.client, g.base+"/api/push", "", body)
	switch {
	case err != nil:
		return err
	case code != http.StatusOK || !bytes.Contains(b, []byte(`"success":"ok"`)):
		if len(b) > 200 {
			b = b[:200]
		}
		return fmt.Errorf("/api/push %d %s", code, b)
	}
	return nil
}

// throughput sends every message to every device, as the delivery phase's
// throughput run does, with the fake answering after -provider-latency, and
// times them until the last push arrives.
func (g *gorushServer) throughput(ctx context.Context, run int) (gorushRow, error) {
	o := g.o
	began := time.Now()
	a, err := g.fake.reset(ctx, o.providerLatency, began.UnixMilli())
	if err != nil {
		return gorushRow{}, err
	}
	gcpu0, gerr := procCPU(g.cmd.Process.Pid)
	fake0, cpu0 := g.fake.cpu(), sampleCPU()
	recs := make([]*recorder, o.deliverySenders)
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range o.deliverySenders {
		recs[i] = newRecorder(o.deliveryMsgs/o.deliverySenders + 1)
		wg.Go(func() {
			var buf []byte
			for ctx.Err() == nil {
				m := next.Add(1) - 1
				if m >= int64(o.deliveryMsgs) {
					return
				}
				id := "gorush-" + strconv.Itoa(run) + "-" + strconv.FormatInt(m, 10)
				buf = gorushBody(buf[:0], id, time.Now().UnixMilli(), o.deliveryDevices, o.gorushTokens)
				if err := g.push(ctx, buf); err != nil {
					recs[i].fail(err)
				} else {
					recs[i].ok(0)
				}
			}
		})
	}
	wg.Wait()
	sent := summarize(recs, 0)
	werr := a.wait(ctx, sent.ops*int64(o.deliveryDevices))
	gcpu1, gerr1 := procCPU(g.cmd.Process.Pid)
	fake1, cpu1 := g.fake.cpu(), sampleCPU()
	settle(ctx)
	gcpu2, gerr2 := procCPU(g.cmd.Process.Pid)

	st, err := a.stats(ctx, 0)
	if err != nil {
		return gorushRow{}, err
	}
	r := gorushRow{notifs: st.n, steady: st.steady, dups: st.dups, sent: sent.ops,
		conns: g.fake.tunnels(ctx), errors: sent.errors, errKinds: sent.errKinds}
	if r.errKinds == nil {
		r.errKinds = map[string]int{}
	}
	r.cpu = cpuBetween(cpu0, cpu1).withProvider(fake1-fake0, cpu1.at.Sub(cpu0.at))
	if st.n > 0 {
		r.took = st.last.Sub(began)
		r.rate = float64(st.n) / r.took.Seconds()
		r.benchPer = (cpu1.self - cpu0.self) / time.Duration(st.n)
		if gerr == nil && gerr2 == nil {
			r.cpuPer = (gcpu2 - gcpu0) / time.Duration(st.n)
		}
	}
	if wall := cpu1.at.Sub(cpu0.at).Seconds(); wall > 0 && gerr == nil && gerr1 == nil {
		r.gorush = (gcpu1 - gcpu0).Seconds() / wall
		r.cpu.others = max(r.cpu.others-r.gorush, 0)
	}
	r.p50, r.p99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	if werr != nil {
		r.errors++
		r.errKinds[werr.Error()]++
	}
	if st.bad > 0 {
		r.errors += st.bad
		r.errKinds["push without delivery_id or ingested_at"] += int(st.bad)
	}
	select {
	case <-g.exited:
		return r, fmt.Errorf("gorush exited during the run: %v%s", g.waitErr, g.logTail())
	default:
	}
	return r, nil
}

// gorushBody appends a POST /api/push body: one message to the APNs tokens
// of devices [0, devices), perNotif tokens per notification, the message's
// delivery id and acceptance time (ms) in its data, which gorush puts
// beside aps as the gateway does.
func gorushBody(dst []byte, id string, ms int64, devices, perNotif int) []byte {
	dst = append(dst, `{"notifications":[`...)
	for n := 0; n*perNotif < devices; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"platform":1,"topic":"dev.pushgo.bench","title":"bench message `...)
		dst = append(dst, id...)
		dst = append(dst, `","message":"delivery benchmark: one alert to every subscribed device","data":{"delivery_id":"`...)
		dst = append(dst, id...)
		dst = append(dst, `","ingested_at":"`...)
		dst = strconv.AppendInt(dst, ms, 10)
		dst = append(dst, `"},"tokens":[`...)
		for i := n * perNotif; i < min((n+1)*perNotif, devices); i++ {
			if i > n*perNotif {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, deviceToken(providerAPNs, i)...)
			dst = append(dst, '"')
		}
		dst = append(dst, `]}`...)
	}
	return append(dst, `]}`...)
}

// stop ends gorush (SIGTERM, then SIGKILL after 10 s) and the proxy, and
// removes its directory.
func (g *gorushServer) stop() {
	if g.cmd != nil && g.cmd.Process != nil {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.exited:
			case <-time.After(10 * time.Second):
				_ = g.cmd.Process.Kill()
				<-g.exited
			}
		}
		g.cmd = nil
	}
	if g.client != nil {
		g.client.CloseIdleConnections()
	}
	if g.dir != "" {
		_ = os.RemoveAll(g.dir)
		g.dir = ""
	}
}

// logTail is the end of gorush's output, for an error.
func (g *gorushServer) logTail() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\ngorush's output ends:\n" + string(b)
}

// clockTicks is the unit of /proc's CPU times (USER_HZ).
const clockTicks = 100

// procCPU is a process's user and system CPU time, all its threads, from
// /proc (Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

// parseProcStatCPU reads utime and stime, fields 14 and 15 of
// /proc/PID/stat, counted after the command name's closing parenthesis.
func parseProcStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return time.Duration(ut+st) * (time.Second / clockTicks), nil
}

// sideBySide compares ours' throughput row with gorush's: notifications/s
// over gorush's, ours' CPU per notification net of the load client
// (gorush's run measured its share), and that over gorush's.
func sideBySide(ours deliveryRow, g gorushRow) (rateRatio float64, oursNet time.Duration, cpuRatio float64) {
	if g.rate > 0 {
		rateRatio = ours.rate / g.rate
	}
	oursNet = max(ours.cpuPer+ours.tailPer-g.benchPer, 0)
	if g.cpuPer > 0 {
		cpuRatio = float64(oursNet) / float64(g.cpuPer)
	}
	return rateRatio, oursNet, cpuRatio
}

// printSideBySide prints gorush's row and ours' at the same latency, with
// the ratios (issue 11's budget: ours >= 1.0x gorush's notifications/s).
func printSideBySide(w io.Writer, o *deliveryPhase, ours deliveryRow, g gorushRow) {
	rateRatio, oursNet, cpuRatio := sideBySide(ours, g)
	fmt.Fprintln(w)
	head := fmt.Sprintf("side by side @%s (%d dev x %d)", fmtLatency(o.providerLatency), o.deliveryDevices, o.deliveryMsgs)
	fmt.Fprintf(w, "%-40s %8s %8s %9s %8s %8s %10s   %s\n", head, "notifs", "time", "notifs/s", "p50", "p99", "cpu/notif", "ratio")
	line := func(name string, notifs int64, took time.Duration, rate float64, p50, p99, cpu time.Duration, note string) {
		out := fmt.Sprintf("%-40s %8d %8s %9.0f %8s %8s %10s   %s", name, notifs, fmtSecs(took), rate, fmtDur(p50), fmtDur(p99), fmtMicros(cpu), note)
		fmt.Fprintln(w, strings.TrimRight(out, " "))
	}
	line(o.gorushLabel(), g.notifs, g.took, g.rate, g.p50, g.p99, g.cpuPer, "")
	line("ours", ours.notifs, ours.took, ours.rate, ours.p50, ours.p99, oursNet,
		fmt.Sprintf("%.2fx notifs/s (>= 1.00x: %s), %.2fx cpu/notif", rateRatio, verdict(rateRatio >= 1 && ours.errors == 0 && g.errors == 0), cpuRatio))
	fmt.Fprintf(w, "  gorush: %d workers, %d concurrent pushes, async local queue, access log off; one POST /api/push per message (%d notifications of %d tokens), from %d clients;\n",
		o.gorushWorkers, o.gorushPushes, gorushNotifs(o), o.gorushTokens, o.deliverySenders)
	fmt.Fprintf(w, "    reaches the same fake APNs through core.http_proxy (a CONNECT hand-off, no copy; %d connections since its start), the fake's certificate its only root\n", g.conns)
	fmt.Fprintf(w, "  cpu/notif: process CPU time / notifications received, from the first request until the process is quiet after the last push; ours: this process's\n")
	fmt.Fprintf(w, "    %s to the last push + %s after it, less the load client's share (this process during gorush's run: %s);\n",
		fmtMicros(ours.cpuPer), fmtMicros(ours.tailPer), fmtMicros(g.benchPer))
	fmt.Fprintf(w, "    ours' row is the delivery @%s row above; p50/p99: accept (gorush: request sent) to provider\n", fmtLatency(o.providerLatency))
	if g.dups > 0 {
		fmt.Fprintf(w, "  gorush: %d notifications received twice\n", g.dups)
	}
	if g.cpu.others > 0.25 {
		fmt.Fprintf(w, "  note: gorush ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n", g.cpu.others, numCPU())
	}
}

// settle waits until this process is quiet (under settleCores over a
// settleWindow: the gateway done with what a run left behind), settleMax
// at most, and returns the sample then.
func settle(ctx context.Context) cpuSample {
	deadline := time.Now().Add(settleMax)
	prev := sampleCPU()
	for {
		select {
		case <-ctx.Done():
			return prev
		case <-time.After(settleWindow):
		}
		s := sampleCPU()
		if cpuBetween(prev, s).self < settleCores || s.at.After(deadline) {
			return s
		}
		prev = s
	}
}

const (
	settleWindow = 250 * time.Millisecond
	settleCores  = 0.05
	settleMax    = 30 * time.Second
)

// fmtMicros prints a CPU time per notification in microseconds.
func fmtMicros(d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	us := float64(d) / float64(time.Microsecond)
	if us < 10 {
		return fmt.Sprintf("%.1fµs", us)
	}
	return fmt.Sprintf("%.0fµs", us)
}

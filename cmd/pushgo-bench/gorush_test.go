package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// -gorush takes an executable, makes its path absolute and names the
// version its build information holds; it needs the APNs provider and
// positive tunings. Without it the header and the bound are ours alone.
func TestGorushFlags(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "gorush")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	delivery := func(args ...string) (*deliveryPhase, error) {
		o, err := parseFlags(append([]string{"-phases", "delivery"}, args...))
		if err != nil {
			return nil, err
		}
		return o.phases[0].(*deliveryPhase), nil
	}

	plain, err := delivery()
	if err != nil {
		t.Fatal(err)
	}
	if plain.gorushPath != "" || strings.Contains(plain.header(), "gorush") || plain.gorushLimit(1) != 0 {
		t.Fatalf("without -gorush: path %q, header %q", plain.gorushPath, plain.header())
	}

	p, err := delivery("-gorush", exe, "-gorush-workers", "8")
	if err != nil {
		t.Fatal(err)
	}
	if p.gorushPath != exe || p.gorushWorkers != 8 || p.gorushPushes != 1000 || p.gorushTokens != 100 {
		t.Fatalf("-gorush: %+v", p.gorushOptions)
	}
	if p.gorushVersion != "" || p.gorushLabel() != "gorush (version unknown) tuned" {
		t.Fatalf("a script has no build information: version %q, label %q", p.gorushVersion, p.gorushLabel())
	}
	if h := p.header(); !strings.Contains(h, "20ms provider latency; beside gorush (version unknown) tuned (8 workers, 1000 concurrent pushes); fan-out") {
		t.Fatalf("header %q", h)
	}
	if p.limit() <= plain.limit() {
		t.Fatalf("limit %s with gorush, %s without", p.limit(), plain.limit())
	}

	for _, bad := range [][]string{
		{"-gorush", filepath.Join(dir, "missing")},
		{"-gorush", exe, "-provider", "fcm"},
		{"-gorush", exe, "-gorush-pushes", "0"},
		{"-gorush", exe, "-gorush-tokens", "0"},
	} {
		if _, err := delivery(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// Not the delivery phase: the flag is accepted, not checked.
	if _, err := parseFlags([]string{"-phases", "write", "-gorush", filepath.Join(dir, "missing")}); err != nil {
		t.Errorf("unselected: %v", err)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if v := gorushVersion(self); v != "" {
		t.Errorf("this test's binary is not gorush, version %q", v)
	}
}

// The ratios: ours' notifications/s over gorush's; ours' CPU per
// notification to its last push and after it, less this process's share
// during gorush's run (the fake and the load client), over gorush's.
func TestSideBySide(t *testing.T) {
	us := time.Microsecond
	ours := deliveryRow{notifs: 100_000, took: 35 * time.Second, rate: 2800, p50: 7 * time.Second, p99: 14 * time.Second,
		cpuPer: 520 * us, tailPer: 10 * us}
	g := gorushRow{notifs: 100_000, took: 11 * time.Second, rate: 9000, p50: 2 * time.Second, p99: 5 * time.Second,
		cpuPer: 105 * us, benchPer: 40 * us, conns: 2}
	rate, net, cpu := sideBySide(ours, g)
	if rate < 0.311 || rate > 0.312 || net != 490*us || cpu < 4.66 || cpu > 4.67 {
		t.Fatalf("ratio %.4f, ours net %s, cpu ratio %.4f", rate, net, cpu)
	}
	if r, n, c := sideBySide(deliveryRow{cpuPer: 10 * us}, gorushRow{benchPer: 20 * us}); r != 0 || n != 0 || c != 0 {
		t.Fatalf("nothing measured: %v %v %v", r, n, c)
	}

	o := &deliveryPhase{options: &options{}, deliveryDevices: 10_000, deliveryMsgs: 10, deliverySenders: 16, providerLatency: 20 * time.Millisecond,
		gorushOptions: gorushOptions{gorushWorkers: 64, gorushPushes: 1000, gorushTokens: 100, gorushVersion: "v1.22.0"}}
	var b strings.Builder
	printSideBySide(&b, o, ours, g)
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[1], "side by side @20ms (10000 dev x 10)") {
		t.Fatalf("table:\n%s", b.String())
	}
	fields := func(s string) []string { return strings.Fields(s) }
	if got, want := fields(lines[2]), []string{"gorush", "v1.22.0", "tuned", "100000", "11.0s", "9000", "2000ms", "5000ms", "105µs"}; !slices.Equal(got, want) {
		t.Errorf("gorush row %q, want %q", got, want)
	}
	if got := fields(lines[3]); len(got) < 7 || !slices.Equal(got[:7], []string{"ours", "100000", "35.0s", "2800", "7000ms", "14000ms", "490µs"}) ||
		!strings.HasSuffix(lines[3], "0.31x notifs/s (>= 1.00x: MISSED), 4.67x cpu/notif") {
		t.Errorf("ours row %q", lines[3])
	}
	for _, want := range []string{"64 workers, 1000 concurrent pushes", "(100 notifications of 100 tokens)", "2 connections since its start",
		"520µs to the last push + 10µs after it", "(this process during gorush's run: 40µs)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}

	b.Reset()
	ours.rate = 9500
	printSideBySide(&b, o, ours, g)
	if !strings.Contains(b.String(), "1.06x notifs/s (>= 1.00x: ok)") {
		t.Errorf("faster than gorush:\n%s", b.String())
	}
}

// The delivery table keeps today's text without -gorush and adds the
// side-by-side with it.
func TestDeliveryTableWithGorush(t *testing.T) {
	o := &deliveryPhase{options: &options{}, deliveryProvider: providerAPNs, deliveryDevices: 10_000, deliveryMsgs: 10, fanoutDevices: 10,
		latencyDevices: 10, latencyRate: 5, deliverySenders: 16, providerLatency: 20 * time.Millisecond,
		gorushOptions: gorushOptions{gorushWorkers: 64, gorushPushes: 1000, gorushTokens: 100}}
	d := &deliveryReport{o: o, thrLat: deliveryRow{rate: 100}}
	var b strings.Builder
	d.print(&b)
	if !strings.Contains(b.String(), "for scale: gorush") || strings.Contains(b.String(), "side by side") || len(d.failures()) != 4 {
		t.Fatalf("without gorush:\n%s", b.String())
	}
	d.gorush = &gorushRow{rate: 200, errors: 1, errKinds: map[string]int{"x": 1}}
	b.Reset()
	d.print(&b)
	f := d.failures()
	if strings.Contains(b.String(), "for scale: gorush") || !strings.Contains(b.String(), "side by side") ||
		len(f) != 5 || f[4].errors != 1 || !strings.Contains(f[4].label, "gorush") {
		t.Fatalf("with gorush: %+v\n%s", f, b.String())
	}
}

// /proc/PID/stat: utime and stime, in clock ticks, after a command name
// that may hold spaces and parentheses.
func TestProcCPU(t *testing.T) {
	line := []byte("4242 (go rush) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 0 0\n")
	d, err := parseProcStatCPU(line)
	if err != nil || d != 3250*time.Millisecond {
		t.Fatalf("%s, %v", d, err)
	}
	for _, bad := range []string{"4242 no name", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 ten 11"} {
		if _, err := parseProcStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// One POST /api/push body carries a message to every device: the tokens of
// the delivery phase's devices, perNotif a notification, the delivery id
// and acceptance time in the data gorush puts beside aps.
func TestGorushBody(t *testing.T) {
	var req struct {
		Notifications []struct {
			Platform int               `json:"platform"`
			Topic    string            `json:"topic"`
			Title    string            `json:"title"`
			Message  string            `json:"message"`
			Data     map[string]string `json:"data"`
			Tokens   []string          `json:"tokens"`
		} `json:"notifications"`
	}
	b := gorushBody([]byte("stale"), "gorush-0-3", 1234, 25, 10)
	if err := json.Unmarshal(b[len("stale"):], &req); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(req.Notifications) != 3 {
		t.Fatalf("%d notifications", len(req.Notifications))
	}
	var tokens []string
	for _, n := range req.Notifications {
		if n.Platform != 1 || n.Topic == "" || n.Message == "" || n.Data["delivery_id"] != "gorush-0-3" || n.Data["ingested_at"] != "1234" {
			t.Fatalf("notification %+v", n)
		}
		tokens = append(tokens, n.Tokens...)
	}
	if len(tokens) != 25 || tokens[0] != deviceToken(providerAPNs, 0) || tokens[24] != deviceToken(providerAPNs, 24) || len(req.Notifications[2].Tokens) != 5 {
		t.Fatalf("tokens %v", tokens)
	}

	cfg := gorushConfig(8088, "http://127.0.0.1:9", "/k.p8", 64, 1000, 8192, 100)
	for _, want := range []string{`port: "8088"`, "worker_num: 64", "queue_num: 8192", "max_notification: 100", `http_proxy: "http://127.0.0.1:9"`,
		"max_concurrent_pushes: 1000", `key_path: "/k.p8"`, `address: "127.0.0.1"`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config has no %q:\n%s", want, cfg)
		}
	}
	env := gorushEnv([]string{"PATH=/bin", "GORUSH_CORE_PORT=1", "https_proxy=x", "SSL_CERT_FILE=/etc/x"}, "/d/roots.pem", "/d")
	if !slices.Equal(env, []string{"PATH=/bin", "SSL_CERT_FILE=/d/roots.pem", "SSL_CERT_DIR=/d"}) {
		t.Errorf("env %v", env)
	}
}

// The way gorush reaches the fake: an HTTP/2 client configured as gorush's
// APNs client with core.http_proxy (net/http with the proxy, HTTP/2
// configured, system roots: here the fake's certificate) asks the provider
// process's proxy for Apple's host and gets the fake APNs, which counts one
// delivery per (delivery id, token). Other hosts are refused.
func TestGorushTunnel(t *testing.T) {
	ctx := context.Background()
	p, err := startProviderProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.apnsCertPEM()) {
		t.Fatal("fake certificate PEM")
	}
	proxy, _ := url.Parse("http://" + p.proxyAddr())
	tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: roots}}
	if _, err := http2.ConfigureTransports(tr); err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	a, err := p.reset(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"aps":{"alert":{"title":"t"}},"delivery_id":"gorush-0-0","ingested_at":"` + itoa(time.Now().UnixMilli()) + `"}`)
	for _, token := range []string{"aa", "bb", "aa"} { // one id to two tokens, the third a duplicate
		resp, err := client.Post("https://api.sandbox.push.apple.com/3/device/"+token, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("%d %s", resp.StatusCode, resp.Proto)
		}
	}
	if st, err := a.stats(ctx, 0); err != nil || st.n != 2 || st.dups != 1 || st.bad != 0 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if n := p.tunnels(ctx); n != 1 {
		t.Fatalf("%d tunnels, want one HTTP/2 connection", n)
	}
	if _, err := client.Get("https://example.com/"); err == nil {
		t.Fatal("a CONNECT to another host was tunnelled")
	}
	if p.tunnels(ctx) != 1 {
		t.Fatal("refused CONNECT counted")
	}
}

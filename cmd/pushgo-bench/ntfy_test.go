package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
)

// ntfyStandInEnv makes the test binary a stand-in for ntfy (TestMain): it
// takes ntfy's command line, reads the configuration file as ntfy would
// (listen-http and the cache settings), answers GET /v1/health and JSON
// publishes the way ntfy does, and on SIGTERM appends what it saw to the
// file the variable names.
const ntfyStandInEnv = "PUSHGO_BENCH_NTFY_STANDIN"

// standInRecord is what one stand-in run saw.
type standInRecord struct {
	Args      []string          `json:"args"`
	Config    map[string]string `json:"config"`
	NtfyEnv   []string          `json:"ntfy_env"` // NTFY_* variables it was given
	Publishes int               `json:"publishes"`
	Sizes     map[int]int       `json:"sizes"`
	Topics    map[string]int    `json:"topics"`
	Bad       []string          `json:"bad"`
}

func ntfyStandIn(args []string) int {
	rec := standInRecord{Args: args, Config: map[string]string{}, Sizes: map[int]int{}, Topics: map[string]int{}}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "ntfy stand-in:", err)
		return 1
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NTFY_") {
			rec.NtfyEnv = append(rec.NtfyEnv, kv)
		}
	}
	if len(args) != 3 || args[0] != "serve" || args[1] != "--config" {
		return fail(fmt.Errorf("command line %q, want serve --config FILE", args))
	}
	f, err := os.Open(args[2])
	if err != nil {
		return fail(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() { // "key: value" lines; block scalars' lines are indented
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			rec.Config[k] = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	f.Close()
	ln, err := net.Listen("tcp", rec.Config["listen-http"])
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"healthy":true}`+"\n")
	})
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m struct{ Topic, Title, Message string }
		err := json.Unmarshal(b, &m)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || m.Topic == "" || m.Message == "" {
			rec.Bad = append(rec.Bad, string(b))
			http.Error(w, `{"code":40001,"http":400,"error":"invalid request"}`, http.StatusBadRequest)
			return
		}
		rec.Publishes++
		rec.Sizes[len(b)]++
		rec.Topics[m.Topic]++
		fmt.Fprintf(w, `{"id":"x%d","time":%d,"expires":%d,"event":"message","topic":%q,"title":%q,"message":%q}`+"\n",
			rec.Publishes, time.Now().Unix(), time.Now().Unix()+43200, m.Topic, m.Title, m.Message)
	})
	srv := &http.Server{Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go srv.Serve(ln)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	mu.Lock()
	b, _ := json.Marshal(rec)
	mu.Unlock()
	out, err := os.OpenFile(os.Getenv(ntfyStandInEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	if _, err := out.Write(append(b, '\n')); err != nil {
		return fail(err)
	}
	return 0
}

func readStandInRecords(t *testing.T, path string) []standInRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []standInRecord
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r standInRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

func writePhaseOf(t *testing.T, o *options) *writePhase {
	t.Helper()
	for _, p := range o.phases {
		if w, ok := p.(*writePhase); ok {
			return w
		}
	}
	t.Fatal("no write phase")
	return nil
}

// -ntfy takes a binary found like a command and the caches to measure; an
// unknown cache or a missing binary is refused before anything runs.
func TestNtfyFlags(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-phases", "write", "-ntfy", exe, "-ntfy-caches", "none, durable,none"})
	if err != nil {
		t.Fatal(err)
	}
	w := writePhaseOf(t, o)
	if w.ntfyPath != exe || len(w.ntfyCaches) != 2 || w.ntfyCaches[0] != ntfyNoCache || w.ntfyCaches[1] != ntfyDurable {
		t.Fatalf("path %q, caches %v", w.ntfyPath, w.ntfyCaches)
	}
	if !strings.Contains(w.loadNote(), "beside ntfy (no cache, durable SQLite cache)") {
		t.Fatalf("header: %s", w.loadNote())
	}
	if w.ntfyLimit(1, time.Second, time.Second) <= 0 || w.limit() <= (&writePhase{options: o, modes: w.modes}).limit() {
		t.Fatalf("-ntfy does not extend the phase's bound: %s", w.limit())
	}
	if o, err = parseFlags([]string{"-phases", "write"}); err != nil || writePhaseOf(t, o).ntfyCaches != nil {
		t.Fatalf("without -ntfy: %v", err)
	}
	for _, bad := range [][]string{
		{"-phases", "write", "-ntfy", filepath.Join(t.TempDir(), "no-such-ntfy")},
		{"-phases", "write", "-ntfy", exe, "-ntfy-caches", "sqlite"},
		{"-phases", "write", "-ntfy", exe, "-ntfy-caches", ","},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// ntfy's configuration: loopback only, the loopback exempt from its
// visitor limits, and each cache setting as ntfy's documentation gives it.
func TestNtfyConfig(t *testing.T) {
	dir := t.TempDir()
	parse := func(c ntfyCache) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(ntfyConfig("127.0.0.1:8089", dir, c), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
				m[k] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		return m
	}
	for _, c := range []ntfyCache{ntfyNoCache, ntfyBatched, ntfyDurable} {
		m := parse(c)
		if m["listen-http"] != "127.0.0.1:8089" || m["visitor-request-limit-exempt-hosts"] != "127.0.0.1" || m["web-root"] != "disable" {
			t.Errorf("%s: %v", c, m)
		}
	}
	if m := parse(ntfyNoCache); m["cache-duration"] != "0" || m["cache-file"] != "" {
		t.Errorf("no cache: %v", m)
	}
	if m := parse(ntfyDurable); m["cache-file"] != filepath.Join(dir, "cache.db") || m["cache-duration"] == "0" || m["cache-batch-size"] != "" {
		t.Errorf("durable: %v", m)
	}
	if m := parse(ntfyBatched); m["cache-file"] == "" || m["cache-batch-size"] != "25" || m["cache-batch-timeout"] != "1s" ||
		!strings.Contains(ntfyConfig("127.0.0.1:1", dir, ntfyBatched), "pragma journal_mode = WAL;") {
		t.Errorf("batched: %v", m)
	}
	env := ntfyEnv([]string{"PATH=/bin", "NTFY_LISTEN_HTTP=:80", "ntfy_cache_file=x", "HTTP_PROXY=http://proxy", "HOME=/root"})
	if strings.Join(env, " ") != "PATH=/bin HOME=/root" {
		t.Errorf("environment: %v", env)
	}
}

// The -ntfy run against a stand-in: ntfy is started with its
// configuration file (the NTFY_ variables of this environment withheld),
// on loopback, sent the 421-byte JSON publishes from a load process, its
// CPU counted as the system's, and stopped at the end with its directory
// removed; one start per cache setting.
func TestNtfyAgainstStandIn(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "standin.jsonl")
	t.Setenv(ntfyStandInEnv, record)
	t.Setenv("NTFY_LISTEN_HTTP", "0.0.0.0:80")
	o, err := parseFlags([]string{"-phases", "write", "-ntfy", exe, "-ntfy-caches", "none,durable",
		"-concurrency", "4", "-warmup", "100ms", "-duration", "400ms"})
	if err != nil {
		t.Fatal(err)
	}
	w := writePhaseOf(t, o)
	rows, err := benchNtfy(context.Background(), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].cache != ntfyNoCache || rows[1].cache != ntfyDurable {
		t.Fatalf("rows %+v", rows)
	}
	recs := readStandInRecords(t, record)
	if len(recs) != 2 {
		t.Fatalf("%d stand-in runs recorded (one per cache, each stopped by SIGTERM), want 2", len(recs))
	}
	for i, r := range rows {
		rec := recs[i]
		if r.res.ops < 1 || r.res.errors != 0 || r.res.rate <= 0 || r.res.p99 <= 0 {
			t.Errorf("%s: %+v", r.cache, r.res)
		}
		if int64(rec.Publishes) < r.res.ops || len(rec.Bad) > 0 {
			t.Errorf("%s: the stand-in answered %d publishes (%d bad), the row counts %d", r.cache, rec.Publishes, len(rec.Bad), r.res.ops)
		}
		if len(rec.Sizes) != 1 || rec.Sizes[peerBodySize] != rec.Publishes || rec.Topics[ntfyTopic] != rec.Publishes {
			t.Errorf("%s: body sizes %v, topics %v", r.cache, rec.Sizes, rec.Topics)
		}
		if len(rec.NtfyEnv) > 0 {
			t.Errorf("%s: ntfy was given %v", r.cache, rec.NtfyEnv)
		}
		if host, _, err := net.SplitHostPort(rec.Config["listen-http"]); err != nil || host != "127.0.0.1" {
			t.Errorf("%s: listen-http %q", r.cache, rec.Config["listen-http"])
		}
		if _, err := os.Stat(filepath.Dir(rec.Args[2])); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: ntfy's directory %s left behind: %v", r.cache, filepath.Dir(rec.Args[2]), err)
		}
	}
	if recs[0].Config["cache-duration"] != "0" || recs[1].Config["cache-file"] == "" {
		t.Errorf("cache settings: %v, %v", recs[0].Config, recs[1].Config)
	}
}

// The side by side: ours' /message rows beside ntfy's, the budget on ours
// at sync=1s over ntfy with no cache, sync=always over the durable cache
// not budgeted.
func TestNtfyTable(t *testing.T) {
	always, _ := broker.ParseSync("always")
	def := syncMode{sync: gateway.Defaults().Sync}
	w := &writePhase{options: &options{concurrency: 64, client: clientLight, duration: time.Second}}
	msg := func(rate float64) *result {
		return &result{rate: rate, p99: 36 * time.Millisecond, cpu: cpuUse{self: 1.5}}
	}
	reps := []modeReport{{mode: def, isDefault: true, message: msg(5500)}, {mode: syncMode{sync: always}, message: msg(1500)}}
	rows := []ntfyRow{
		{cache: ntfyNoCache, res: result{rate: 14500, p99: 29 * time.Millisecond, cpu: cpuUse{self: 1}}},
		{cache: ntfyDurable, res: result{rate: 416, cpu: cpuUse{self: 0.2}, errors: 3,
			errKinds: map[string]int{`ntfy publish 500 "{\"code\":50001,\"error\":\"database is locked\"}"`: 3}}},
	}
	var out strings.Builder
	printNtfyTable(&out, w, reps, rows)
	s := out.String()
	for _, want := range []string{
		"ntfy, no cache", "ours sync=1s (POST /message)", "nothing (delivered to subscribers only)",
		"ours sync=1s / ntfy no cache: 0.38 (budget >= 1.00: MISSED)",
		"ours sync=always / ntfy durable SQLite cache: 3.61 (not budgeted)",
		"ntfy, durable SQLite cache: 3 requests failed (not counted in its rate; not a failure of this run)",
		"database is locked",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	reps[0].message.rate = 15000
	out.Reset()
	printNtfyTable(&out, w, reps, rows)
	if !strings.Contains(out.String(), "ours sync=1s / ntfy no cache: 1.03 (budget >= 1.00: ok)") {
		t.Errorf("met budget:\n%s", out.String())
	}
	// ntfy's failures are its finding, not this run's failure; ours are.
	wt := &writeTable{o: w, reps: reps, ntfy: rows}
	for _, f := range wt.failures() {
		if f.errors != 0 {
			t.Errorf("failure %s: %d", f.label, f.errors)
		}
	}
	reps[0].message.errors = 2
	if !slices.ContainsFunc(wt.failures(), func(f failure) bool { return f.errors == 2 && f.label == "sync=1s "+messageLabel }) {
		t.Errorf("ours' failed /message requests not reported: %+v", wt.failures())
	}
}

// Each sync mode is compared with the caches that keep what it keeps: the
// default (1s) with no cache and the batched cache, sync=always with the
// durable cache; another interval with none.
func TestNtfyPairedCaches(t *testing.T) {
	always, _ := broker.ParseSync("always")
	five, _ := broker.ParseSync("5s")
	p := &ntfyOptions{ntfyCaches: []ntfyCache{ntfyNoCache, ntfyBatched, ntfyDurable}}
	for _, c := range []struct {
		m    syncMode
		want string
	}{
		{syncMode{sync: gateway.Defaults().Sync}, "none,batched"},
		{syncMode{sync: always}, "durable"},
		{syncMode{sync: five}, ""},
	} {
		var got []string
		for _, x := range p.pairedCaches(c.m) {
			got = append(got, string(x))
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: %v, want %s", c.m.label(), got, c.want)
		}
	}
	// Rounds combine column by column: ours' median, each cache's median.
	both := []ntfyCache{ntfyNoCache, ntfyBatched}
	r := median([]peerRound{
		{ours: result{rate: 3}, ntfy: []result{{rate: 30}, {rate: 300}}, caches: both},
		{ours: result{rate: 1}, ntfy: []result{{rate: 10}, {rate: 100}}, caches: both},
		{ours: result{rate: 2}, ntfy: []result{{rate: 20}, {rate: 200}}, caches: both},
	})
	if r.ours.rate != 2 || len(r.ntfy) != 2 || r.ntfy[0].rate != 20 || r.ntfy[1].rate != 200 || len(r.caches) != 2 || r.caches[1] != ntfyBatched {
		t.Fatalf("median of rounds: %+v", r)
	}
}

// The peer rounds alternate: each round runs ours' /message load and then
// ntfy's, from load processes; ours' requests are 421-byte messages to the
// gateway, ntfy's to ntfy, and the medians land in the mode's report.
func TestPeerRoundsAlternate(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "standin.jsonl")
	t.Setenv(ntfyStandInEnv, record)
	o, err := parseFlags([]string{"-phases", "write", "-ntfy", exe, "-runs", "2",
		"-concurrency", "2", "-warmup", "50ms", "-duration", "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	w := writePhaseOf(t, o)
	g := newFakeGateway(t, 0)
	tg := &target{addr: g.addr(), clientName: clientLight, bodies: newBodies("c0123456789abcdef0123456789abcde", "bench-password", 400)}
	rep := modeReport{mode: syncMode{sync: gateway.Defaults().Sync}, isDefault: true}
	if err := benchPeerRounds(context.Background(), w, tg, &rep, ""); err != nil {
		t.Fatal(err)
	}
	if rep.message == nil || rep.message.ops < 1 || rep.message.errors != 0 || len(rep.ntfy) != 1 || rep.ntfy[0].cache != ntfyNoCache || rep.ntfy[0].res.ops < 1 {
		t.Fatalf("report: message %+v, ntfy %+v", rep.message, rep.ntfy)
	}
	g.mu.Lock()
	messages, sizes := g.paths["POST /message"], g.sizes[peerBodySize]
	g.mu.Unlock()
	if int64(messages) < rep.message.ops || sizes != messages {
		t.Fatalf("the gateway got %d /message requests, %d of %d bytes", messages, sizes, peerBodySize)
	}
	recs := readStandInRecords(t, record)
	if len(recs) != 1 || recs[0].Publishes < int(rep.ntfy[0].res.ops) {
		t.Fatalf("one ntfy for both rounds, stopped at the end: %+v", recs)
	}
}

package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ntfy beside ours (issue 14's budget: ours at sync=1s >= 1.0x ntfy with no
// cache, in the same run). With -ntfy PATH the write phase measures, for
// each of its sync modes, POST /message on its gateway, and then starts the
// ntfy binary at PATH (ntfy serve, on a free 127.0.0.1 port, its own
// configuration in a temporary directory) once per -ntfy-caches setting and
// sends it the same load: -concurrency connections, closed loop, one
// 421-byte JSON message per request (ntfy's JSON publish, POST /), from a
// load process of its own; each -runs times, the medians kept. The table
// gets a side by side: each system's requests/s, latency, CPU per request
// (its own process's) and what it stores.

// ntfyOptions are the write phase's -ntfy flags.
type ntfyOptions struct {
	ntfyPath      string
	ntfyCacheList string
	ntfyCaches    []ntfyCache
	ntfyVersion   string
	// messageProfile: -messageprofile, a CPU profile of ours' first
	// /message round beside ntfy, in the first sync mode.
	messageProfile string
}

// ntfyCache is one of ntfy's message cache settings.
type ntfyCache string

const (
	ntfyNoCache ntfyCache = "none"    // cache-duration 0: nothing stored
	ntfyBatched ntfyCache = "batched" // SQLite written in batches (ntfy.sh's tuning)
	ntfyDurable ntfyCache = "durable" // SQLite written before the answer
)

// ntfyTopic is the topic every ntfy request publishes to.
const ntfyTopic = "pushgo-bench"

func (c ntfyCache) label() string {
	switch c {
	case ntfyBatched:
		return "batched SQLite cache"
	case ntfyDurable:
		return "durable SQLite cache"
	}
	return "no cache"
}

// stores says what the setting keeps of a message.
func (c ntfyCache) stores() string {
	switch c {
	case ntfyBatched:
		return "every message, in SQLite batches of 25 or 1s: loses up to a batch on a crash"
	case ntfyDurable:
		return "every message, in SQLite before the answer"
	}
	return "nothing (delivered to subscribers only)"
}

func (p *ntfyOptions) ntfyFlags(fs *flagSet) {
	fs.StringVar(&p.ntfyPath, "ntfy", "", "write phase: run this ntfy binary beside ours: the same closed-loop load (-concurrency connections, 421-byte JSON messages: POST /message to us, ntfy's JSON publish to it), each from a load process, and print the side by side")
	fs.StringVar(&p.messageProfile, "messageprofile", "", "write phase with -ntfy: write a CPU profile of ours' first POST /message round beside ntfy, in the first sync mode, to this file")
	fs.StringVar(&p.ntfyCacheList, "ntfy-caches", string(ntfyNoCache), "write phase: ntfy's message caches to measure with -ntfy, comma-separated: none (cache-duration 0: stores nothing), batched (SQLite, ntfy.sh's batch tuning), durable (SQLite, written before the answer)")
}

// ntfySetup checks the flags and reads ntfy's version from its build
// information.
func (p *ntfyOptions) ntfySetup() error {
	p.ntfyCaches = nil
	if p.ntfyPath == "" {
		return nil
	}
	seen := map[ntfyCache]bool{}
	for _, s := range strings.Split(p.ntfyCacheList, ",") {
		c := ntfyCache(strings.TrimSpace(s))
		switch c {
		case "":
			continue
		case ntfyNoCache, ntfyBatched, ntfyDurable:
		default:
			return fmt.Errorf("-ntfy-caches: unknown %q (want none, batched and/or durable)", c)
		}
		if !seen[c] {
			seen[c] = true
			p.ntfyCaches = append(p.ntfyCaches, c)
		}
	}
	if len(p.ntfyCaches) == 0 {
		return errors.New("-ntfy-caches names no cache")
	}
	path, err := exec.LookPath(p.ntfyPath)
	if err != nil {
		return fmt.Errorf("-ntfy: %w", err)
	}
	if p.ntfyPath, err = filepath.Abs(path); err != nil {
		return fmt.Errorf("-ntfy: %w", err)
	}
	p.ntfyVersion = ntfyVersion(p.ntfyPath)
	return nil
}

// ntfyVersion is ntfy's module version in the binary's build information;
// "" for a build from a source tree, or a binary without one.
func ntfyVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	if strings.HasPrefix(bi.Main.Path, "heckel.io/ntfy") && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}

func (p *ntfyOptions) ntfyName() string {
	if p.ntfyVersion == "" {
		return "ntfy"
	}
	return "ntfy " + p.ntfyVersion
}

func (p *ntfyOptions) ntfyHeader() string {
	if p.ntfyPath == "" {
		return ""
	}
	caches := make([]string, len(p.ntfyCaches))
	for i, c := range p.ntfyCaches {
		caches[i] = c.label()
	}
	return fmt.Sprintf("; beside %s (%s)", p.ntfyName(), strings.Join(caches, ", "))
}

// ntfyLimit bounds ntfy's starts, runs and stops.
func (p *ntfyOptions) ntfyLimit(runs int, warmup, dur time.Duration) time.Duration {
	if p.ntfyPath == "" {
		return 0
	}
	perCache := ntfyReadyLimit + 15*time.Second + time.Duration(runs)*(warmup+dur+opTimeout+40*time.Second)
	return time.Duration(len(p.ntfyCaches)) * perCache
}

// ntfyRow is ntfy measured with one cache setting (medians over -runs).
type ntfyRow struct {
	cache ntfyCache
	res   result // cpu.self is ntfy's process
}

// pairedCaches are the selected caches compared with ours in mode m: no
// cache and the batched cache with the default (sync=1s), the durable
// cache with sync=always.
func (p *ntfyOptions) pairedCaches(m syncMode) []ntfyCache {
	var out []ntfyCache
	for _, c := range p.ntfyCaches {
		if (c == ntfyDurable) == m.sync.Always && (m.sync.Always || m.isDefault()) {
			out = append(out, c)
		}
	}
	return out
}

// peerRound is one round of the peer comparison: ours' /message run, then
// one run of ntfy with each paired cache, so that both see the same
// machine (it is shared; a disturbance hits both alike).
type peerRound struct {
	ours   result
	ntfy   []result    // in the order of caches
	caches []ntfyCache // pairedCaches
}

func (peerRound) columns() []column[peerRound] {
	return []column[peerRound]{
		nested(func(r *peerRound) *result { return &r.ours }),
		func(out *peerRound, runs []peerRound) { out.caches = runs[0].caches },
		func(out *peerRound, runs []peerRound) {
			out.ntfy = make([]result, len(runs[0].ntfy))
			for i := range out.ntfy {
				rs := make([]result, len(runs))
				for j := range runs {
					rs[j] = runs[j].ntfy[i]
				}
				out.ntfy[i] = median(rs)
			}
		},
	}
}

func (r peerRound) progress(o *options, name string, run int) {
	r.ours.progress(o, messageLabel, run)
	for i, n := range r.ntfy {
		n.progress(o, "  ntfy "+string(r.caches[i]), run)
	}
}

// benchPeerRounds measures ours' /message on t and ntfy with the caches
// paired with rep's mode, in -runs rounds, and keeps the medians in rep.
// The ntfy servers run (idle but for their rounds) until the rounds end.
// profile, when not empty, receives a CPU profile of ours' first round.
func benchPeerRounds(ctx context.Context, o *writePhase, t *target, rep *modeReport, profile string) error {
	caches := o.pairedCaches(rep.mode)
	servers := make([]*ntfyServer, 0, len(caches))
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, c := range caches {
		s, err := startNtfy(ctx, o.ntfyPath, c)
		if err != nil {
			return fmt.Errorf("ntfy, %s: %w", c.label(), err)
		}
		servers = append(servers, s)
	}
	r, err := repeat(ctx, o.options, messageLabel+" beside ntfy", func(run int) (peerRound, error) {
		round := peerRound{caches: caches}
		stop, err := profileRun(run, profile, messageLabel+" beside ntfy")
		if err != nil {
			return round, err
		}
		round.ours, err = runLoad(ctx, t.spec(opMessage).closed(o.concurrency, o.warmup, o.duration))
		stop()
		if err != nil {
			return round, err
		}
		round.ours.note = t.settleNote(ctx)
		for _, s := range servers {
			n, err := s.measure(ctx, o)
			if err != nil {
				return round, err
			}
			round.ntfy = append(round.ntfy, n)
		}
		return round, nil
	})
	if err != nil {
		return err
	}
	rep.message = &r.ours
	for i, c := range caches {
		rep.ntfy = append(rep.ntfy, ntfyRow{cache: c, res: r.ntfy[i]})
	}
	return nil
}

// benchNtfy measures ntfy with each selected cache that no sync mode was
// paired with (and so measured in no round), -runs times each.
func benchNtfy(ctx context.Context, o *writePhase, measured []ntfyRow) ([]ntfyRow, error) {
	var rows []ntfyRow
	for _, c := range o.ntfyCaches {
		if slices.ContainsFunc(measured, func(r ntfyRow) bool { return r.cache == c }) {
			continue
		}
		s, err := startNtfy(ctx, o.ntfyPath, c)
		if err != nil {
			return nil, fmt.Errorf("ntfy, %s: %w", c.label(), err)
		}
		r, err := repeat(ctx, o.options, "ntfy "+string(c), func(int) (result, error) { return s.measure(ctx, o) })
		s.stop()
		if err != nil {
			return nil, fmt.Errorf("ntfy, %s: %w", c.label(), err)
		}
		rows = append(rows, ntfyRow{cache: c, res: r})
	}
	return rows, nil
}

// measure runs the load once against s: -concurrency connections, closed
// loop, from a load process; the row's CPU is ntfy's process's.
func (s *ntfyServer) measure(ctx context.Context, o *writePhase) (result, error) {
	spec := loadSpec{Op: opNtfy, Addr: s.addr, Client: o.client, Topic: ntfyTopic}.closed(o.concurrency, o.warmup, o.duration)
	reps, cpu, err := runLoads(ctx, s.cmd.Process, spec)
	if err != nil {
		return result{}, fmt.Errorf("ntfy, %s: %w", s.cache.label(), err)
	}
	if err := s.alive(); err != nil {
		return result{}, err
	}
	return reps[0].result(cpu), nil
}

// ntfyServer is a running ntfy serve.
type ntfyServer struct {
	cache   ntfyCache
	dir     string
	logPath string
	addr    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process ended; then waitErr is set
	waitErr error
}

// ntfyReadyLimit bounds ntfy's start (until /v1/health answers).
const ntfyReadyLimit = 30 * time.Second

// startNtfy runs path serve with a configuration of cache, in a temporary
// directory of its own, on a free loopback port, and waits until it
// answers.
func startNtfy(ctx context.Context, path string, cache ntfyCache) (_ *ntfyServer, err error) {
	s := &ntfyServer{cache: cache, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "pushgo-bench-ntfy-*"); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	cfgPath := filepath.Join(s.dir, "server.yml")
	if err := os.WriteFile(cfgPath, []byte(ntfyConfig(s.addr, s.dir, cache)), 0o600); err != nil {
		return nil, err
	}
	s.logPath = filepath.Join(s.dir, "ntfy.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(path, ntfyArgs(cfgPath)...)
	s.cmd.Dir = s.dir
	s.cmd.Env = ntfyEnv(os.Environ())
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := startTied(s.cmd); err != nil {
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  ntfy ready on %s (pid %d), %s (%s); configuration %s\n", s.addr, s.cmd.Process.Pid, cache.label(), path, cfgPath)
	return s, nil
}

// ntfyArgs is ntfy's command line: the server, with the configuration at
// cfgPath (every setting is in it).
func ntfyArgs(cfgPath string) []string { return []string{"serve", "--config", cfgPath} }

// ntfyConfig is ntfy's server.yml: its HTTP server on addr (loopback) only,
// the web app and the log quiet, 127.0.0.1 exempt from the per-visitor
// request and message limits (every request comes from it), and the cache
// setting; the cache file, if any, in dir.
func ntfyConfig(addr, dir string, cache ntfyCache) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen-http: %q\n", addr)
	b.WriteString("web-root: \"disable\"\n")
	b.WriteString("log-level: \"error\"\n")
	b.WriteString("visitor-request-limit-exempt-hosts: \"127.0.0.1\"\n")
	switch cache {
	case ntfyNoCache:
		b.WriteString("cache-duration: \"0\"\n")
	case ntfyBatched:
		fmt.Fprintf(&b, "cache-file: %q\n", filepath.Join(dir, "cache.db"))
		b.WriteString("cache-duration: \"12h\"\n")
		// ntfy.sh's tuning, as ntfy's documentation gives it.
		b.WriteString("cache-batch-size: 25\n")
		b.WriteString("cache-batch-timeout: \"1s\"\n")
		b.WriteString("cache-startup-queries: |\n  pragma journal_mode = WAL;\n  pragma synchronous = normal;\n  pragma temp_store = memory;\n  pragma busy_timeout = 15000;\n")
	case ntfyDurable:
		fmt.Fprintf(&b, "cache-file: %q\n", filepath.Join(dir, "cache.db"))
		b.WriteString("cache-duration: \"12h\"\n")
	}
	return b.String()
}

// ntfyEnv is the environment of ntfy: this one without NTFY_ settings
// (ntfy reads every flag from NTFY_*, which would override the file) or
// proxies.
func ntfyEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch u := strings.ToUpper(k); {
		case strings.HasPrefix(u, "NTFY_"), u == "HTTP_PROXY", u == "HTTPS_PROXY", u == "NO_PROXY", u == "ALL_PROXY":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// waitReady waits for ntfy's GET /v1/health, or its exit.
func (s *ntfyServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ntfyReadyLimit)
	defer cancel()
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/v1/health", nil)
		if resp, err := client.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"healthy":true`) {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited before answering /v1/health: %v%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("no healthy answer on %s/v1/health within %s%s", s.addr, ntfyReadyLimit, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// alive fails if ntfy has exited.
func (s *ntfyServer) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("ntfy exited during the run: %v%s", s.waitErr, s.logTail())
	default:
		return nil
	}
}

// stop ends ntfy (SIGTERM, then SIGKILL after 10 s) and removes its
// directory.
func (s *ntfyServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
		s.cmd = nil
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// logTail is the end of ntfy's output, for an error.
func (s *ntfyServer) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\nntfy's output ends:\n" + string(b)
}

// peerPair is one comparison of the side by side: ours in a sync mode
// against ntfy with a cache setting.
type peerPair struct {
	ours   modeReport
	ntfy   ntfyRow
	budget float64 // 0: not budgeted
}

func (p peerPair) ratio() float64 {
	if p.ntfy.res.rate <= 0 || p.ours.message == nil {
		return 0
	}
	return p.ours.message.rate / p.ntfy.res.rate
}

// ok: the budget met, with none of our requests failed, nor ntfy's (its
// rate counts its successes only: its failures lowered the peer's rate
// and made the budget easier to meet).
func (p peerPair) ok() bool {
	return p.ours.message != nil && p.ratio() >= p.budget && p.ours.message.errors == 0 && p.ntfy.res.errors == 0
}

// peerPairs pairs ours with ntfy: the default sync mode (1s) with no cache
// (the budget, >= 1.0) and with the batched cache (both may lose their last
// second on a crash of the machine), sync=always with the durable cache
// (not budgeted).
func peerPairs(reps []modeReport, rows []ntfyRow) []peerPair {
	var out []peerPair
	for _, n := range rows {
		for _, r := range reps {
			if r.message == nil {
				continue
			}
			switch {
			case n.cache == ntfyNoCache && r.isDefault:
				out = append(out, peerPair{ours: r, ntfy: n, budget: 1.0})
			case n.cache == ntfyDurable && r.mode.sync.Always:
				out = append(out, peerPair{ours: r, ntfy: n})
			case n.cache == ntfyBatched && r.isDefault:
				out = append(out, peerPair{ours: r, ntfy: n})
			}
		}
	}
	return out
}

// cpuPerReq is a row's system-under-test CPU time per successful request:
// the median over its runs, or the CPU of its most disturbed run over its
// median rate.
func cpuPerReq(r result) time.Duration {
	if r.cpuPerOp > 0 {
		return r.cpuPerOp
	}
	if r.rate <= 0 {
		return 0
	}
	return time.Duration(r.cpu.self / r.rate * float64(time.Second))
}

// printNtfyTable prints ours' /message rows and ntfy's side by side, then
// the pairs' ratios (issue 14's budget: ours at sync=1s >= 1.0x ntfy with no
// cache).
func printNtfyTable(w io.Writer, o *writePhase, reps []modeReport, rows []ntfyRow) {
	fmt.Fprintln(w)
	head := fmt.Sprintf("beside ntfy (c=%d, %d-byte JSON)", o.concurrency, peerBodySize)
	fmt.Fprintf(w, "%-36s %8s %9s %9s %9s %6s   %s\n", head, "req/s", "p50", "p99", "cpu/req", "cores", "stores")
	line := func(name string, r result, stores string) {
		out := fmt.Sprintf("%-36s %8.0f %9s %9s %9s %6.2f   %s", name, r.rate, fmtDur(r.p50), fmtDur(r.p99), fmtMicros(cpuPerReq(r)), r.sutCores(), stores)
		fmt.Fprintln(w, strings.TrimRight(out, " "))
	}
	for _, n := range rows {
		line(o.ntfyName()+", "+n.cache.label(), n.res, n.cache.stores())
	}
	for _, r := range reps {
		if r.message != nil {
			line("ours "+r.mode.label()+" (POST /message)", *r.message, oursStores(r.mode))
		}
	}
	for _, p := range peerPairs(reps, rows) {
		budget := "not budgeted"
		if p.budget > 0 {
			budget = fmt.Sprintf("budget >= %.2f: %s", p.budget, verdict(p.ok()))
		}
		cpu := ""
		if a, b := cpuPerReq(*p.ours.message), cpuPerReq(p.ntfy.res); a > 0 && b > 0 {
			cpu = fmt.Sprintf("; cpu/req %.2fx ntfy's", float64(a)/float64(b))
		}
		fmt.Fprintf(w, "  ours %s / ntfy %s: %.2f (%s)%s\n", p.ours.mode.label(), p.ntfy.cache.label(), p.ratio(), budget, cpu)
	}
	fmt.Fprintf(w, "  each system in its own process, the load from a load process (%s client, closed loop, %s after %s warm-up); cpu/req and cores: the system's own process, medians\n",
		o.client, o.duration, o.warmup)
	fmt.Fprintf(w, "  in rounds: ours' run, then ntfy's with each cache paired with that sync mode, so that both see the same machine; medians of %d rounds\n", o.runs)
	fmt.Fprintf(w, "  ntfy: serve on 127.0.0.1, 127.0.0.1 exempt from its visitor limits, one topic without subscribers, JSON publish (POST /); ours: POST /message to a channel without devices\n")
	for _, n := range rows {
		if n.res.errors == 0 {
			continue
		}
		fmt.Fprintf(w, "  ntfy, %s: %d requests failed (not counted in its rate; not a failure of this run):\n", n.cache.label(), n.res.errors)
		for _, k := range slices.Sorted(maps.Keys(n.res.errKinds)) {
			fmt.Fprintf(w, "    %6d x %s\n", n.res.errKinds[k], k)
		}
	}
	for _, n := range rows {
		if disturbed(n.res) {
			fmt.Fprintf(w, "  note: ntfy %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n", n.cache.label(), n.res.cpu.others, numCPU())
		}
	}
}

// oursStores says what the gateway keeps of an operation in a sync mode.
func oursStores(m syncMode) string {
	if m.sync.Always {
		return "every operation, in the JetStream log, fsynced before the answer"
	}
	return "every operation, in the JetStream log, fsynced every " + m.sync.Interval.String()
}

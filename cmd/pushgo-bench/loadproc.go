package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Every HTTP load of a measured row runs in a load process of its own: this
// binary started again with roleEnv=load, which reads a loadSpec on its
// standard input, says "ready", waits for "go", runs its loop against the
// address it was given and writes its loadReport as one JSON line on its
// standard output. The gateway under test stays in this process, so this
// process's CPU (and its CPU profile) is the gateway's, and the figures
// describe the gateway, not the client: the generator's CPU is reported
// beside, as load.
//
// What stays in this process: the raw JetStream anchors (their publishers
// stand in for the gateway's ingest, which shares the broker's process in
// the same way), the populate and fold passes (no client), the unmeasured
// set-ups, and the delivery phases' bursts (a few requests each: their
// figures are the pushes taken at the fake provider, in a process of its
// own: providerproc.go).
//
// The protocol, one line each:
//
//	parent -> child  the loadSpec (JSON)
//	child -> parent  "ready"
//	parent -> child  "go"
//	child -> parent  the loadReport (JSON)
//
// Closing the child's standard input stops its loop early (the parent
// does so when it gives up); the child then still reports and exits.

const (
	roleEnv  = "PUSHGO_BENCH_ROLE"
	roleLoad = "load"
)

// Loops of a load process (loadSpec.Loop): closedLoop, openLoop, countLoop.
const (
	loopClosed = "closed"
	loopOpen   = "open"
	loopCount  = "count"
)

// Operations of a load process (loadSpec.Op).
const (
	opUpdate       = "update"       // event and thing updates through -client (target.update)
	opUpdateOther  = "update-other" // the same through the other client (-diag)
	opHealthz      = "healthz"      // GET /healthz (-diag)
	opHistory      = "history"      // POST /channel/history pages
	opThingGet     = "thing-get"    // POST /thing/get
	opEventCreate  = "event-create" // POST /event/create
	opDynatrace    = "dynatrace"    // Dynatrace event ingest
	opAlertmanager = "alertmanager" // Alertmanager payloads
	opMessage      = "message"      // POST /message of peerBodySize bytes
	opNtfy         = "ntfy"         // ntfy's JSON publish of peerBodySize bytes
	// POST /message of the delivery phases' latency row.
	opDeliveryMessage = "delivery-message"
)

// loadSpec is one load process's work: its loop, its operation and what the
// operation needs (the gateway's channel, entities, token).
type loadSpec struct {
	Loop     string        `json:"loop"`
	Op       string        `json:"op"`
	Workers  int           `json:"workers"`
	Rate     float64       `json:"rate,omitempty"`     // open loop
	Warmup   time.Duration `json:"warmup,omitempty"`   // closed and open loops
	Duration time.Duration `json:"duration,omitempty"` // closed and open loops
	Count    int           `json:"count,omitempty"`    // count loop
	// Limit bounds the loop from "go"; the parent waits a little longer
	// for the report, then kills the process.
	Limit time.Duration `json:"limit"`

	Addr      string   `json:"addr"`   // host:port, 127.0.0.1 only
	Client    string   `json:"client"` // clientLight or clientNetHTTP
	ChannelID string   `json:"channel_id,omitempty"`
	Password  string   `json:"password,omitempty"`
	BodySize  int      `json:"body_size,omitempty"`
	EventIDs  []string `json:"event_ids,omitempty"`
	ThingIDs  []string `json:"thing_ids,omitempty"`

	HistoryLast  uint64 `json:"history_last,omitempty"`
	HistoryLimit int    `json:"history_limit,omitempty"`

	Token    string     `json:"token,omitempty"`
	Hosts    []string   `json:"hosts,omitempty"`
	DTType   string     `json:"dt_type,omitempty"`
	DTTitle  string     `json:"dt_title,omitempty"`
	DTSel    dtSelector `json:"dt_selector,omitempty"`
	AMAlerts int        `json:"am_alerts,omitempty"`
	AMSeed   uint64     `json:"am_seed,omitempty"`

	Topic string `json:"topic,omitempty"` // ntfy
}

// closed, open and count set the loop of a spec.
func (s loadSpec) closed(workers int, warmup, dur time.Duration) loadSpec {
	s.Loop, s.Workers, s.Warmup, s.Duration = loopClosed, workers, warmup, dur
	s.Limit = warmup + dur + opTimeout + 10*time.Second
	return s
}

func (s loadSpec) open(workers int, rate float64, warmup, dur time.Duration) loadSpec {
	s.Loop, s.Workers, s.Rate, s.Warmup, s.Duration = loopOpen, workers, rate, warmup, dur
	s.Limit = warmup + dur + opTimeout + 10*time.Second
	return s
}

func (s loadSpec) count(workers, n int, limit time.Duration) loadSpec {
	s.Loop, s.Workers, s.Count, s.Limit = loopCount, workers, n, limit
	return s
}

// loadReport is what a load process measured: its loop's result, the CPU
// time it used from "go" to the end of its loop, its pid, and what some
// operations count.
type loadReport struct {
	PID       int            `json:"pid"`
	Ops       int64          `json:"ops"`
	Elapsed   time.Duration  `json:"elapsed"`
	Rate      float64        `json:"rate"`
	P50       time.Duration  `json:"p50"`
	P99       time.Duration  `json:"p99"`
	P999      time.Duration  `json:"p999"`
	Max       time.Duration  `json:"max"`
	PerSec    []int64        `json:"per_sec,omitempty"`
	Errors    int64          `json:"errors"`
	ErrKinds  map[string]int `json:"err_kinds,omitempty"`
	Late      int64          `json:"late,omitempty"`
	Skipped   int64          `json:"skipped,omitempty"`
	Target    float64        `json:"target,omitempty"`
	Succeeded int64          `json:"succeeded"` // warm-up included
	Began     time.Time      `json:"began"`     // when the loop began (its warm-up)
	CPU       time.Duration  `json:"cpu"`
	AMOuts    [4]int64       `json:"am_outcomes,omitzero"` // Alertmanager: opened, updated, unchanged, other
	// Stalls: open loop, the kernel threads' bursts and the tail (kthreads.go).
	Stalls *kthreadStalls `json:"kthread_stalls,omitempty"`
	// Tail, From and To: the requests at or above the p99 and
	// the measured window, matched by the bench with the gateway's garbage
	// collection (gctail.go).
	Tail []tailPoint `json:"tail,omitempty"`
	From time.Time   `json:"from,omitzero"`
	To   time.Time   `json:"to,omitzero"`
}

func newLoadReport(r result) loadReport {
	return loadReport{PID: os.Getpid(), Ops: r.ops, Elapsed: r.elapsed, Rate: r.rate, P50: r.p50, P99: r.p99, P999: r.p999, Max: r.max,
		PerSec: r.perSec, Errors: r.errors, ErrKinds: r.errKinds, Late: r.late, Skipped: r.skipped, Target: r.target}
}

// result is the report as a row, with the CPU of the measurement.
func (r loadReport) result(cpu cpuUse) result {
	res := result{ops: r.Ops, elapsed: r.Elapsed, rate: r.Rate, p50: r.P50, p99: r.P99, p999: r.P999, max: r.Max,
		perSec: r.PerSec, errors: r.Errors, errKinds: r.ErrKinds, late: r.Late, skipped: r.Skipped, target: r.Target, cpu: cpu}
	if res.errKinds == nil {
		res.errKinds = map[string]int{}
	}
	if r.Stalls != nil {
		res.kstalls = r.Stalls.String()
	}
	if len(r.Tail) > 0 {
		// The gateway runs in this process: its cycles are this runtime's.
		res.gcstalls = gcTailOf(gcCycles(), r.Tail, r.From, r.To).String()
	}
	res.cores = cpu.self
	if r.Ops > 0 {
		res.cpuPerOp = time.Duration(cpu.self * float64(r.Elapsed) / float64(r.Ops))
	}
	return res
}

// runLoad runs one load process and returns its row.
func runLoad(ctx context.Context, spec loadSpec) (result, error) {
	reps, cpu, err := runLoads(ctx, nil, spec)
	if err != nil {
		return result{}, err
	}
	return reps[0].result(cpu), nil
}

// runLoads runs one load process per spec, all at once, and returns their
// reports and the CPU use of the measurement: this process's (the gateway
// under test's) as self, unless peer is given, then that process's (pid)
// and this one among the others; the load processes' as load. Every
// process is ended before it returns.
func runLoads(ctx context.Context, peer *os.Process, specs ...loadSpec) ([]loadReport, cpuUse, error) {
	procs := make([]*loadProc, 0, len(specs))
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, s := range specs {
		p, err := startLoadProc(ctx, s)
		if err != nil {
			return nil, cpuUse{}, err
		}
		procs = append(procs, p)
	}
	var peer0, peer1 time.Duration
	var peerErr error
	if peer != nil {
		peer0, peerErr = procCPU(peer.Pid)
	}
	cpu0 := sampleCPU()
	for _, p := range procs {
		if err := p.begin(); err != nil {
			return nil, cpuUse{}, err
		}
	}
	reps := make([]loadReport, len(procs))
	var loadCPU time.Duration
	for i, p := range procs {
		r, err := p.report(ctx)
		if err != nil {
			return nil, cpuUse{}, err
		}
		if peer != nil {
			// The system under test is another process (ntfy): its tail
			// says nothing about this process's collection cycles.
			r.Tail = nil
		}
		reps[i] = r
		loadCPU += r.CPU
	}
	cpu1 := sampleCPU()
	var peerCPU *time.Duration
	if peer != nil && peerErr == nil {
		if peer1, peerErr = procCPU(peer.Pid); peerErr == nil {
			d := peer1 - peer0
			peerCPU = &d
		}
	}
	return reps, cpuSplit(cpu0, cpu1, loadCPU, peerCPU), nil
}

// childProc is this binary started again in a role (roleEnv), with pipes
// for its standard input and output; its standard error is this process's.
type childProc struct {
	cmd     *exec.Cmd
	stdin   *os.File
	stdout  *os.File
	exited  chan struct{} // closed once it ended; then waitErr is set
	waitErr error
}

// startChild starts this binary in role.
func startChild(role string) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Files, not exec's pipes: Wait would close a pipe the reader still
	// reads from.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c := &childProc{stdin: inW, stdout: outR, exited: make(chan struct{})}
	c.cmd = exec.Command(exe)
	c.cmd.Env = append(os.Environ(), roleEnv+"="+role)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = inR, outW, os.Stderr
	err = startTied(c.cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// loadProc is a started load process.
type loadProc struct {
	*childProc
	spec  loadSpec
	lines chan []byte // the lines of its standard output, closed at its end
}

// loadStartLimit bounds a load process's start (until "ready").
const loadStartLimit = 30 * time.Second

// startLoadProc starts a load process, hands it spec and waits until it is
// ready.
func startLoadProc(ctx context.Context, spec loadSpec) (_ *loadProc, err error) {
	line, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	c, err := startChild(roleLoad)
	if err != nil {
		return nil, fmt.Errorf("load process: %w", err)
	}
	p := &loadProc{childProc: c, spec: spec, lines: make(chan []byte, 2)}
	go func() {
		defer close(p.lines)
		defer c.stdout.Close()
		br := bufio.NewReaderSize(c.stdout, 64<<10)
		for {
			l, err := br.ReadBytes('\n')
			if len(l) > 0 {
				p.lines <- bytes.TrimSpace(l)
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("load process: hand over its work: %w", err)
	}
	l, err := p.line(ctx, loadStartLimit)
	if err != nil {
		return nil, fmt.Errorf("load process %s: not ready: %w", spec.Op, err)
	}
	if string(l) != "ready" {
		return nil, fmt.Errorf("load process %s: said %q, want ready", spec.Op, truncate(l))
	}
	return p, nil
}

// begin tells the process to start its loop.
func (p *loadProc) begin() error {
	if _, err := p.stdin.Write([]byte("go\n")); err != nil {
		return fmt.Errorf("load process %s: go: %w", p.spec.Op, err)
	}
	return nil
}

// report waits for the process's report and its exit.
func (p *loadProc) report(ctx context.Context) (loadReport, error) {
	l, err := p.line(ctx, p.spec.Limit+30*time.Second)
	if err != nil {
		return loadReport{}, fmt.Errorf("load process %s: no report: %w", p.spec.Op, err)
	}
	r, err := parseLoadReport(l)
	if err != nil {
		return loadReport{}, fmt.Errorf("load process %s: %w", p.spec.Op, err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		return loadReport{}, fmt.Errorf("load process %s: still running 10s after its report", p.spec.Op)
	}
	if p.waitErr != nil {
		return loadReport{}, fmt.Errorf("load process %s: %w", p.spec.Op, p.waitErr)
	}
	return r, nil
}

// parseLoadReport decodes a report line; unknown members are an error (a
// load process of another build).
func parseLoadReport(l []byte) (loadReport, error) {
	var r loadReport
	dec := json.NewDecoder(bytes.NewReader(l))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return loadReport{}, fmt.Errorf("report %q: %w", truncate(l), err)
	}
	if r.PID <= 0 {
		return loadReport{}, fmt.Errorf("report %q: no pid", truncate(l))
	}
	return r, nil
}

// line waits for the process's next line, at most limit.
func (p *loadProc) line(ctx context.Context, limit time.Duration) ([]byte, error) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.exited
			return nil, fmt.Errorf("exited: %v", p.waitErr)
		}
		return l, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("nothing within %s", limit)
	}
}

// stop ends the process: its standard input closed (its loop stops), then
// SIGKILL after 5 s.
func (p *loadProc) stop() {
	p.stdin.Close()
	select {
	case <-p.exited:
		return
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// runLoadProcess is a load process's main: it reads its spec from in,
// answers on out, and returns the exit code.
func runLoadProcess(in io.Reader, out io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "pushgo-bench load process:", err)
		return 1
	}
	br := bufio.NewReaderSize(in, 1<<20)
	l, err := br.ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("read spec: %w", err))
	}
	var spec loadSpec
	if err := json.Unmarshal(l, &spec); err != nil {
		return fail(fmt.Errorf("spec: %w", err))
	}
	lg, err := newLoadGen(spec)
	if err != nil {
		return fail(err)
	}
	defer lg.close()
	if _, err := io.WriteString(out, "ready\n"); err != nil {
		return fail(err)
	}
	if l, err := br.ReadString('\n'); err != nil || l != "go\n" {
		return fail(fmt.Errorf("waiting for go: %q, %v", l, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.Limit)
	defer cancel()
	go func() { // the parent closes the input to stop the loop
		_, _ = io.Copy(io.Discard, br)
		cancel()
	}()
	cpu0, began := processCPU(), time.Now()
	res := lg.run(ctx)
	rep := newLoadReport(res)
	if lg.kthreads != nil {
		st := stallsOf(lg.kthreads.close(), res.tail, res.from, res.to)
		rep.Stalls = &st
	}
	rep.From, rep.To, rep.Tail = res.from, res.to, res.tail
	rep.Began = began
	rep.CPU = processCPU() - cpu0
	rep.Succeeded = lg.succeeded.Load()
	if lg.integ != nil {
		for i := range rep.AMOuts {
			rep.AMOuts[i] = lg.integ.amOuts[i].Load()
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return fail(err)
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		return fail(err)
	}
	return 0
}

var errSpec = errors.New("load spec")

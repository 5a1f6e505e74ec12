package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets the test binary be what the bench binary is when it starts
// itself again: a load process (loadproc.go), the fake provider's process
// (providerproc.go), or, for the -ntfy tests, a stand-in for ntfy
// (ntfy_test.go).
func TestMain(m *testing.M) {
	switch {
	case os.Getenv(roleEnv) == roleLoad:
		os.Exit(runLoadProcess(os.Stdin, os.Stdout))
	case os.Getenv(roleEnv) == roleProvider:
		os.Exit(runProviderProcess(os.Stdin, os.Stdout))
	case os.Getenv(ntfyStandInEnv) != "":
		os.Exit(ntfyStandIn(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeGateway answers the routes of the load operations the way the
// gateway does, counts what it answered, and records which bodies it got.
type fakeGateway struct {
	srv      *httptest.Server
	answered atomic.Int64
	failEach int64 // every failEach-th request answers 503 (0: none)
	mu       sync.Mutex
	paths    map[string]int
	sizes    map[int]int
}

func newFakeGateway(t *testing.T, failEach int64) *fakeGateway {
	g := &fakeGateway{failEach: failEach, paths: map[string]int{}, sizes: map[int]int{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n := g.answered.Add(1)
		g.mu.Lock()
		g.paths[r.Method+" "+r.URL.Path]++
		g.sizes[len(b)]++
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if g.failEach > 0 && n%g.failEach == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"success":false,"error_code":"unavailable"}`)
			return
		}
		if r.URL.Path == "/thing/get" { // the answer names the thing asked for
			io.WriteString(w, `{"success":true,"data":`+string(b)+`}`)
			return
		}
		io.WriteString(w, `{"success":true,"data":{"accepted":true}}`)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) addr() string { return strings.TrimPrefix(g.srv.URL, "http://") }

func updateSpec(addr string) loadSpec {
	return loadSpec{Op: opUpdate, Addr: addr, Client: clientLight, ChannelID: "c0123456789abcdef0123456789abcde", Password: "bench-password",
		BodySize: 400, EventIDs: []string{"e1", "e2"}, ThingIDs: []string{"t1"}}
}

// The load of a row runs in another process, whose report comes back
// whole: the requests the server answered are the ones the process
// counted, its failures come back with their kinds, its CPU is counted as
// the load generator's, and its pid is not this process's.
func TestLoadProcessReportsBack(t *testing.T) {
	g := newFakeGateway(t, 10)
	ctx := context.Background()
	spec := updateSpec(g.addr()).closed(4, 100*time.Millisecond, 400*time.Millisecond)
	reps, cpu, err := runLoads(ctx, nil, spec)
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	if r.PID == os.Getpid() || r.PID <= 0 {
		t.Fatalf("the load ran in pid %d, this process is %d", r.PID, os.Getpid())
	}
	answered := g.answered.Load()
	if r.Succeeded+r.Errors < 1 || r.Ops < 1 || r.Errors < 1 {
		t.Fatalf("report %+v: want successes and the failures of every 10th request", r)
	}
	// The warm-up's failures are not recorded, its successes are counted.
	if r.Succeeded > answered || answered-r.Succeeded < r.Errors {
		t.Fatalf("the server answered %d requests, the process counted %d successes and %d failures", answered, r.Succeeded, r.Errors)
	}
	if r.ErrKinds["/event/update 503 unavailable"]+r.ErrKinds["/thing/update 503 unavailable"] != int(r.Errors) {
		t.Fatalf("error kinds %v for %d errors", r.ErrKinds, r.Errors)
	}
	if r.P50 <= 0 || r.P99 < r.P50 || r.Elapsed <= 0 || r.Rate <= 0 {
		t.Fatalf("latencies and rate: %+v", r)
	}
	if cpu.load <= 0 {
		t.Fatalf("the load process's CPU is not counted as the load generator's: %+v", cpu)
	}
	res := r.result(cpu)
	if res.ops != r.Ops || res.errors != r.Errors || res.p99 != r.P99 || res.cpu != cpu {
		t.Fatalf("row %+v from report %+v", res, r)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paths["POST /event/update"] == 0 || g.paths["POST /thing/update"] == 0 {
		t.Fatalf("paths %v", g.paths)
	}
}

// An open loop in a load process issues its schedule and says so; a count
// loop issues exactly its count; two processes run at once, each reporting
// its own operation.
func TestLoadProcessLoops(t *testing.T) {
	g := newFakeGateway(t, 0)
	ctx := context.Background()
	base := updateSpec(g.addr())
	get := base
	get.Op = opThingGet
	reps, _, err := runLoads(ctx, nil,
		base.count(3, 50, time.Minute),
		get.open(2, 100, 0, 300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].Ops != 50 || reps[0].Succeeded != 50 || reps[0].Errors != 0 {
		t.Fatalf("count loop: %+v", reps[0])
	}
	if reps[1].Target != 100 || reps[1].Ops < 1 || reps[1].Errors != 0 || reps[1].PID == reps[0].PID {
		t.Fatalf("open loop: %+v (count loop's pid %d)", reps[1], reps[0].PID)
	}
	g.mu.Lock()
	gets := g.paths["POST /thing/get"]
	g.mu.Unlock()
	if int64(gets) != reps[1].Succeeded {
		t.Fatalf("the server answered %d /thing/get, the open loop counted %d", gets, reps[1].Succeeded)
	}
}

// A spec a load process cannot run fails the row before any load, with
// the process's reason; and the load only goes to loopback addresses.
func TestLoadProcessRefusesBadSpecs(t *testing.T) {
	g := newFakeGateway(t, 0)
	good := updateSpec(g.addr()).closed(1, 0, 100*time.Millisecond)
	for name, s := range map[string]loadSpec{
		"unknown op":       func() loadSpec { s := good; s.Op = "nope"; return s }(),
		"not loopback":     func() loadSpec { s := good; s.Addr = "192.0.2.1:80"; return s }(),
		"no entities":      func() loadSpec { s := good; s.EventIDs = nil; return s }(),
		"history too deep": func() loadSpec { s := good; s.Op, s.HistoryLast, s.HistoryLimit = opHistory, 10, 100; return s }(),
		"no loop":          func() loadSpec { s := good; s.Loop = ""; return s }(),
	} {
		if _, err := runLoad(context.Background(), s); err == nil || !strings.Contains(err.Error(), "not ready") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if g.answered.Load() != 0 {
		t.Fatalf("%d requests sent by refused specs", g.answered.Load())
	}
}

// A report line that is not a whole report is an error, not a zero row.
func TestParseLoadReport(t *testing.T) {
	ok := `{"pid":42,"ops":7,"elapsed":1000000000,"rate":7,"p50":1000,"p99":2000,"p999":3000,"max":4000,"errors":1,"err_kinds":{"x":1},"succeeded":9,"cpu":5000000}`
	r, err := parseLoadReport([]byte(ok))
	if err != nil || r.PID != 42 || r.Ops != 7 || r.Succeeded != 9 || r.CPU != 5*time.Millisecond || r.ErrKinds["x"] != 1 {
		t.Fatalf("%+v, %v", r, err)
	}
	for _, bad := range []string{``, `ready`, `{"ops":7}`, `{"pid":1,"ops":"7"}`, `{"pid":1,"surprise":true}`, ok[:len(ok)-1]} {
		if _, err := parseLoadReport([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A load process that is stopped (its input closed) ends its loop early and
// still exits; runLoads ends every process it started.
func TestLoadProcessStops(t *testing.T) {
	g := newFakeGateway(t, 0)
	p, err := startLoadProc(context.Background(), updateSpec(g.addr()).closed(2, 0, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.begin(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for g.answered.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g.answered.Load() == 0 {
		t.Fatal("no request reached the server")
	}
	p.stop()
	select {
	case <-p.exited:
	default:
		t.Fatal("stop returned before the process ended")
	}
	if p.waitErr != nil {
		t.Fatalf("a stopped load process ends its loop and exits by itself: %v", p.waitErr)
	}
}

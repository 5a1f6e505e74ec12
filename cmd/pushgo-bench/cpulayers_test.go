package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// Each sample counts once, for the layer of its innermost frame that
// belongs to one: an allocation for whoever allocated, Pebble for the
// store even when the fold called it, the fold for us even when nats.go
// called it back, a system call for the HTTP server that made it. Our
// share is split by the service of the outermost frame of ours: a read the
// HTTP handler serves from the projection in process is ingest's.
func TestCPUShares(t *testing.T) {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	funcs := map[string]*profile.Function{}
	loc := func(names ...string) *profile.Location { // names innermost first, as inlined lines
		l := &profile.Location{ID: uint64(len(p.Location) + 1)}
		for _, n := range names {
			f := funcs[n]
			if f == nil {
				f = &profile.Function{ID: uint64(len(p.Function) + 1), Name: n}
				funcs[n] = f
				p.Function = append(p.Function, f)
			}
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		p.Location = append(p.Location, l)
		return l
	}
	sample := func(ms int64, locs ...*profile.Location) {
		p.Sample = append(p.Sample, &profile.Sample{Value: []int64{ms / 10, ms * 1e6}, Location: locs})
	}
	sample(30, loc("runtime.mallocgc"), loc("github.com/pushgo/gateway/schemas/ops.validateThing"),
		loc("github.com/pushgo/gateway/ingest/httpapi.(*Server).accept"), loc("net/http.(*conn).serve"))
	// A read the handler serves from the projection in process: ingest's.
	sample(10, loc("github.com/pushgo/gateway/projector/store.(*Store).get"),
		loc("github.com/pushgo/gateway/projector.(*Projector).Read", "github.com/pushgo/gateway/ingest/readfwd.(*Forwarder).Get"), loc("net/http.(*conn).serve"))
	sample(30, loc("internal/runtime/syscall/linux.Syscall6", "syscall.write"), loc("net/http.(*response).finishRequest"))
	sample(20, loc("github.com/cockroachdb/pebble/v2.(*DB).Apply"), loc("github.com/pushgo/gateway/projector.(*groupFold).commit"))
	sample(10, loc("github.com/pushgo/gateway/projector.applyEntry"), loc("github.com/nats-io/nats%2ego.(*Conn).readLoop"))
	sample(10, loc("github.com/nats-io/nats%2ego.(*Conn).parse"))
	sample(10, loc("github.com/pushgo/gateway/pusher.(*partition).take"), loc("github.com/pushgo/gateway/broker/consume.(*Loop).Run"))
	sample(10, loc("github.com/nats-io/nats-server/v2/server.(*stream).internalLoop"))
	sample(5, loc("runtime.scanobject"), loc("runtime.gcBgMarkWorker"))
	sample(5, loc("runtime.schedule"), loc("runtime.mcall"))
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	s, err := readCPUShares(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := cpuShares{
		layers: [numLayers]float64{layerOurs: 60e6, layerHTTP: 30e6, layerStore: 20e6, layerClient: 10e6, layerBroker: 10e6, layerGC: 5e6, layerOther: 5e6},
		ours:   [numServices]float64{serviceIngest: 40e6, serviceProjector: 10e6, servicePusher: 10e6},
	}
	if s != want {
		t.Fatalf("shares %v, want %v", s, want)
	}
	if got, want := s.oursByService(), "ingest 29%, projector 7%, pusher 7%"; got != want {
		t.Fatalf("oursByService() = %q, want %q", got, want)
	}
	if got, want := s.String(), "ours 43%, HTTP server 21%, store (Pebble) 14%, broker 7%, NATS client 7%, GC 4%, other 4%"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got := s.oursAtZero(); math.Abs(got-140.0/80) > 1e-9 {
		t.Fatalf("oursAtZero() = %v, want %v", got, 140.0/80)
	}
	if _, err := readCPUShares(bytes.NewReader([]byte("not a profile"))); err == nil {
		t.Fatal("a file that is not a profile was read")
	}
}

// A ratio of two rows bounded with our code free in both: each rate grows
// by 1/(1 - ours' share), so a report that is 40% ours over a create that
// is 20% ours moves 0.50 to 0.50 × (1/0.6)/(1/0.8) = 0.67, and against an
// anchor with none of our code (no profile) to 0.83. The integrations
// report says which side of the budget that bound falls on.
func TestRatioOursFree(t *testing.T) {
	shares := func(ours, rest float64) cpuShares {
		var s cpuShares
		s.layers[layerOurs], s.layers[layerBroker] = ours, rest
		return s
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.005 }
	if got := ratioOursFree(0.5, shares(40, 60), shares(20, 80)); !near(got, 0.667) {
		t.Errorf("report 40%% ours over create 20%% ours: %.3f, want 0.667", got)
	}
	if got := ratioOursFree(0.5, shares(40, 60), cpuShares{}); !near(got, 0.833) {
		t.Errorf("against an anchor with none of our code: %.3f, want 0.833", got)
	}
	if got := ratioOursFree(0.5, shares(100, 0), shares(20, 80)); got != 0 {
		t.Errorf("a row all ours has no bound: %.3f, want 0", got)
	}

	// A report at 400 µs, 25% ours (100 µs), over a create at 200 µs, 20%
	// ours (40): free of its 60 µs of ours beyond the create's, it costs
	// 340 µs, so 0.45 becomes 0.45 × 400/340 = 0.53.
	if got := ratioOwnOursFree(0.45, 400*time.Microsecond, 200*time.Microsecond, shares(25, 75), shares(20, 80)); !near(got, 0.529) {
		t.Errorf("a report's own ours free: %.3f, want 0.529", got)
	}
	if got := ratioOwnOursFree(0.45, 0, 200*time.Microsecond, shares(25, 75), shares(20, 80)); got != 0 {
		t.Errorf("without a CPU an operation: %.3f, want 0", got)
	}

	base, id, name := shares(20, 80), shares(25, 75), shares(40, 60)
	r := &integReport{o: &integPhase{dtRatioBudget: 0.6}, base: result{rate: 1000, cpuPerOp: 200 * time.Microsecond},
		dtID: result{rate: 450, cpuPerOp: 400 * time.Microsecond}, dtName: result{rate: 500, cpuPerOp: 360 * time.Microsecond},
		baseShares: &base, idShares: &id, nameShares: &name}
	line := r.oursFreeLine()
	for _, want := range []string{
		"entityId at most 0.53 with a report's own work free, 0.48 with all of ours free (under it even so",
		"entityName at most 0.70 with a report's own work free, 0.67 with all of ours free (our code's to meet)",
		"budget 0.60",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	r.dtID.rate, r.dtName.rate = 700, 650
	if line := r.oursFreeLine(); line != "" {
		t.Errorf("both ratios met: %q, want no line", line)
	}
	r.baseShares = nil
	if line := r.oursFreeLine(); line != "" {
		t.Errorf("without profiles: %q, want no line", line)
	}
}

// The round-by-round bound: each round's ratio with its own profiles, and
// the median of the bounds against the budget. A row whose every round
// was profiled gets the line; one with a round unprofiled, or met, does
// not.
func TestDTRoundsLine(t *testing.T) {
	shares := func(ours, rest float64) *cpuShares {
		var s cpuShares
		s.layers[layerOurs], s.layers[layerBroker] = ours, rest
		return &s
	}
	round := func(rate float64, cpu time.Duration, s *cpuShares) profiledResult {
		return profiledResult{res: result{rate: rate, cpuPerOp: cpu}, shares: s}
	}
	us := time.Microsecond
	r := &integReport{o: &integPhase{dtRatioBudget: 0.6},
		base:   result{rate: 1000},
		dtID:   result{rate: 450},
		dtName: result{rate: 500},
		rounds: map[string][]profiledResult{
			// Every round a create of 200 µs, 20% ours.
			"base": {round(1000, 200*us, shares(20, 80)), round(1000, 200*us, shares(20, 80)), round(1000, 200*us, shares(20, 80))},
			// 0.45 at 400 µs, 25% ours: 0.53 with its own ours free
			// (TestRatioOursFree), 0.48 with all of ours free; round 2 at
			// 0.40 is bounded at 0.47, round 3 at 0.55 at 0.65.
			"dt-id": {round(450, 400*us, shares(25, 75)), round(400, 400*us, shares(25, 75)), round(550, 400*us, shares(25, 75))},
			// 40% ours at 0.50, 360 µs: 0.70 with its own ours free, each round.
			"dt-name": {round(500, 360*us, shares(40, 60)), round(500, 360*us, shares(40, 60)), round(500, 360*us, shares(40, 60))},
		}}
	line := r.dtRoundsLine()
	for _, want := range []string{
		"entityId rounds 0.45 to 0.53, 0.40 to 0.47, 0.55 to 0.65, the rounds' median ratio 0.45 at most 0.53 (under it even so",
		"entityName rounds 0.50 to 0.70, 0.50 to 0.70, 0.50 to 0.70, the rounds' median ratio 0.50 at most 0.70 (our code's to meet)",
		"budget 0.60",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	r.rounds["dt-name"][1].shares = nil
	if line := r.dtRoundsLine(); strings.Contains(line, "entityName") || !strings.Contains(line, "entityId") {
		t.Errorf("entityName with round 2 unprofiled: %q, want entityId's bound only", line)
	}
	r.dtID.rate = 650
	if line := r.dtRoundsLine(); line != "" {
		t.Errorf("entityId met, entityName unprofiled: %q, want no line", line)
	}
}

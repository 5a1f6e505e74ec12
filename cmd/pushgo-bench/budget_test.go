package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// The peer comparison's requests are 421 bytes each, ours a message the
// gateway accepts, ntfy's a JSON publish of the same title and text.
func TestPeerBodies(t *testing.T) {
	b := newPeerBodies(ids.NewChannelID(), "bench-password", ntfyTopic, peerBodySize)
	now := time.Now().UnixMilli()
	for _, n := range []uint64{0, 7, 123456, 9_999_999, 10_000_001} {
		ours, theirs := b.ours(nil, n), b.ntfy(nil, n)
		if len(ours) != peerBodySize || len(theirs) != peerBodySize {
			t.Fatalf("request %d: ours %d bytes, ntfy's %d, want %d", n, len(ours), len(theirs), peerBodySize)
		}
		var mr ops.MessageRequest
		if aerr := wire.Decode(ours, &mr); aerr != nil {
			t.Fatalf("%s: %v", ours, aerr)
		}
		if _, aerr := ops.ValidateMessage(&mr, now); aerr != nil {
			t.Fatalf("%s: %v", ours, aerr)
		}
		var pub struct{ Topic, Title, Message string }
		if err := json.Unmarshal(theirs, &pub); err != nil || pub.Topic != ntfyTopic || pub.Title != *mr.Title || pub.Message == "" {
			t.Fatalf("%s: %+v, %v", theirs, pub, err)
		}
	}
}

// The report ends with every budgeted row beside its raw anchor: the
// ratio, the budget (issue 14's: Dynatrace by name >= 0.6) and the
// verdict.
func TestBudgetsBesideAnchors(t *testing.T) {
	ms := time.Millisecond
	always, _ := broker.ParseSync("always")
	o := &options{runs: 3, concurrency: 64, client: clientLight}
	wp := &writePhase{options: o, halfLoad: 0.5, p99Budget: 20 * ms, ratioBudget: 0.5}
	wt := &writeTable{o: wp, reps: []modeReport{
		{mode: syncMode{sync: gateway.Defaults().Sync}, isDefault: true, raw: result{rate: 36000}, ours: result{rate: 6300, p99: 45 * ms, cpu: cpuUse{self: 1.9}},
			low: result{rate: 3133, p99: 178 * ms}, rawLow: &result{rate: 3133, p99: 3 * ms}, message: &result{rate: 5500, p99: 36 * ms}},
		{mode: syncMode{sync: always}, raw: result{rate: 3900}, ours: result{rate: 2000, p99: 30 * ms}, low: result{ops: 10000, rate: 1000, p99: 15 * ms}},
	}, ntfy: []ntfyRow{{cache: ntfyNoCache, res: result{rate: 5000}}}}
	pp := &projPhase{options: o, foldRatioBudget: 0.5, historyLimit: 1000, historyBudget: 20 * ms, getRate: 200, getBudget: 5 * ms}
	pr := &projReport{o: pp, ops: 1_000_000, consume: timed{took: 7300 * ms}, fold: timed{took: 66 * time.Second},
		histSingle: result{ops: 500, rate: 53, p99: 53 * ms}, get: result{ops: 2000, p99: 4 * ms, target: 200}}
	ip := &integPhase{integThings: 1, amAlerts: 1, amClients: 1}
	if err := ip.setup(&options{target: "all", concurrency: 64}); err != nil {
		t.Fatal(err)
	}
	ir := &integReport{o: ip, base: result{rate: 1000}, dtName: result{rate: 590, ops: 1}, dtID: result{rate: 610, ops: 1}}

	var out strings.Builder
	printBudgets(&out, o, []table{wt, pr, ir})
	s := out.String()
	if !strings.Contains(s, "medians of 3 runs") {
		t.Errorf("no medians in:\n%s", s)
	}
	lines := strings.Split(s, "\n")
	for _, want := range [][]string{
		{"write sync=1s, 64 clients", "JetStream sync publish 36000/s", "6300/s, p99 45.0ms, 1.90 cores", " 0.17 ", ">= 0.50", "MISSED"},
		{"write sync=1s at 50% load", "JetStream at that rate p99 3.0ms", "3133/s, p99 178ms", "p99 <= 20.0ms", "MISSED"},
		{"write sync=always, 64 clients", "JetStream sync publish 3900/s", " 0.51 ", ">= 0.50", " ok"},
		{"write sync=always at 50% load", "1000/s, p99 15.0ms", "p99 <= 20.0ms", " ok"},
		{"/message sync=1s beside ntfy, 64 clients", "ntfy no cache 5000/s", "5500/s, p99 36.0ms", " 1.10 ", ">= 1.00", " ok"},
		{"projector fold, 1000000 operations", "ordered consume 136986/s", "15152/s (66.0s)", " 0.11 ", ">= 0.50", "MISSED"},
		{"/channel/history 1000 items, 1 client", "p99 53.0ms, 53/s", "p99 <= 20.0ms", "MISSED"},
		{"/thing/get at 200/s under write load", "p99 4.0ms", "p99 <= 5.0ms", " ok"},
		{"dynatrace entityName / /event/create, 64 clients", "/event/create 1000/s", "590/s", " 0.59 ", ">= 0.60", "MISSED"},
		{"dynatrace entityId / /event/create, 64 clients", "/event/create 1000/s", "610/s", " 0.61 ", ">= 0.60", " ok"},
	} {
		var line string
		for _, l := range lines {
			if strings.HasPrefix(l, want[0]+" ") {
				line = l
			}
		}
		for _, w := range want[1:] {
			if !strings.Contains(line, w) {
				t.Errorf("%s: no %q in %q", want[0], w, line)
			}
		}
	}
	// A latency row's anchor is read beside it, never divided by.
	for _, l := range lines {
		if strings.HasPrefix(l, "write sync=1s at 50% load ") && strings.Contains(l, "0.00  p99 <=") {
			t.Errorf("a ratio printed for a latency row: %q", l)
		}
	}
	// A report without budgeted tables prints no budgets.
	out.Reset()
	printBudgets(&out, o, []table{&noopTable{p: &noopPhase{}}})
	if out.Len() != 0 {
		t.Errorf("budgets of a table without any:\n%s", out.String())
	}
}

// With -load-rate the open-loop row is named by its rate, not by a
// fraction of OURS's (which it no longer follows), in the run lines and the
// budgets; a negative rate is refused.
func TestLoadRateNamesTheRow(t *testing.T) {
	ms := time.Millisecond
	o := &options{runs: 3, concurrency: 64, client: clientLight}
	wp := &writePhase{options: o, halfLoad: 0.5, loadRate: 7000, p99Budget: 20 * ms, ratioBudget: 0.5}
	if got := lowLabel(wp); got != "ours @ 7000/s" {
		t.Errorf("run label %q", got)
	}
	wt := &writeTable{o: wp, reps: []modeReport{{mode: syncMode{sync: gateway.Defaults().Sync}, isDefault: true,
		raw: result{rate: 36000}, ours: result{rate: 6300, p99: 45 * ms}, low: result{rate: 7000, p99: 12 * ms}}}}
	var out strings.Builder
	printBudgets(&out, o, []table{wt})
	if s := out.String(); !strings.Contains(s, "write sync=1s at 7000/s ") || strings.Contains(s, "50% load") {
		t.Errorf("budgets:\n%s", s)
	}
	bad := &writePhase{halfLoad: 0.5, loadRate: -1, modeList: "default"}
	if err := bad.setup(o); err == nil {
		t.Error("a negative -load-rate was accepted")
	}
}

// TestFailuresMissTheirBudgets: a latency row whose requests failed (its
// p99 counts the successes only), or that had none, misses its budget; so
// does a ratio with failures on either side, and the ratio beside ntfy
// when ntfy's requests failed (its rate counts its successes only).
func TestFailuresMissTheirBudgets(t *testing.T) {
	ms := time.Millisecond
	wp := &writePhase{p99Budget: 20 * ms, ratioBudget: 0.5}
	if !lowOK(wp, result{ops: 100, p99: 5 * ms}) {
		t.Fatal("a clean latency row within budget missed it")
	}
	for _, r := range []result{{ops: 100, p99: 5 * ms, errors: 500}, {}} {
		if lowOK(wp, r) {
			t.Errorf("latency row %+v met its budget", r)
		}
	}
	clean := modeReport{raw: result{rate: 1000}, ours: result{rate: 600}}
	if !ratioOK(wp, clean) {
		t.Fatal("a clean ratio within budget missed it")
	}
	for _, r := range []modeReport{{raw: result{rate: 1000, errors: 3}, ours: result{rate: 600}}, {raw: result{rate: 1000}, ours: result{rate: 600, errors: 3}}} {
		if ratioOK(wp, r) {
			t.Errorf("ratio with failures %+v met its budget", r)
		}
	}
	pair := peerPair{ours: modeReport{message: &result{rate: 100}}, ntfy: ntfyRow{res: result{rate: 90}}, budget: 1}
	if !pair.ok() {
		t.Fatal("a clean peer pair within budget missed it")
	}
	pair.ntfy.res.errors = 10_000
	if pair.ok() {
		t.Error("the ratio beside ntfy met its budget with ntfy's requests failing")
	}
}

// TestFoldCoresAreAMedian: the fold row's cores are the median of its
// runs' (the header says median), while its CPU figures stay the most
// disturbed run's; they were that run's cores.
func TestFoldCoresAreAMedian(t *testing.T) {
	runs := []timed{
		{took: time.Second, cpu: cpuUse{self: 1.0}, cores: 1.0},
		{took: time.Second, cpu: cpuUse{self: 1.5}, cores: 1.5},
		{took: time.Second, cpu: cpuUse{self: 2.0, others: 0.3}, cores: 2.0},
	}
	m := median(runs)
	if m.cores != 1.5 || m.cpu.self != 2.0 {
		t.Fatalf("median cores %.2f (cpu.self %.2f), want 1.50 (and the busiest run's 2.00)", m.cores, m.cpu.self)
	}
}

// TestUnsettledRunIsNotHidden: a run whose projector did not settle keeps
// its note in the median's, whichever run it was (only the last run's
// note was kept, and an earlier run's backlog, on which the next started,
// went unsaid).
func TestUnsettledRunIsNotHidden(t *testing.T) {
	runs := []result{{note: "projector: backlog 500 ops at phase end, NOT settled after 30s"}, {}, {note: "projector kept up"}}
	if m := median(runs); !strings.Contains(m.note, "NOT settled") || !strings.Contains(m.note, "run 1 of 3") {
		t.Fatalf("note %q, want run 1's NOT settled", m.note)
	}
	if m := median([]result{{}, {note: "projector kept up"}}); m.note != "projector kept up (last run)" {
		t.Fatalf("note %q, want the last run's", m.note)
	}
}

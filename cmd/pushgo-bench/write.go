package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
)

// The write phase (-phases write): for each sync mode, the raw JetStream
// ceiling of the same broker configuration (raw.go), the gateway's write
// path at its maximum rate (ours.go), and its latency at a fraction of that
// rate (mode.go).

func init() { registerPhase(10, func() phase { return &writePhase{} }) }

// writePhase is the write phase's flags, with the common options.
type writePhase struct {
	*options
	ntfyOptions         // -ntfy: ntfy beside ours (ntfy.go)
	halfLoad    float64 // fraction of OURS's rate for the open-loop phase
	loadRate    float64 // -load-rate: the open-loop phase's rate in ops/s, whatever OURS's (0: halfLoad)
	cpuProfile  string
	halfProfile string
	halfTrace   string
	halfAllocs  string // -halfallocprofile
	diag        bool
	modeList    string
	modes       []syncMode
	p99Budget   time.Duration
	ratioBudget float64
}

// syncMode is one durability setting under test.
type syncMode struct {
	sync broker.Sync
}

// isDefault reports whether m is the gateway's default (sync=1s).
func (m syncMode) isDefault() bool { return m.sync == gateway.Defaults().Sync }

func (m syncMode) label() string { return "sync=" + m.sync.String() }

func (*writePhase) name() string  { return "write" }
func (*writePhase) about() string { return "raw vs ours, per sync mode" }

func (p *writePhase) flags(fs *flagSet) {
	fs.Float64Var(&p.halfLoad, "load", 0.5, "open-loop rate as a fraction of OURS's measured rate")
	fs.Float64Var(&p.loadRate, "load-rate", 0, "open-loop rate in ops/s, instead of -load's fraction of OURS's measured rate: to compare builds or settings at the same rate (the rate follows each run's machine otherwise)")
	fs.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of the first OURS (http) phase to this file")
	fs.StringVar(&p.halfProfile, "halfprofile", "", "write a CPU profile of the first OURS open-loop (-load) phase to this file")
	fs.StringVar(&p.halfTrace, "halftrace", "", "write an execution trace (runtime/trace) of the first OURS open-loop (-load) phase to this file: what the process did while the row's slow requests waited")
	fs.StringVar(&p.halfAllocs, "halfallocprofile", "", "write what the process allocated during the first OURS open-loop (-load) phase to this file (a heap profile's difference, after a collection at each end) and print whose allocations they were: the garbage the collection cycles under that row's tail collect")
	fs.BoolVar(&p.diag, "diag", false, "also measure GET /healthz closed-loop (the HTTP-only floor), ours through the other HTTP client, and HTTP + publish (net/http publishing each body, nothing else) closed-loop (informational rows)")
	fs.StringVar(&p.modeList, "modes", "default,always", `comma-separated sync modes: "default" (gateway.Defaults().Sync), "always", or an fsync interval`)
	p.ntfyFlags(fs)
}

func (p *writePhase) setup(o *options) error {
	p.options = o
	if p.halfLoad <= 0 || p.halfLoad > 1 {
		return errors.New("-load must be within (0, 1]")
	}
	if p.loadRate < 0 {
		return errors.New("-load-rate must be positive (or 0: -load)")
	}
	p.p99Budget, p.ratioBudget = 20*time.Millisecond, 0.5
	for _, s := range strings.Split(p.modeList, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		m := syncMode{sync: gateway.Defaults().Sync}
		if s != "default" {
			var err error
			if m.sync, err = broker.ParseSync(s); err != nil {
				return err
			}
		}
		p.modes = append(p.modes, m)
	}
	if len(p.modes) == 0 {
		return errors.New("-modes names no mode")
	}
	if err := distinctOutputs(map[string]string{"-cpuprofile": p.cpuProfile, "-halfprofile": p.halfProfile,
		"-halfallocprofile": p.halfAllocs, "-halftrace": p.halfTrace, "-messageprofile": p.messageProfile}); err != nil {
		return err
	}
	return p.ntfySetup()
}

func (p *writePhase) header() string { return "write" }

func (p *writePhase) loadNote() string {
	modes := make([]string, len(p.modes))
	for i, m := range p.modes {
		modes[i] = m.label()
	}
	return "modes: " + strings.Join(modes, ", ") + p.ntfyHeader()
}

// limit: four timed phases per run (the raw publish, ours, ours at the
// open-loop rate and the raw publish at that rate; seven with -diag, one
// more with -ntfy), plus generous room for start-up, entity creation, the
// projector's catch-up and shutdown; and ntfy's runs.
func (p *writePhase) limit() time.Duration {
	perRun := 7*(p.duration+p.warmup+15*time.Second) + 3*settleLimit
	return time.Duration(len(p.modes))*(time.Duration(p.runs)*perRun+2*time.Minute) + p.ntfyLimit(p.runs, p.warmup, p.duration)
}

func (p *writePhase) run(ctx context.Context) (table, error) {
	t := &writeTable{o: p}
	for i, m := range p.modes {
		rep, err := benchMode(ctx, p, m, i == 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.label(), err)
		}
		t.reps = append(t.reps, rep)
	}
	if p.ntfyPath != "" {
		for _, r := range t.reps {
			t.ntfy = append(t.ntfy, r.ntfy...)
		}
		rows, err := benchNtfy(ctx, p, t.ntfy)
		if err != nil {
			return nil, err
		}
		t.ntfy = append(t.ntfy, rows...)
	}
	return t, nil
}

// writeTable is the write phase's table: one modeReport per sync mode.
type writeTable struct {
	o    *writePhase
	reps []modeReport
	ntfy []ntfyRow // with -ntfy
}

func (t *writeTable) print(w io.Writer) {
	printWriteTable(w, t.o, t.reps)
	if len(t.ntfy) > 0 {
		printNtfyTable(w, t.o, t.reps, t.ntfy)
	}
}
func (t *writeTable) vouches() string { return "" }

func (t *writeTable) failures() []failure {
	var out []failure
	for _, r := range t.reps {
		out = append(out, resultFailures(r.mode.label()+" ", r.rows(t.o))...)
	}
	// ntfy's failed requests are its own finding (a durable cache answers
	// 500 "database is locked" under this load): the side by side prints
	// them; they do not fail the run.
	return out
}

// budgets: per sync mode, ours over raw JetStream and the open-loop p99;
// with -ntfy, ours at sync=1s over ntfy with no cache.
func (t *writeTable) budgets() []budgetRow {
	o := t.o
	var out []budgetRow
	for _, r := range t.reps {
		m := r.mode.label()
		out = append(out, budgetRow{
			stage:  fmt.Sprintf("write %s, %d clients", m, o.concurrency),
			anchor: "JetStream sync publish " + fmtRate(r.raw.rate),
			ours:   fmt.Sprintf("%s, p99 %s, %.2f cores", fmtRate(r.ours.rate), fmtDur(r.ours.p99), r.ours.sutCores()),
			ratio:  ratio(r), budget: fmt.Sprintf(">= %.2f", o.ratioBudget), ok: ratioOK(o, r),
		}, budgetRow{
			stage:  fmt.Sprintf("write %s at %s", m, o.loadName()),
			anchor: rawLowAnchor(r), latency: true,
			ours:   fmt.Sprintf("%s, p99 %s, %.2f cores", fmtRate(r.low.rate), fmtDur(r.low.p99), r.low.sutCores()),
			budget: "p99 <= " + fmtDur(o.p99Budget), ok: lowOK(o, r.low),
		})
	}
	for _, p := range peerPairs(t.reps, t.ntfy) {
		if p.budget == 0 {
			continue
		}
		out = append(out, budgetRow{
			stage:  fmt.Sprintf("/message %s beside ntfy, %d clients", p.ours.mode.label(), o.concurrency),
			anchor: fmt.Sprintf("ntfy %s %s", p.ntfy.cache.label(), fmtRate(p.ntfy.res.rate)),
			ours:   fmt.Sprintf("%s, p99 %s, %.2f cores", fmtRate(p.ours.message.rate), fmtDur(p.ours.message.p99), p.ours.message.sutCores()),
			ratio:  p.ratio(), budget: fmt.Sprintf(">= %.2f", p.budget), ok: p.ok(),
		})
	}
	return out
}

// printWriteTable prints the write phase: per sync mode, raw JetStream,
// ours, the open-loop row and the -diag rows, then the budgets.
func printWriteTable(w io.Writer, o *writePhase, reps []modeReport) {
	row := func(mode, phase string, r result, note string) {
		line := fmt.Sprintf("%-12s %-16s %8.0f %9s %9s   %s", mode, phase, r.rate, fmtDur(r.p50), fmtDur(r.p99), note)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-12s %-16s %8s %9s %9s   %s\n", "mode", "phase", "ops/s", "p50", "p99", "ratio")
	for _, r := range reps {
		mode := r.mode.label()
		row(mode, "raw jetstream", r.raw, "")
		row(mode, "ours (http)", r.ours, fmt.Sprintf("%.2f (budget >= %.2f: %s)", ratio(r), o.ratioBudget, verdict(ratio(r) >= o.ratioBudget)))
		if a := r.oursAlt; a != nil {
			row(mode, o.altLabel(), *a, fmt.Sprintf("%.2f (diag: the same load through the other HTTP client)", a.rate/max(r.raw.rate, 1)))
		}
		if f := r.floor; f != nil {
			row(mode, "http floor", *f, fmt.Sprintf("%.2f (diag: GET /healthz, HTTP only)", f.rate/max(r.raw.rate, 1)))
		}
		row(mode, lowLabel(o), r.low, fmt.Sprintf("(p99 budget %s: %s; target %.0f/s, late %d, skipped %d)",
			fmtDur(o.p99Budget), verdict(lowOK(o, r.low)), r.low.target, r.low.late, r.low.skipped))
		if rl := r.rawLow; rl != nil {
			row(mode, rawLowLabel, *rl, fmt.Sprintf("(the open-loop row's anchor: raw jetstream open loop at its rate; late %d, skipped %d)", rl.late, rl.skipped))
		}
		if a := r.appendFloor; a != nil {
			row(mode, appendFloorLabel, *a, fmt.Sprintf("%.2f (diag: net/http reads the body and publishes it, nothing else; ours/this %.2f)",
				a.rate/max(r.raw.rate, 1), r.ours.rate/max(a.rate, 1)))
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "budgets (informational; load through the %s client):\n", o.client)
	for _, r := range reps {
		fmt.Fprintf(w, "  %-12s ratio ours/raw %.2f >= %.2f: %-6s  p99 at %s %s <= %s: %s\n", r.mode.label(),
			ratio(r), o.ratioBudget, verdict(ratio(r) >= o.ratioBudget), o.loadName(), fmtDur(r.low.p99), fmtDur(o.p99Budget),
			verdict(lowOK(o, r.low)))
	}

	for _, r := range reps {
		for _, p := range r.rows(o) {
			if p.res.note != "" {
				fmt.Fprintf(w, "  %-12s %s: %s\n", r.mode.label(), p.name, p.res.note)
			}
		}
	}
	for _, r := range reps {
		for _, p := range r.rows(o) {
			if disturbed(*p.res) {
				fmt.Fprintf(w, "  note: %s %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
					r.mode.label(), p.name, p.res.cpu.others, numCPU())
			}
		}
	}
}

// rows lists the measured rows of r, in table order.
func (r *modeReport) rows(o *writePhase) []namedResult {
	out := []namedResult{{"raw jetstream", &r.raw}, {"ours (http)", &r.ours}, {lowLabel(o), &r.low}}
	if r.oursAlt != nil {
		out = append(out, namedResult{o.altLabel(), r.oursAlt})
	}
	if r.floor != nil {
		out = append(out, namedResult{"http floor", r.floor})
	}
	if r.rawLow != nil {
		out = append(out, namedResult{rawLowLabel, r.rawLow})
	}
	if r.appendFloor != nil {
		out = append(out, namedResult{appendFloorLabel, r.appendFloor})
	}
	if r.message != nil {
		out = append(out, namedResult{messageLabel, r.message})
	}
	return out
}

func ratio(r modeReport) float64 {
	if r.raw.rate <= 0 {
		return 0
	}
	return r.ours.rate / r.raw.rate
}

// lowOK is the latency budget: p99 within budget, measured from the
// scheduled times, every scheduled operation issued and none failed (the
// p99 counts the successes only: a run whose requests timed out, or that
// had none, passed).
func lowOK(o *writePhase, r result) bool {
	return r.ops > 0 && r.errors == 0 && r.p99 <= o.p99Budget && r.skipped == 0
}

// ratioOK is the throughput budget: the ratio within budget, with neither
// side's operations failed (a failed raw publish shrank the anchor and
// raised the ratio).
func ratioOK(o *writePhase, r modeReport) bool {
	return r.ours.errors == 0 && r.raw.errors == 0 && ratio(r) >= o.ratioBudget
}

// rawLowAnchor is the open-loop row's anchor in the budgets: the raw
// publish's p99 at the same rate ("" when not measured).
func rawLowAnchor(r modeReport) string {
	if r.rawLow == nil {
		return ""
	}
	return "JetStream at that rate p99 " + fmtDur(r.rawLow.p99)
}

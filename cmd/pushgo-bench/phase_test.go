package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every registered phase has a unique name, flags of its own that parse
// (their defaults and their -quick values), and can be selected alone.
func TestPhaseRegistry(t *testing.T) {
	all := newPhases()
	if len(all) == 0 {
		t.Fatal("no phase registered")
	}
	want := []string{"write", "projector", "delivery", "integrations", "cluster"} // table order
	if got := names(all, false); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("phases %v, want %v", got, want)
	}
	seen := map[string]bool{}
	flagOwner := map[string]string{}
	for _, p := range all {
		name := p.name()
		if name == "" || strings.ContainsAny(name, ", ") || seen[name] {
			t.Errorf("phase name %q: empty, with a separator, or registered twice", name)
		}
		seen[name] = true
		if p.about() == "" {
			t.Errorf("%s: no about", name)
		}
		fs := newFlagSet(name)
		p.flags(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if other, dup := flagOwner[f.Name]; dup {
				t.Errorf("flag -%s of %s is also %s's", f.Name, name, other)
			}
			flagOwner[f.Name] = name
			if err := fs.Set(f.Name, f.DefValue); err != nil {
				t.Errorf("%s: -%s default %q does not parse: %v", name, f.Name, f.DefValue, err)
			}
		})
		for f, v := range fs.quickValues {
			if err := fs.Set(f, v); err != nil {
				t.Errorf("%s: -%s -quick value %q does not parse: %v", name, f, v, err)
			}
		}

		o, err := parseFlags([]string{"-quick", "-phases", name})
		if err != nil {
			t.Fatalf("-phases %s: %v", name, err)
		}
		if len(o.phases) != 1 || o.phases[0].name() != name {
			t.Fatalf("-phases %s selected %v", name, names(o.phases, false))
		}
		if o.phases[0].header() == "" || o.phases[0].limit() <= 0 {
			t.Errorf("%s: header %q, limit %s", name, o.phases[0].header(), o.phases[0].limit())
		}
	}

	// The default selects every phase but the opt-in cluster, in table
	// order, whatever the order given; the deadline is the sum of theirs.
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	for _, p := range o.phases {
		total += p.limit()
	}
	if len(o.phases) != len(all)-1 || hasPhase(o.phases, "cluster") || o.hardLimit() != total {
		t.Fatalf("default: %d phases, hard limit %s (sum %s)", len(o.phases), o.hardLimit(), total)
	}
	o, err = parseFlags([]string{"-phases", "integrations, write"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(o.phases, false), ","); got != "write,integrations" {
		t.Fatalf("-phases integrations,write selected %s", got)
	}
	for _, bad := range [][]string{{"-phases", "nope"}, {"-phases", ","}, {"-phases", "write", "-modes", ","}, {"-phases", "projector", "-target", "ingest"}, {"-ops", "0"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// An unselected phase's flags are accepted and not checked.
	if _, err := parseFlags([]string{"-phases", "write", "-ops", "0", "-provider", "x"}); err != nil {
		t.Errorf("unselected phases' flags: %v", err)
	}
}

// -quick gives the flags marked with a -quick value that value, unless they
// are given, and remembers which it lowered.
func TestQuick(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-duration", "7s", "-history-reqs", "9"})
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 7*time.Second || o.warmup != 500*time.Millisecond || o.lowered["duration"] || !o.lowered["warmup"] {
		t.Fatalf("duration %s, warmup %s, lowered %v", o.duration, o.warmup, o.lowered)
	}
	var proj *projPhase
	var integ *integPhase
	for _, p := range o.phases {
		switch p := p.(type) {
		case *projPhase:
			proj = p
		case *integPhase:
			integ = p
		}
	}
	if proj.ops != 100_000 || proj.historyReqs != 9 || integ.integThings != 20_000 {
		t.Fatalf("ops %d, history-reqs %d, integ-things %d", proj.ops, proj.historyReqs, integ.integThings)
	}
	if !strings.Contains(integ.header(), "-quick") {
		t.Fatalf("header does not say -quick lowered -integ-things: %s", integ.header())
	}
	if o, err = parseFlags(nil); err != nil || o.duration != 10*time.Second || len(o.lowered) != 0 {
		t.Fatalf("without -quick: duration %s, lowered %v, %v", o.duration, o.lowered, err)
	}
}

// median combines each row type column by column: medians of the rates,
// latencies and counts of a row, sums of the failures, the most disturbed
// run's CPU; rows nested in a row by their own columns.
func TestMedianColumns(t *testing.T) {
	ms := time.Millisecond
	odd := []result{
		{rate: 30, p50: 3 * ms, p99: 9 * ms, ops: 10, errors: 1, errKinds: map[string]int{"a": 1}, cpu: cpuUse{self: 1, others: 0.5}, note: "first"},
		{rate: 10, p50: 1 * ms, p99: 30 * ms, ops: 20, skipped: 2, cpu: cpuUse{self: 2, others: 0.1}, note: "second", p999: time.Second},
		{rate: 20, p50: 2 * ms, p99: 7 * ms, ops: 30, errors: 2, errKinds: map[string]int{"a": 1, "b": 2}, cpu: cpuUse{self: 3, others: 0.5}},
	}
	m := median(odd)
	if m.rate != 20 || m.p50 != 2*ms || m.p99 != 9*ms || m.ops != 60 || m.errors != 3 || m.skipped != 2 {
		t.Errorf("odd: %+v", m)
	}
	if m.errKinds["a"] != 2 || m.errKinds["b"] != 2 || m.cpu.self != 3 || m.note != "second (last run)" || m.p999 != 0 {
		t.Errorf("odd: kinds %v, cpu %+v, note %q, p99.9 %s (not combined: zero)", m.errKinds, m.cpu, m.note, m.p999)
	}
	load := median([]result{{cores: 1.5, cpuPerOp: 300 * time.Microsecond, cpu: cpuUse{self: 1.5}}, {cores: 0.5, cpuPerOp: 100 * time.Microsecond, cpu: cpuUse{self: 0.5, others: 1}},
		{cores: 1, cpuPerOp: 200 * time.Microsecond, cpu: cpuUse{self: 1}}})
	if load.cores != 1 || load.cpuPerOp != 200*time.Microsecond || load.sutCores() != 1 || load.cpu.self != 0.5 {
		t.Errorf("the system's cores and CPU per operation are medians, cpu the most disturbed run's: %+v", load)
	}
	if m := median(odd[:2]); m.rate != 20 || m.p50 != 2*ms || m.p99 != 19500*time.Microsecond {
		t.Errorf("even: the mean of the middle two: %+v", m)
	}
	if m := median(odd[1:2]); m.p999 != time.Second || m.note != "second" {
		t.Errorf("one run is itself: %+v", m)
	}
	if m := median([]result(nil)); m.rate != 0 {
		t.Errorf("no run: %+v", m)
	}

	d := median([]deliveryRow{
		{notifs: 100, rate: 5, opsBacklog: 7, dups: 1, late: 1},
		{notifs: 300, rate: 1, opsBacklog: 1, dups: 2},
		{notifs: 200, rate: 3, opsBacklog: 3, errors: 4},
	})
	if d.notifs != 200 || d.rate != 3 || d.opsBacklog != 3 || d.dups != 3 || d.late != 1 || d.errors != 4 {
		t.Errorf("delivery: %+v", d)
	}

	g := median([]getRound{
		{get: result{p99: 5 * ms, errors: 1}, load: result{rate: 100}},
		{get: result{p99: 1 * ms}, load: result{rate: 300}},
		{get: result{p99: 3 * ms}, load: result{rate: 200, errors: 2}},
	})
	if g.get.p99 != 3*ms || g.get.errors != 1 || g.load.rate != 200 || g.load.errors != 2 {
		t.Errorf("nested: %+v", g)
	}
}

// repeat runs -runs times with the run's index, returns the median, and
// stops at the first error, naming the measurement.
func TestRepeat(t *testing.T) {
	o := &options{runs: 3}
	var seen []int
	r, err := repeat(context.Background(), o, "test", func(run int) (result, error) {
		seen = append(seen, run)
		return result{rate: float64(10 - run)}, nil
	})
	if err != nil || r.rate != 9 || len(seen) != 3 || seen[0] != 0 || seen[2] != 2 {
		t.Fatalf("repeat: %+v, %v, runs %v", r, err, seen)
	}
	boom := errors.New("boom")
	calls := 0
	_, err = repeat(context.Background(), o, "test", func(run int) (result, error) {
		calls++
		if run == 1 {
			return result{}, boom
		}
		return result{}, nil
	})
	if !errors.Is(err, boom) || err.Error() != "test: boom" || calls != 2 {
		t.Fatalf("error: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	if _, err = repeat(ctx, o, "test", func(int) (result, error) { calls++; return result{}, nil }); !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("cancelled: %v after %d calls", err, calls)
	}
}

// rounds runs every row once per round, the rows in order within a round,
// -runs rounds, and returns each row's median; the first error names its
// row and ends the rounds.
func TestRounds(t *testing.T) {
	o := &options{runs: 3}
	var order []string
	rows, err := rounds(context.Background(), o, []string{"a", "b"}, func(i, run int) (result, error) {
		order = append(order, fmt.Sprintf("%c%d", 'a'+i, run))
		return result{rate: float64(10*(i+1) + run)}, nil
	})
	if err != nil || strings.Join(order, " ") != "a0 b0 a1 b1 a2 b2" {
		t.Fatalf("order %v, %v", order, err)
	}
	if len(rows) != 2 || rows[0].rate != 11 || rows[1].rate != 21 {
		t.Fatalf("medians %+v", rows)
	}
	boom := errors.New("boom")
	calls := 0
	_, err = rounds(context.Background(), o, []string{"a", "b"}, func(i, run int) (result, error) {
		calls++
		if i == 1 && run == 1 {
			return result{}, boom
		}
		return result{}, nil
	})
	if !errors.Is(err, boom) || err.Error() != "b: boom" || calls != 4 {
		t.Fatalf("error: %v after %d calls", err, calls)
	}
}

// A phase is one file: this one, registered for the test only, gets its
// own flag and -quick value, is selected by -phases, repeats its
// measurement -runs times and reports through the common report.
func TestOnePhaseIsOneFile(t *testing.T) {
	defer func(saved []registeredPhase) { registry = saved }(slices.Clone(registry))
	registerPhase(50, func() phase { return &noopPhase{} })

	for _, fail := range []bool{false, true} {
		args := []string{"-quick", "-phases", "noop", "-duration", "20ms", "-warmup", "0s", "-runs", "3"}
		if fail {
			args = append(args, "-noop-fail")
		}
		o, err := parseFlags(args)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		printHeader(&out, o)
		if len(o.phases) != 1 || !strings.Contains(out.String(), "phases: noop (1 workers)") || o.hardLimit() != time.Minute {
			t.Fatalf("%v: header %q, hard limit %s", args, out.String(), o.hardLimit())
		}
		tbl, err := o.phases[0].run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		failed := printReport(&out, o, []table{tbl})
		report := out.String()
		if failed != fail || !strings.Contains(report, "noop: 3 runs") ||
			strings.Contains(report, "errors: 0 (every request") == fail || strings.Contains(report, "!!! noop: always: ") != fail || strings.Contains(report, "FAILED operations") != fail {
			t.Fatalf("%v: failed %v, report:\n%s", args, failed, report)
		}
	}
}

type noopPhase struct {
	*options
	workers int
	fail    bool
	ran     int
}

func (*noopPhase) name() string  { return "noop" }
func (*noopPhase) about() string { return "an operation that does nothing, closed loop" }

func (p *noopPhase) flags(fs *flagSet) {
	fs.IntVar(&p.workers, "noop-workers", 2, "workers of the noop phase")
	fs.BoolVar(&p.fail, "noop-fail", false, "every noop operation fails")
	fs.quick("noop-workers", "1")
}

func (p *noopPhase) setup(o *options) error { p.options = o; return nil }
func (p *noopPhase) header() string         { return fmt.Sprintf("noop (%d workers)", p.workers) }
func (p *noopPhase) limit() time.Duration   { return time.Minute }

func (p *noopPhase) run(ctx context.Context) (table, error) {
	op := func(context.Context, *worker) error {
		if p.fail {
			return errors.New("noop failed")
		}
		return nil
	}
	r, err := repeat(ctx, p.options, "noop", func(int) (result, error) {
		p.ran++
		return closedLoop(ctx, p.workers, p.warmup, p.duration, op, false), nil
	})
	return &noopTable{p: p, r: r}, err
}

type noopTable struct {
	p *noopPhase
	r result
}

func (t *noopTable) print(w io.Writer) { fmt.Fprintf(w, "noop: %d runs\n", t.p.ran) }
func (t *noopTable) vouches() string   { return "" }
func (t *noopTable) failures() []failure {
	return resultFailures("noop: ", []namedResult{{"always", &t.r}})
}

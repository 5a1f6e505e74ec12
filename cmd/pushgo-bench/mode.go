package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"
)

// modeReport is the measured phases of one sync mode.
type modeReport struct {
	mode           syncMode
	raw, ours, low result
	// -diag only: GET /healthz closed loop, raw JetStream open loop at the
	// rate of the low phase, and OURS through the other HTTP client.
	floor, rawLow, oursAlt *result
}

// benchMode runs raw, ours and the open-loop phase for one sync mode, each
// o.runs times, and keeps the medians. The open-loop rate is a fraction of
// the median OURS rate of this mode.
func benchMode(ctx context.Context, o options, m syncMode) (rep modeReport, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep.mode = m
	fmt.Fprintf(os.Stderr, "== %s\n", m.label())

	// Each raw run gets a fresh broker and store.
	rawRun := func(measure func(*rawTarget) result) func() (result, error) {
		return func() (result, error) {
			r, err := startRaw(ctx, o, m, log)
			if err != nil {
				return result{}, fmt.Errorf("raw jetstream: %w", err)
			}
			defer r.close()
			return measure(r), nil
		}
	}
	if rep.raw, err = repeat(ctx, o, "raw jetstream", rawRun(func(r *rawTarget) result {
		return closedLoop(ctx, o.concurrency, o.warmup, o.duration, r.publish)
	})); err != nil {
		return rep, err
	}

	// One gateway serves every HTTP phase of this mode.
	t, err := startTarget(ctx, o, m, log)
	if err != nil {
		return rep, err
	}
	defer t.close()

	profiled := false
	if rep.ours, err = repeat(ctx, o, "ours (http)", func() (result, error) {
		stop := func() {}
		if o.cpuProfile != "" && !profiled && m == o.modes[0] {
			profiled = true
			var perr error
			if stop, perr = startCPUProfile(o.cpuProfile, "OURS (http)"); perr != nil {
				return result{}, perr
			}
		}
		r := closedLoop(ctx, o.concurrency, o.warmup, o.duration, t.update)
		stop()
		r.note = t.settleNote(ctx)
		return r, nil
	}); err != nil {
		return rep, err
	}

	if o.diag {
		a, err := repeat(ctx, o, altLabel(o), func() (result, error) {
			r := closedLoop(ctx, o.concurrency, o.warmup, o.duration, t.updateOther)
			r.note = t.settleNote(ctx)
			return r, nil
		})
		if err != nil {
			return rep, err
		}
		rep.oursAlt = &a
		f, err := repeat(ctx, o, "http floor", func() (result, error) {
			return closedLoop(ctx, o.concurrency, o.warmup, o.duration, t.healthz), nil
		})
		if err != nil {
			return rep, err
		}
		rep.floor = &f
	}

	rate := rep.ours.rate * o.halfLoad
	if rate < 1 {
		return rep, fmt.Errorf("OURS measured %.1f ops/s: no rate to run the open-loop phase at", rep.ours.rate)
	}
	if rep.low, err = repeat(ctx, o, lowLabel(o), func() (result, error) {
		r := openLoop(ctx, o.concurrency, rate, o.warmup, o.duration, t.update)
		r.note = t.settleNote(ctx)
		return r, nil
	}); err != nil {
		return rep, err
	}

	if o.diag {
		t.close() // free the CPU and the disk for the raw broker
		r, err := repeat(ctx, o, "raw @ same rate", rawRun(func(r *rawTarget) result {
			return openLoop(ctx, o.concurrency, rate, o.warmup, o.duration, r.publish)
		}))
		if err != nil {
			return rep, err
		}
		rep.rawLow = &r
	}
	return rep, nil
}

// settleNote waits for the projector to catch up after a phase and says
// how far behind it was ("" without a projector).
func (t *target) settleNote(ctx context.Context) string {
	if t.gw.Projector() == nil {
		return ""
	}
	backlog, took, ok := t.settle(ctx)
	if !ok {
		return fmt.Sprintf("projector: backlog %d ops at phase end, NOT caught up after %s (lag now %d)",
			backlog, took.Round(time.Second), t.gw.Projector().Lag())
	}
	if backlog == 0 {
		return "projector kept up (lag 0 at phase end)"
	}
	return fmt.Sprintf("projector: backlog %d ops at phase end, folded in %s", backlog, took.Round(10*time.Millisecond))
}

// repeat measures o.runs times, printing each run, and returns the median.
func repeat(ctx context.Context, o options, phase string, measure func() (result, error)) (result, error) {
	var rs []result
	for i := range o.runs {
		r, err := measure()
		if err != nil {
			return result{}, err
		}
		progress(o, phase, i, r)
		rs = append(rs, r)
		if err := ctx.Err(); err != nil {
			return result{}, fmt.Errorf("%s: %w", phase, err)
		}
	}
	return median(rs), nil
}

func lowLabel(o options) string { return fmt.Sprintf("ours @ %.0f%%", o.halfLoad*100) }

// altLabel names the -diag OURS row through the other HTTP client.
func altLabel(o options) string {
	if o.client == clientLight {
		return "ours (nethttp)"
	}
	return "ours (light)"
}

func progress(o options, phase string, run int, r result) {
	extra := ""
	if r.target > 0 {
		extra = fmt.Sprintf(" (target %.0f/s, late %d, skipped %d)", r.target, r.late, r.skipped)
	}
	fmt.Fprintf(os.Stderr, "  run %d  %-16s %8.0f ops/s  p50 %s  p99 %s  p99.9 %s  max %s  errors %d%s  [%d ops in %s; cpu: us %.2f cores, others %.2f of %d]\n",
		run+1, phase, r.rate, fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.p999), fmtDur(r.max), r.errors, extra,
		r.ops, r.elapsed.Round(time.Millisecond), r.cpu.self, r.cpu.others, numCPU())
	if r.note != "" {
		fmt.Fprintln(os.Stderr, "         "+r.note)
	}
	if o.timeline {
		fmt.Fprintf(os.Stderr, "         per second: %v\n", r.perSec)
	}
	if disturbed(r) {
		fmt.Fprintf(os.Stderr, "  warning: other processes used %.2f cores during this phase: the numbers above are disturbed\n", r.cpu.others)
	}
}

func numCPU() int { return runtime.NumCPU() }

// disturbed reports a phase during which other processes took a
// noticeable share of the machine.
func disturbed(r result) bool { return r.cpu.others > 0.25 }

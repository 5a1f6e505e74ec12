package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// modeReport is the measured phases of one sync mode.
type modeReport struct {
	mode           syncMode
	raw, ours, low result
	// rawLow is raw JetStream open loop at the rate of the low phase: its
	// anchor.
	rawLow *result
	// -diag only: GET /healthz closed loop, OURS through the other HTTP
	// client, and the HTTP + publish floor (appendfloor.go).
	floor, oursAlt, appendFloor *result
	// -ntfy only: POST /message closed loop, the peer comparison's load,
	// and ntfy with the caches paired with this mode, measured in the
	// same rounds (ntfy.go).
	message   *result
	ntfy      []ntfyRow
	isDefault bool // the gateway's default mode, sync=1s
}

// appendFloorLabel names the -diag HTTP + publish row.
const appendFloorLabel = "http + publish"

// rawLowLabel names the raw publish at the open-loop row's rate.
const rawLowLabel = "raw @ same rate"

// messageLabel names the -ntfy row of ours.
const messageLabel = "ours /message"

// benchMode runs raw, ours and the open-loop phase for one sync mode, each
// o.runs times, and keeps the medians. The open-loop rate is a fraction of
// the median OURS rate of this mode.
func benchMode(ctx context.Context, o *writePhase, m syncMode, first bool) (rep modeReport, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep.mode, rep.isDefault = m, m.isDefault()
	fmt.Fprintf(os.Stderr, "== %s\n", m.label())

	// Each raw run gets a fresh broker and store.
	rawRun := func(measure func(*rawTarget) result) func(int) (result, error) {
		return func(int) (result, error) {
			return atAnchorProcs(func() (result, error) {
				r, err := startRaw(ctx, o.options, m, log)
				if err != nil {
					return result{}, err
				}
				defer r.close()
				return measure(r), nil
			})
		}
	}
	if rep.raw, err = repeat(ctx, o.options, "raw jetstream", rawRun(func(r *rawTarget) result {
		return closedLoop(ctx, o.concurrency, o.warmup, o.duration, r.publish, false)
	})); err != nil {
		return rep, err
	}

	// One gateway serves every HTTP phase of this mode.
	t, err := startTarget(ctx, o.options, m, log)
	if err != nil {
		return rep, err
	}
	defer t.close()

	// The first run of the first mode only: a later mode's first run would
	// write over the same file (first, not the mode's value: -modes may
	// name one mode twice).
	profile, halfProfile, halfAllocs, halfTrace, messageProfile := "", "", "", "", ""
	if first {
		profile, halfProfile, halfAllocs, halfTrace, messageProfile = o.cpuProfile, o.halfProfile, o.halfAllocs, o.halfTrace, o.messageProfile
	}
	if rep.ours, err = repeat(ctx, o.options, "ours (http)", func(run int) (result, error) {
		stop, err := profileRun(run, profile, "OURS (http)")
		if err != nil {
			return result{}, err
		}
		r, err := runLoad(ctx, t.spec(opUpdate).closed(o.concurrency, o.warmup, o.duration))
		stop()
		if err != nil {
			return result{}, err
		}
		r.note = t.settleNote(ctx)
		return r, nil
	}); err != nil {
		return rep, err
	}

	if o.diag {
		a, err := repeat(ctx, o.options, o.altLabel(), func(int) (result, error) {
			r, err := runLoad(ctx, t.spec(opUpdateOther).closed(o.concurrency, o.warmup, o.duration))
			if err != nil {
				return result{}, err
			}
			r.note = t.settleNote(ctx)
			return r, nil
		})
		if err != nil {
			return rep, err
		}
		rep.oursAlt = &a
		f, err := repeat(ctx, o.options, "http floor", func(int) (result, error) {
			return runLoad(ctx, t.spec(opHealthz).closed(o.concurrency, o.warmup, o.duration))
		})
		if err != nil {
			return rep, err
		}
		rep.floor = &f
	}

	rate := rep.ours.rate * o.halfLoad
	if o.loadRate > 0 {
		rate = o.loadRate
	}
	if rate < 1 {
		return rep, fmt.Errorf("OURS measured %.1f ops/s: no rate to run the open-loop phase at", rep.ours.rate)
	}
	if rep.low, err = repeat(ctx, o.options, lowLabel(o), func(run int) (result, error) {
		allocs, err := startAllocRecorder(runProfile(run, halfAllocs), "OURS open-loop")
		if err != nil {
			return result{}, err
		}
		stop, err := profileRun(run, halfProfile, "OURS open-loop")
		if err != nil {
			return result{}, err
		}
		stopTrace, err := traceRun(run, halfTrace, "OURS open-loop")
		if err != nil {
			stop()
			return result{}, err
		}
		r, err := runLoad(ctx, t.spec(opUpdate).open(o.concurrency, rate, o.warmup, o.duration))
		stopTrace()
		stop()
		if err != nil {
			return result{}, err
		}
		allocs.stop(os.Stderr, r.rate)
		r.note = t.settleNote(ctx)
		return r, nil
	}); err != nil {
		return rep, err
	}

	if o.ntfyPath != "" {
		if err := benchPeerRounds(ctx, o, t, &rep, messageProfile); err != nil {
			return rep, err
		}
	}

	// The open-loop row's anchor: the raw publish at the same rate, after
	// the gateway is closed (its CPU and disk free for the raw broker).
	// Its p99 is what the broker and the disk alone give at that rate on
	// this machine, so a half-load p99 above budget can be read as ours
	// or theirs.
	spec := t.spec(opUpdate)
	t.close()
	r, err := repeat(ctx, o.options, rawLowLabel, rawRun(func(r *rawTarget) result {
		return openLoop(ctx, o.concurrency, rate, o.warmup, o.duration, r.publish, nil)
	}))
	if err != nil {
		return rep, err
	}
	rep.rawLow = &r

	if o.diag {
		a, err := repeat(ctx, o.options, appendFloorLabel, func(int) (result, error) {
			f, err := startAppendFloor(ctx, o.options, m, log)
			if err != nil {
				return result{}, err
			}
			spec.Addr = f.addr()
			r, err := runLoad(ctx, spec.closed(o.concurrency, o.warmup, o.duration))
			return r, errors.Join(err, f.close())
		})
		if err != nil {
			return rep, err
		}
		rep.appendFloor = &a
	}
	return rep, nil
}

// settleNote waits for the projector to catch up after a phase and says
// how far behind it was ("" without a projector).
func (t *target) settleNote(ctx context.Context) string {
	if t.gw == nil || t.gw.Projector() == nil {
		return ""
	}
	backlog, took, compacting, ok := t.settle(ctx)
	if !ok {
		return fmt.Sprintf("projector: backlog %d ops at phase end, NOT settled after %s (lag now %d, store compacting %s)",
			backlog, (took + compacting).Round(time.Second), t.gw.Projector().Lag(), compacting.Round(time.Second))
	}
	fold := "projector kept up (lag 0 at phase end)"
	if backlog > 0 {
		fold = fmt.Sprintf("projector: backlog %d ops at phase end, folded in %s", backlog, took.Round(10*time.Millisecond))
	}
	return fmt.Sprintf("%s; store compactions ended %s later", fold, compacting.Round(10*time.Millisecond))
}

// loadName is the open-loop phase's rate as the budget lines name it.
func (o *writePhase) loadName() string {
	if o.loadRate > 0 {
		return fmt.Sprintf("%.0f/s", o.loadRate)
	}
	return fmt.Sprintf("%.0f%% load", o.halfLoad*100)
}

// lowLabel names the open-loop phase's runs: by its rate, or by its
// fraction of OURS's ("ours @ 50%", as the runs have always been named).
func lowLabel(o *writePhase) string {
	if o.loadRate > 0 {
		return "ours @ " + o.loadName()
	}
	return fmt.Sprintf("ours @ %.0f%%", o.halfLoad*100)
}

// altLabel names the -diag OURS row through the other HTTP client.
func (o *options) altLabel() string {
	if o.client == clientLight {
		return "ours (nethttp)"
	}
	return "ours (light)"
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// The half-load rows' slow requests meet the gateway's collection cycles
// (gctail.go), and how often a cycle comes is set by what the process
// allocates: the gateway's code, its embedded broker's, the NATS client's
// and Pebble's, all in one heap. An allocation profile of the row, put in
// the same layers as a CPU profile (cpulayers.go: an allocation is the
// layer of the frame that made it), says whose garbage the cycles collect,
// so a tail on a cycle can be read as ours or theirs.

// allocRecorder records what the process allocates between its start and
// stop: the difference of two heap profiles' cumulative allocations.
type allocRecorder struct {
	path, what string
	before     *profile.Profile
	started    time.Time
}

// startAllocRecorder starts recording; path "" records nothing. It runs a
// collection first, as stop does, so both profiles are up to date (the
// runtime publishes allocations at the end of a cycle): the profiled run
// starts right after a cycle.
func startAllocRecorder(path, what string) (*allocRecorder, error) {
	if path == "" {
		return nil, nil
	}
	before, err := allocSnapshot()
	if err != nil {
		return nil, fmt.Errorf("alloc profile: %w", err)
	}
	return &allocRecorder{path: path, what: what, before: before, started: time.Now()}, nil
}

// allocSnapshot is the process's heap profile after a collection.
func allocSnapshot() (*profile.Profile, error) {
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("allocs").WriteTo(&buf, 0); err != nil {
		return nil, err
	}
	return profile.Parse(&buf)
}

// stop writes what was allocated since start to the recorder's path and
// prints its layers; rate is the run's operations a second, for the bytes
// an operation. A nil recorder does nothing.
func (a *allocRecorder) stop(w io.Writer, rate float64) {
	if a == nil {
		return
	}
	elapsed := time.Since(a.started)
	after, err := allocSnapshot()
	if err != nil {
		fmt.Fprintln(w, "  alloc profile:", err)
		return
	}
	a.before.Scale(-1)
	diff, err := profile.Merge([]*profile.Profile{after, a.before})
	if err != nil {
		fmt.Fprintln(w, "  alloc profile:", err)
		return
	}
	f, err := os.Create(a.path)
	if err != nil {
		fmt.Fprintln(w, "  alloc profile:", err)
		return
	}
	if err := diff.Write(f); err != nil {
		f.Close()
		fmt.Fprintln(w, "  alloc profile:", err)
		return
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(w, "  alloc profile:", err)
		return
	}
	s, err := allocSharesOf(diff)
	if err != nil {
		fmt.Fprintln(w, "  alloc profile:", err)
		return
	}
	fmt.Fprintf(w, "  alloc profile of the %s phase written to %s (go tool pprof -sample_index=alloc_space -top %s)\n", a.what, a.path, a.path)
	fmt.Fprintln(w, s.line(elapsed, rate))
}

// allocShares is the bytes a profile allocated per layer, and the part of
// the broker's made by its consumers' code.
type allocShares struct {
	layers    [numLayers]float64
	consumers float64
}

// brokerConsumers is the prefix of the broker's consumer code: on one node
// the fold takes the operations in process, so what it allocates is the
// deliveries to the pusher's partitions and senders.
const brokerConsumers = "github.com/nats-io/nats-server/v2/server.(*consumer)."

// allocSharesOf sums p's allocated bytes (alloc_space) per layer.
func allocSharesOf(p *profile.Profile) (allocShares, error) {
	var s allocShares
	err := eachSampleLayer(p, "alloc_space", func(smp *profile.Sample, l cpuLayer, v float64) {
		s.layers[l] += v
		if l == layerBroker && innermostFrame(smp, func(fn string) bool { return strings.HasPrefix(fn, brokerConsumers) }) {
			s.consumers += v
		}
	})
	return s, err
}

func (s allocShares) total() float64 {
	var t float64
	for _, v := range s.layers {
		t += v
	}
	return t
}

// line is the shares as the bench prints them: the whole, the bytes an
// operation at rate over elapsed (the warm-up included, as the profile
// is), and each layer's per cent, largest first.
func (s allocShares) line(elapsed time.Duration, rate float64) string {
	total := s.total()
	if total <= 0 {
		return "  where its allocations went: nothing allocated"
	}
	perOp := ""
	if ops := rate * elapsed.Seconds(); ops > 0 {
		perOp = fmt.Sprintf(", %.1f KB an operation", total/ops/1e3)
	}
	return fmt.Sprintf("  where its allocations went (%.0f MB in %.1fs%s): %s; the broker's consumers (on one node: the deliveries to the pusher) %.0f%%",
		total/1e6, elapsed.Seconds(), perOp, percents(s.layers[:], layerNames[:], total, false), 100*s.consumers/total)
}

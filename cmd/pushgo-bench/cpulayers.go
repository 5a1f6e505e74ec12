package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// A CPU profile of a row says what bounds it only once its samples are put
// in the layers a gateway sits on: if a write spends a fifth of its CPU in
// our code, no cut of ours can make it more than a quarter faster. Each
// sample goes to the layer of its innermost frame that belongs to one (a
// Pebble write called by the fold is the store's; the fold's code called
// back by nats.go is ours; an allocation is whoever allocated), so the
// shares add up to the profile.

// cpuLayer is one layer of the process.
type cpuLayer int

const (
	layerOurs cpuLayer = iota
	layerHTTP
	layerBroker
	layerClient
	layerStore
	layerGC
	layerOther
	numLayers
)

var layerNames = [numLayers]string{
	layerOurs:   "ours",
	layerHTTP:   "HTTP server",
	layerBroker: "broker",
	layerClient: "NATS client",
	layerStore:  "store (Pebble)",
	layerGC:     "GC",
	layerOther:  "other",
}

// layerOf is the layer a function belongs to, or false for one that does
// not decide (the runtime's allocator and scheduler, the standard library
// below a caller that does).
func layerOf(fn string) (cpuLayer, bool) {
	switch {
	case strings.HasPrefix(fn, "github.com/pushgo/gateway/"),
		// Our codecs: the JSON package works for our decoding and encoding.
		strings.HasPrefix(fn, "github.com/go-json-experiment/json"):
		return layerOurs, true
	case strings.HasPrefix(fn, "github.com/cockroachdb/"):
		return layerStore, true
	case strings.HasPrefix(fn, "github.com/nats-io/nats-server/"):
		return layerBroker, true
	case strings.HasPrefix(fn, "github.com/nats-io/nats.go"), strings.HasPrefix(fn, "github.com/nats-io/nats%2ego"):
		return layerClient, true
	case strings.HasPrefix(fn, "net/http."), strings.HasPrefix(fn, "github.com/labstack/echo/"):
		return layerHTTP, true
	case strings.HasPrefix(fn, "runtime.gcBgMarkWorker"), strings.HasPrefix(fn, "runtime.bgsweep"),
		strings.HasPrefix(fn, "runtime.bgscavenge"), strings.HasPrefix(fn, "runtime.gcAssistAlloc"):
		return layerGC, true
	}
	return 0, false
}

// cpuShares is a profile's CPU time per layer.
type cpuShares [numLayers]float64

// readCPUShares reads the CPU profile at path and sums its samples' CPU
// time per layer.
func readCPUShares(r io.Reader) (cpuShares, error) {
	var s cpuShares
	p, err := profile.Parse(r)
	if err != nil {
		return s, err
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return s, fmt.Errorf("not a CPU profile (sample types %v)", p.SampleType)
	}
	for _, smp := range p.Sample {
		s[sampleLayer(smp)] += float64(smp.Value[idx])
	}
	return s, nil
}

// sampleLayer is the layer of a sample's innermost deciding frame,
// inlined frames included (each location's lines run innermost first).
func sampleLayer(smp *profile.Sample) cpuLayer {
	for _, loc := range smp.Location {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			if l, ok := layerOf(ln.Function.Name); ok {
				return l
			}
		}
	}
	return layerOther
}

// total is the profile's CPU time.
func (s cpuShares) total() float64 {
	var t float64
	for _, v := range s {
		t += v
	}
	return t
}

// String is the shares in per cent, largest first (equal shares in layer
// order).
func (s cpuShares) String() string {
	total := s.total()
	if total == 0 {
		return "no samples"
	}
	order := make([]cpuLayer, 0, numLayers)
	for l := range numLayers {
		order = append(order, l)
	}
	slices.SortStableFunc(order, func(a, b cpuLayer) int { return cmp.Compare(s[b], s[a]) })
	parts := make([]string, 0, numLayers)
	for _, l := range order {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", layerNames[l], 100*s[l]/total))
	}
	return strings.Join(parts, ", ")
}

// oursAtZero is how much faster the profiled work could run, at the same
// CPU, if our code cost nothing: 1 / (1 - ours' share).
func (s cpuShares) oursAtZero() float64 {
	total := s.total()
	if total == 0 || s[layerOurs] >= total {
		return 0
	}
	return total / (total - s[layerOurs])
}

// printCPUShares prints where a written profile's CPU went.
func printCPUShares(w io.Writer, path string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(w, "  cpu layers:", err)
		return
	}
	defer f.Close()
	s, err := readCPUShares(f)
	if err != nil {
		fmt.Fprintln(w, "  cpu layers:", err)
		return
	}
	fmt.Fprintf(w, "  where its CPU went: %s (with our code free, at most %.2fx as fast)\n", s, s.oursAtZero())
}

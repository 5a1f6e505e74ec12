package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

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

// cpuShares is a profile's CPU time per layer, and the layer ours split
// by the service whose work it was.
type cpuShares struct {
	layers [numLayers]float64
	ours   [numServices]float64
}

// service is the part of the gateway a sample of our code worked for: a
// write spends its own CPU in ingest's handler and more in the projector's
// fold and the pusher's intake of the operation, so "ours 30%" only says
// where to cut once it is split by service.
type service int

const (
	serviceIngest service = iota
	serviceProjector
	servicePusher
	serviceOther
	numServices
)

var serviceNames = [numServices]string{
	serviceIngest:    "ingest",
	serviceProjector: "projector",
	servicePusher:    "pusher",
	serviceOther:     "other",
}

// serviceOf is the service a function of ours belongs to, or false for
// one that does not decide (schemas, broker clients, the JSON package).
func serviceOf(fn string) (service, bool) {
	const ours = "github.com/pushgo/gateway/"
	switch {
	case strings.HasPrefix(fn, ours+"ingest/"), strings.HasPrefix(fn, ours+"internal/gateway.(*opsServer)"):
		return serviceIngest, true
	case strings.HasPrefix(fn, ours+"projector"):
		return serviceProjector, true
	case strings.HasPrefix(fn, ours+"pusher"):
		return servicePusher, true
	}
	return 0, false
}

// sampleService is the service of a sample's outermost deciding frame: a
// read the HTTP handler served from the projection in process is
// ingest's, as the request was.
func sampleService(smp *profile.Sample) service {
	for i := len(smp.Location) - 1; i >= 0; i-- {
		lines := smp.Location[i].Line
		for j := len(lines) - 1; j >= 0; j-- {
			if lines[j].Function == nil {
				continue
			}
			if s, ok := serviceOf(lines[j].Function.Name); ok {
				return s
			}
		}
	}
	return serviceOther
}

// readCPUShares reads the CPU profile at path and sums its samples' CPU
// time per layer.
func readCPUShares(r io.Reader) (cpuShares, error) {
	var s cpuShares
	p, err := profile.Parse(r)
	if err != nil {
		return s, err
	}
	err = eachSampleLayer(p, "cpu", func(smp *profile.Sample, l cpuLayer, v float64) {
		s.layers[l] += v
		if l == layerOurs {
			s.ours[sampleService(smp)] += v
		}
	})
	return s, err
}

// eachSampleLayer calls f with each sample of p, its layer and its value
// of the sample type typ ("cpu", "alloc_space").
func eachSampleLayer(p *profile.Profile, typ string, f func(smp *profile.Sample, l cpuLayer, v float64)) error {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == typ {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("no %s samples in the profile (sample types %v)", typ, p.SampleType)
	}
	for _, smp := range p.Sample {
		f(smp, sampleLayer(smp), float64(smp.Value[idx]))
	}
	return nil
}

// sampleLayer is the layer of a sample's innermost deciding frame,
// inlined frames included (each location's lines run innermost first).
func sampleLayer(smp *profile.Sample) cpuLayer {
	l := layerOther
	innermostFrame(smp, func(fn string) bool {
		found, ok := layerOf(fn)
		if ok {
			l = found
		}
		return ok
	})
	return l
}

// innermostFrame calls f with the function names of smp's frames, inlined
// ones included, innermost first, until f returns true; it reports
// whether one did.
func innermostFrame(smp *profile.Sample, f func(fn string) bool) bool {
	for _, loc := range smp.Location {
		for _, ln := range loc.Line {
			if ln.Function != nil && f(ln.Function.Name) {
				return true
			}
		}
	}
	return false
}

// total is the profile's CPU time.
func (s cpuShares) total() float64 {
	var t float64
	for _, v := range s.layers {
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
	return percents(s.layers[:], layerNames[:], total, true)
}

// oursByService is ours split by service, in per cent of the whole
// profile, largest first (services with no samples left out).
func (s cpuShares) oursByService() string {
	total := s.total()
	if total == 0 || s.layers[layerOurs] == 0 {
		return "none"
	}
	return percents(s.ours[:], serviceNames[:], total, false)
}

// percents lists each named value as "name N%" of total, largest first
// (equal values in index order), zeros only when keepZero.
func percents(values []float64, names []string, total float64, keepZero bool) string {
	order := make([]int, 0, len(values))
	for i, v := range values {
		if keepZero || v > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(values[b], values[a]) })
	parts := make([]string, 0, len(order))
	for _, i := range order {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", names[i], 100*values[i]/total))
	}
	return strings.Join(parts, ", ")
}

// oursAtZero is how much faster the profiled work could run, at the same
// CPU, if our code cost nothing: 1 / (1 - ours' share).
func (s cpuShares) oursAtZero() float64 {
	total := s.total()
	if total == 0 || s.layers[layerOurs] >= total {
		return 0
	}
	return total / (total - s.layers[layerOurs])
}

// ratioOursFree bounds a ratio of two rows' rates (ratio = rate of row /
// rate of anchor, both at about the same cores) if our code cost nothing in
// either: each rate grows by its own oursAtZero, so the ratio moves by
// row's over anchor's. An anchor with none of our code (the raw broker or
// store) has a zero share. It says whether a missed ratio budget is ours
// to meet: when even this bound stays under it, what is left of both rows
// (the broker, the store, the HTTP server, the NATS client, the
// collector) bounds it.
func ratioOursFree(ratio float64, row, anchor cpuShares) float64 {
	r, a := row.oursAtZero(), 1.0
	if anchor.total() > 0 {
		a = anchor.oursAtZero()
	}
	if r == 0 || a == 0 {
		return 0
	}
	return ratio * r / a
}

// ratioOwnOursFree bounds a ratio of two rows' rates if the row cost no
// more of our code than the anchor does: the row's CPU an operation
// (rowCPU, anchorCPU) loses its ours beyond the anchor's, at the same
// cores. It is the most a cut of the row's own work (what the anchor does
// not do) can give; 0 when a CPU is unknown.
func ratioOwnOursFree(ratio float64, rowCPU, anchorCPU time.Duration, row, anchor cpuShares) float64 {
	if rowCPU <= 0 || anchorCPU <= 0 || row.total() == 0 || anchor.total() == 0 {
		return 0
	}
	rc, ac := float64(rowCPU), float64(anchorCPU)
	extra := row.layers[layerOurs]/row.total()*rc - anchor.layers[layerOurs]/anchor.total()*ac
	if extra <= 0 {
		return ratio
	}
	return ratio * rc / (rc - extra)
}

// sharesOf reads the CPU profile at path; nil when it cannot.
func sharesOf(path string) *cpuShares {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	s, err := readCPUShares(f)
	if err != nil || s.total() == 0 {
		return nil
	}
	return &s
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
	fmt.Fprintf(w, "  where its CPU went: %s (with our code free, at most %.2fx as fast); ours by service: %s\n", s, s.oursAtZero(), s.oursByService())
}

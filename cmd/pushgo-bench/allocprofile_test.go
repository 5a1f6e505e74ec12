package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// An allocation counts for the layer of the frame that made it (the
// runtime's allocator does not decide), and the broker's share made by its
// consumers' code is told apart: on one node, the deliveries to the
// pusher.
func TestAllocShares(t *testing.T) {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"},
			{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"}},
	}
	fn := func(name string) *profile.Location {
		f := &profile.Function{ID: uint64(len(p.Function) + 1), Name: name}
		p.Function = append(p.Function, f)
		l := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f}}}
		p.Location = append(p.Location, l)
		return l
	}
	malloc := fn("runtime.mallocgc")
	sample := func(bytes int64, locs ...*profile.Location) {
		p.Sample = append(p.Sample, &profile.Sample{Value: []int64{1, bytes, 0, 0}, Location: append([]*profile.Location{malloc}, locs...)})
	}
	sample(40e6, fn("github.com/nats-io/nats-server/v2/server.(*consumer).getNextMsg"), fn("github.com/nats-io/nats-server/v2/server.(*consumer).loopAndGatherMsgs"))
	sample(20e6, fn("github.com/nats-io/nats-server/v2/server.(*client).processInboundClientMsg"))
	sample(25e6, fn("github.com/nats-io/nats%2ego.(*Conn).processMsg"))
	sample(10e6, fn("github.com/pushgo/gateway/ingest/httpapi.(*Server).accept"), fn("net/http.(*conn).serve"))
	sample(5e6, fn("bufio.NewReaderSize"), fn("net/http.(*conn).serve"))
	s, err := allocSharesOf(p)
	if err != nil {
		t.Fatal(err)
	}
	want := allocShares{layers: [numLayers]float64{layerBroker: 60e6, layerClient: 25e6, layerOurs: 10e6, layerHTTP: 5e6}, consumers: 40e6}
	if s != want {
		t.Fatalf("shares %+v, want %+v", s, want)
	}
	got := s.line(2*time.Second, 25_000)
	if want := "  where its allocations went (100 MB in 2.0s, 2.0 KB an operation): broker 60%, NATS client 25%, ours 10%, HTTP server 5%; the broker's consumers (on one node: the deliveries to the pusher) 40%"; got != want {
		t.Fatalf("line:\n got %q\nwant %q", got, want)
	}
	p.SampleType[1].Type = "cpu"
	if _, err := allocSharesOf(p); err == nil {
		t.Fatal("a profile without alloc_space was read as one")
	}
}

// allocSink keeps the test's allocations reachable until the recorder's
// stop, as the gateway's would be while in use.
var allocSink [][]byte

// The recorder writes what the process allocated between start and stop,
// not before: a run's 64 MB made by this package's code (ours) are in the
// written profile, the 64 MB made before the start are not.
func TestAllocRecorderRecordsTheRun(t *testing.T) {
	for range 64 {
		allocSink = append(allocSink, make([]byte, 1<<20))
	}
	path := filepath.Join(t.TempDir(), "half.allocs")
	rec, err := startAllocRecorder(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	allocSink = nil
	for range 64 {
		allocSink = append(allocSink, make([]byte, 1<<20))
	}
	var out strings.Builder
	rec.stop(&out, 1000)
	allocSink = nil
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no profile written: %v (output %q)", err, out.String())
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	s, err := allocSharesOf(p)
	if err != nil {
		t.Fatal(err)
	}
	// Allocations are sampled (one per 512 KB on average, scaled back up):
	// 64 MB of 1 MB objects come back within a few per cent.
	if ours := s.layers[layerOurs]; ours < 48<<20 || ours > 96<<20 {
		t.Fatalf("the run's 64 MB of ours recorded as %.1f MB (all layers %.1f MB)", ours/(1<<20), s.total()/(1<<20))
	}
	if !strings.Contains(out.String(), "where its allocations went") || !strings.Contains(out.String(), path) {
		t.Fatalf("printed %q", out.String())
	}
	var nilRec *allocRecorder
	nilRec.stop(&out, 1) // a recorder not started (no path) does nothing
	if rec, err := startAllocRecorder("", "test"); rec != nil || err != nil {
		t.Fatalf("startAllocRecorder(\"\") = %v, %v; want nothing", rec, err)
	}
}

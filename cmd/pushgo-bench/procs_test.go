package main

import (
	"runtime"
	"strconv"
	"testing"
)

// TestAnchorsRunAtTheRuntimeDefault: a raw anchor is measured at the
// runtime's default GOMAXPROCS, and the gateway's setting is back once it
// ends, error or not.
func TestAnchorsRunAtTheRuntimeDefault(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(prev)
		anchorProcs, gatewayProcs = 0, 0
	})
	cpus := runtime.NumCPU()
	runtime.GOMAXPROCS(cpus)
	t.Setenv("GOMAXPROCS", "")
	if got, want := tuneProcs("all"), "gomaxprocs="+strconv.Itoa(cpus+1); got != want {
		t.Fatalf("tuneProcs said %q, want %q", got, want)
	}
	during, err := atAnchorProcs(func() (int, error) { return runtime.GOMAXPROCS(0), nil })
	if err != nil || during != cpus {
		t.Fatalf("anchor measured at GOMAXPROCS %d (err %v), want the default %d", during, err, cpus)
	}
	if n := runtime.GOMAXPROCS(0); n != cpus+1 {
		t.Fatalf("GOMAXPROCS %d after the anchor, want the gateway's %d", n, cpus+1)
	}
}

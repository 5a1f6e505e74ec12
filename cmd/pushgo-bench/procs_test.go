package main

import (
	"runtime"
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
	runtime.GOMAXPROCS(2)
	t.Setenv("GOMAXPROCS", "")
	if got := tuneProcs(); got != "gomaxprocs=3" {
		t.Fatalf("tuneProcs said %q", got)
	}
	during, err := atAnchorProcs(func() (int, error) { return runtime.GOMAXPROCS(0), nil })
	if err != nil || during != 2 {
		t.Fatalf("anchor measured at GOMAXPROCS %d (err %v), want the default 2", during, err)
	}
	if n := runtime.GOMAXPROCS(0); n != 3 {
		t.Fatalf("GOMAXPROCS %d after the anchor, want the gateway's 3", n)
	}
}

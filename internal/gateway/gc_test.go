package gateway

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: the binary's collector target applies unless the operator
// set GOGC, which then stays as the runtime read it.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	env := map[string]string{"GOMEMLIMIT": "1GiB"}
	if got := TuneGC(func(k string) string { return env[k] }); got != "gc_percent=400" {
		t.Fatalf("TuneGC said %q", got)
	}
	if p := debug.SetGCPercent(100); p != GCPercent {
		t.Fatalf("GC percent %d after TuneGC, want %d", p, GCPercent)
	}
	env["GOGC"] = "100"
	if got := TuneGC(func(k string) string { return env[k] }); got != "" {
		t.Fatalf("with GOGC and GOMEMLIMIT set, TuneGC said %q", got)
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GC percent %d with GOGC set, want it untouched (100)", p)
	}
}

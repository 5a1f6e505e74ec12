package gateway

import (
	"runtime"
	"testing"
)

// TestTuneProcs: the binary runs with one P more than the runtime's
// default unless the operator set GOMAXPROCS, which then stays as the
// runtime read it.
func TestTuneProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })

	if got, want := TuneProcs(func(string) string { return "" }), "gomaxprocs=3"; got != want {
		t.Fatalf("TuneProcs said %q, want %q", got, want)
	}
	if n := runtime.GOMAXPROCS(0); n != 3 {
		t.Fatalf("GOMAXPROCS %d after TuneProcs, want 3", n)
	}
	runtime.GOMAXPROCS(2)
	env := map[string]string{"GOMAXPROCS": "2"}
	if got := TuneProcs(func(k string) string { return env[k] }); got != "" {
		t.Fatalf("with GOMAXPROCS set, TuneProcs said %q", got)
	}
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("GOMAXPROCS %d with GOMAXPROCS set, want it untouched (2)", n)
	}
}

package gateway

import (
	"runtime"
	"strconv"
	"testing"
)

// TestTuneProcs: the all-in-one binary runs with one P more than the
// runtime's default unless the operator set GOMAXPROCS, or a CPU quota
// holds the default below the machine's CPUs; a single service, and those
// cases, keep what the runtime set.
func TestTuneProcs(t *testing.T) {
	cpus := runtime.NumCPU()
	prev := runtime.GOMAXPROCS(cpus)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })

	noEnv := func(string) string { return "" }
	if got, want := TuneProcs(noEnv, "all"), "gomaxprocs="+strconv.Itoa(cpus+1); got != want {
		t.Fatalf("TuneProcs said %q, want %q", got, want)
	}
	if n := runtime.GOMAXPROCS(0); n != cpus+1 {
		t.Fatalf("GOMAXPROCS %d after TuneProcs, want %d", n, cpus+1)
	}

	runtime.GOMAXPROCS(cpus)
	env := map[string]string{"GOMAXPROCS": strconv.Itoa(cpus)}
	if got := TuneProcs(func(k string) string { return env[k] }, "all"); got != "" {
		t.Fatalf("with GOMAXPROCS set, TuneProcs said %q", got)
	}
	if n := runtime.GOMAXPROCS(0); n != cpus {
		t.Fatalf("GOMAXPROCS %d with GOMAXPROCS set, want it untouched (%d)", n, cpus)
	}

	for _, target := range []string{"ingest", "projector", "pusher"} {
		if got := TuneProcs(noEnv, target); got != "" {
			t.Fatalf("-target %s: TuneProcs said %q", target, got)
		}
	}
	if n := runtime.GOMAXPROCS(0); n != cpus {
		t.Fatalf("GOMAXPROCS %d after single-service TuneProcs, want it untouched (%d)", n, cpus)
	}

	if cpus > 1 { // a default below the CPUs: a quota's
		runtime.GOMAXPROCS(cpus - 1)
		if got := TuneProcs(noEnv, "all"); got != "" {
			t.Fatalf("under a CPU quota, TuneProcs said %q", got)
		}
		if n := runtime.GOMAXPROCS(0); n != cpus-1 {
			t.Fatalf("GOMAXPROCS %d under a CPU quota, want it untouched (%d)", n, cpus-1)
		}
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"testing"
)

// TestTraceRunTracesTheFirstRun: -halftrace and -integtrace write an
// execution trace of a phase's first run, in the runtime's trace format,
// end it when the run ends, and no other run's writes over it.
func TestTraceRunTracesTheFirstRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.trace")
	for run := range 2 {
		stop, err := traceRun(run, path, "test")
		if err != nil {
			t.Fatal(err)
		}
		if got := trace.IsEnabled(); got != (run == 0) {
			t.Fatalf("run %d: tracing %v", run, got)
		}
		done := make(chan struct{})
		go func() { close(done) }() // something for the trace to record
		<-done
		stop()
		if trace.IsEnabled() {
			t.Fatalf("run %d: still tracing after stop", run)
		}
		if run == 0 {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if head := b[:min(len(b), 16)]; !bytes.HasPrefix(head, []byte("go 1.")) || !bytes.Contains(head, []byte(" trace")) {
				t.Fatalf("the first run's file does not start as an execution trace: %q", head)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the second run wrote a trace: %v", err)
	}
	stop, err := traceRun(0, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if trace.IsEnabled() {
		t.Fatal("an empty path started a trace")
	}
}

// TestRecordersRefuseOneFile: two recorders of a phase named with one file
// (a trace and a CPU profile would interleave their bytes) are refused at
// start, naming both flags; distinct files are accepted.
func TestRecordersRefuseOneFile(t *testing.T) {
	for _, args := range [][]string{
		{"-phases", "write", "-halfprofile", "x.out", "-halftrace", "x.out"},
		{"-phases", "write", "-cpuprofile", "x.out", "-messageprofile", "x.out"},
		{"-phases", "integrations", "-integprofile", "x.out", "-integtrace", "x.out"},
	} {
		_, err := parseFlags(args)
		if err == nil || !strings.Contains(err.Error(), args[2]) || !strings.Contains(err.Error(), args[4]) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := parseFlags([]string{"-phases", "write,integrations", "-halfprofile", "a.out", "-halftrace", "b.out", "-integtrace", "c.out"}); err != nil {
		t.Errorf("distinct files: %v", err)
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestTraceRunTracesTheFirstRun: -halftrace and -integtrace write an
// execution trace of a phase's first run, in the runtime's trace format,
// and no other run's writes over it.
func TestTraceRunTracesTheFirstRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.trace")
	for run := range 2 {
		stop, err := traceRun(run, path, "test")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { close(done) }() // something for the trace to record
		<-done
		stop()
		if run == 0 {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:16], []byte(" trace")) {
				t.Fatalf("the first run's file does not start as an execution trace: %q", b[:min(len(b), 16)])
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
}

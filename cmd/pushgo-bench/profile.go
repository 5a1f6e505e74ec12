package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startCPUProfile profiles the process until the returned stop is called.
// The load of the HTTP rows runs in load processes (loadproc.go), so the
// profile of such a row is the gateway's alone; a raw or fold profile holds
// the broker's clients beside the broker.
func startCPUProfile(path, what string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
			return
		}
		fmt.Fprintf(os.Stderr, "  cpu profile of the %s phase written to %s (go tool pprof -top %s)\n", what, path, path)
		printCPUShares(os.Stderr, path)
	}, nil
}

// startTrace starts an execution trace of this process (the gateway, its
// embedded broker and the bench's own goroutines) into path: every
// goroutine's wake-ups, blocks, system calls and the collector's phases,
// so a slow request can be read against what the process did meanwhile.
func startTrace(path, what string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	return func() {
		trace.Stop()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "trace:", err)
			return
		}
		fmt.Fprintf(os.Stderr, "  execution trace of the %s phase written to %s (go tool trace %s)\n", what, path, path)
	}, nil
}

// writeHeapProfile writes what is live in this process (after a
// collection) to path: the gateway's heap and its embedded broker's, which
// every collection marks.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  heap profile written to %s (go tool pprof -sample_index=inuse_space -top %s)\n", path, path)
	return nil
}

package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
)

// startCPUProfile profiles the process until the returned stop is called.
// The load of the HTTP rows runs in load processes (loadproc.go), so the
// profile of such a row is the gateway's alone; a raw or fold profile holds
// the broker's clients beside the broker.
func startCPUProfile(path, what string) (stop func(), err error) {
	return startRecording(recording{name: "cpu profile", tool: "go tool pprof -top", start: pprof.StartCPUProfile, stop: pprof.StopCPUProfile,
		after: func() { printCPUShares(os.Stderr, path) }}, path, what)
}

// startTrace starts an execution trace of this process (the gateway, its
// embedded broker and the bench's own goroutines) into path: every
// goroutine's wake-ups, blocks, system calls and the collector's phases,
// so a slow request can be read against what the process did meanwhile.
func startTrace(path, what string) (stop func(), err error) {
	return startRecording(recording{name: "execution trace", tool: "go tool trace", start: trace.Start, stop: trace.Stop}, path, what)
}

// distinctOutputs refuses two of a phase's recorders (flag name to file)
// writing one file: two running at once would interleave their bytes, one
// after the other would leave only the last.
func distinctOutputs(files map[string]string) error {
	byPath := map[string]string{}
	for _, flag := range slices.Sorted(maps.Keys(files)) {
		path := files[flag]
		if path == "" {
			continue
		}
		if other, ok := byPath[path]; ok {
			return fmt.Errorf("%s and %s name one file, %s", other, flag, path)
		}
		byPath[path] = flag
	}
	return nil
}

// recording is one of the runtime's recorders of the whole process.
type recording struct {
	name, tool string                // what it is, and what reads its file
	start      func(io.Writer) error // starts it into a file
	stop       func()                // ends it
	after      func()                // after the file is written; nil: nothing
}

// startRecording starts r into path; the returned stop ends it, closes the
// file and says where it is.
func startRecording(r recording, path, what string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	if err := r.start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	return func() {
		r.stop()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", r.name, err)
			return
		}
		fmt.Fprintf(os.Stderr, "  %s of the %s phase written to %s (%s %s)\n", r.name, what, path, r.tool, path)
		if r.after != nil {
			r.after()
		}
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

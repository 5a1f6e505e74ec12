package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// -phases cluster runs the cluster phase alone; the default leaves it out
// (it is opt-in: a minute and a half at the defaults).
func TestClusterPhaseIsOptIn(t *testing.T) {
	o, err := parseFlags([]string{"-phases", "cluster"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(o.phases, false); len(got) != 1 || got[0] != "cluster" {
		t.Fatalf("-phases cluster selected %v", got)
	}
	if o, err = parseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if hasPhase(o.phases, "cluster") {
		t.Fatalf("the default selects %v", names(o.phases, false))
	}
	if _, err := parseFlags([]string{"-phases", "cluster", "-cluster-attach", "nowhere"}); err == nil {
		t.Fatal("-cluster-attach nowhere accepted")
	}
}

// A short cluster phase: the three nats-server processes come up, raw R3
// publishes and the gateway's HTTP updates on them both succeed, the table
// prints both rows and the ratio of their rates, and at the end no process
// of the cluster runs, no goroutine is left and the temporary directories
// are gone.
func TestClusterPhaseRowsAndRatio(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // every directory the phase makes, and the processes' files
	o, err := parseFlags([]string{"-phases", "cluster", "-duration", "1s", "-warmup", "200ms", "-concurrency", "8", "-entities", "20"})
	if err != nil {
		t.Fatal(err)
	}
	p := o.phases[0].(*clusterPhase)
	goroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tb, err := p.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ct := tb.(*clusterTable)
	for _, r := range ct.rows() {
		if r.res.ops == 0 || r.res.rate <= 0 || r.res.errors != 0 {
			t.Errorf("%s: %d ops, %.0f/s, %d errors %v", r.name, r.res.ops, r.res.rate, r.res.errors, r.res.errKinds)
		}
	}
	if runtime.GOOS == "linux" && (ct.raw.brokers <= 0 || ct.ours.brokers <= 0) {
		t.Errorf("nats-server cores: raw %.2f, ours %.2f: the processes' CPU was not counted", ct.raw.brokers, ct.ours.brokers)
	}
	var out bytes.Buffer
	tb.print(&out)
	text := out.String()
	t.Log(text)
	wantRatio := fmt.Sprintf("%.2f (not budgeted)", ct.ours.res.rate/ct.raw.res.rate)
	var raw, ours string
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "cluster R3   raw jetstream"):
			raw = l
		case strings.HasPrefix(l, "cluster R3   ours (http)"):
			ours = l
		}
	}
	if raw == "" || ours == "" || !strings.HasSuffix(ours, wantRatio) {
		t.Fatalf("table without the raw row, the ours row, or the ratio %q:\n%s", wantRatio, text)
	}
	if !strings.Contains(raw, fmt.Sprintf("%.0f", ct.raw.res.rate)) || !strings.Contains(ours, fmt.Sprintf("%.0f", ct.ours.res.rate)) {
		t.Fatalf("rows without their rates (%.0f, %.0f):\n%s", ct.raw.res.rate, ct.ours.res.rate, text)
	}

	if runtime.GOOS == "linux" {
		if left := processesUnder(t, tmp); len(left) > 0 {
			t.Errorf("processes still running from %s: %v", tmp, left)
		}
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("left in the temporary directory: %v", names)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the phase, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

// processesUnder lists the processes whose command line names a path under
// dir (the cluster's nodes name their configuration files).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil { // ended meanwhile
			continue
		}
		if cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})); strings.Contains(cmd, dir) {
			out = append(out, f+": "+cmd)
		}
	}
	return out
}

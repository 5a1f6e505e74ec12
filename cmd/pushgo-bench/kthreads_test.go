package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		line string
		name string
		ppid int
		ok   bool
	}{
		{"79 (kdamond.0) S 2 0 0 0 -1 2129984 0 0", "kdamond.0", 2, true},
		{"123 (tmux: server) S 1 123 123 0", "tmux: server", 1, true},
		{"7 (a) (b)) R 42 7 7", "a) (b)", 42, true},
		{"7 kdamond S 2", "", 0, false},
		{"7 (x)", "", 0, false},
		{"7 (x) S notanumber", "", 0, false},
	} {
		name, ppid, ok := parseProcStat([]byte(tc.line))
		if name != tc.name || ppid != tc.ppid || ok != tc.ok {
			t.Errorf("%q: got %q %d %v, want %q %d %v", tc.line, name, ppid, ok, tc.name, tc.ppid, tc.ok)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	if d, ok := parseSchedstat([]byte("703542185155 9016744632 2372391\n")); !ok || d != 703542185155 {
		t.Errorf("got %v %v", d, ok)
	}
	for _, bad := range []string{"", "\n", "x 1 2", "-5 1 2"} {
		if _, ok := parseSchedstat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestMemoryKthreads: only kthreadd's children named like the kernel's
// memory threads are sampled.
func TestMemoryKthreads(t *testing.T) {
	dir := t.TempDir()
	for pid, stat := range map[string]string{
		"79":   "79 (kdamond.0) S 2 0 0 0",
		"80":   "80 (bash) S 1 80 80 0",
		"81":   "81 (kswapd0) S 2 0 0 0",
		"82":   "82 (kdamond-lookalike) S 1 0 0 0", // a process, not a kernel thread
		"83":   "83 (kworker/0:1) S 2 0 0 0",
		"self": "1 (init) S 0 1 1 0",
	} {
		if err := os.MkdirAll(filepath.Join(dir, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pid, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := memoryKthreads(dir)
	var names []string
	for _, k := range got {
		names = append(names, k.name)
	}
	if strings.Join(names, ",") != "kdamond.0,kswapd0" || got[0].pid != 79 || got[1].pid != 81 {
		t.Errorf("got %+v", got)
	}
	if memoryKthreads(filepath.Join(dir, "absent")) != nil {
		t.Error("threads found in a directory that does not exist")
	}
}

// TestBurstTrack: growth within two sample intervals extends a burst, a
// longer quiet ends it, and a burst of less than kthreadMinBurst is not
// one.
func TestBurstTrack(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	var tr burstTrack
	cpu := time.Duration(0)
	step := func(ms float64, grew time.Duration) {
		cpu += grew
		tr.observe(at(ms), cpu)
	}
	step(0, 5*time.Second) // the first observation is the baseline, whatever it holds
	step(2, 0)
	step(4, 2*time.Millisecond) // a burst begins (from the sample before)
	step(6, 2*time.Millisecond)
	step(8, 0)
	step(10, 1*time.Millisecond) // within two intervals of the last growth: the same burst
	step(12, 0)
	step(14, 0)
	step(16, 0) // quiet for 6 ms: ended
	step(18, 500*time.Microsecond)
	step(20, 0)
	step(22, 0)
	step(24, 0) // a blip of half a millisecond: not kept
	step(40, 3*time.Millisecond)
	tr.close()
	// At the pacer's interval when it wakes less often (5 ms at 200
	// requests a second), growth two quiet observations after the last is
	// still the same burst.
	step(100, 0)
	step(105, 2*time.Millisecond)
	step(110, 0)
	step(115, 0)
	step(120, 2*time.Millisecond)
	step(125, 0)
	step(130, 0)
	step(135, 0)
	tr.close()
	if len(tr.bursts) != 3 {
		t.Fatalf("bursts %+v", tr.bursts)
	}
	if b := tr.bursts[2]; !b.start.Equal(at(100)) || !b.end.Equal(at(120)) || b.cpu != 4*time.Millisecond {
		t.Errorf("third burst %v to %v, %v", b.start.Sub(t0), b.end.Sub(t0), b.cpu)
	}
	tr.bursts = tr.bursts[:2]
	if len(tr.bursts) != 2 {
		t.Fatalf("bursts %+v", tr.bursts)
	}
	if b := tr.bursts[0]; !b.start.Equal(at(2)) || !b.end.Equal(at(10)) || b.cpu != 5*time.Millisecond {
		t.Errorf("first burst %v to %v, %v", b.start.Sub(t0), b.end.Sub(t0), b.cpu)
	}
	if b := tr.bursts[1]; !b.start.Equal(at(24)) || !b.end.Equal(at(40)) || b.cpu != 3*time.Millisecond {
		t.Errorf("second burst %v to %v, %v", b.start.Sub(t0), b.end.Sub(t0), b.cpu)
	}
}

// TestStallsOf: a tail request meets a burst when its span reaches the
// burst widened by kthreadPad on each side; the bursts outside the window
// are not counted; the period is the median gap; the chance is the padded
// bursts' and the mean tail span's share of the window.
func TestStallsOf(t *testing.T) {
	t0 := time.Unix(2000, 0)
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	at := func(v int) time.Time { return t0.Add(ms(v)) }
	bursts := []cpuBurst{
		{start: at(-300), end: at(-290), cpu: ms(9), thread: "kswapd0"}, // before the window
		{start: at(500), end: at(510), cpu: ms(4), thread: "kdamond.0"},
		{start: at(1000), end: at(1020), cpu: ms(15), thread: "kdamond.0"},
		{start: at(1540), end: at(1545), cpu: ms(2), thread: "kdamond.0"},
		{start: at(1570), end: at(1580), cpu: ms(3), thread: "kdamond.0"}, // 25 ms after the one before: the same episode
		{start: at(5000), end: at(5010), cpu: ms(9), thread: "kdamond.0"}, // after it
	}
	tail := []tailPoint{
		{At: at(480).UnixNano(), Lat: ms(16)},  // ends at 496: reaches 500-5
		{At: at(470).UnixNano(), Lat: ms(20)},  // ends at 490: short of 495
		{At: at(514).UnixNano(), Lat: ms(20)},  // begins within 510+5
		{At: at(516).UnixNano(), Lat: ms(20)},  // begins after it
		{At: at(900).UnixNano(), Lat: ms(200)}, // spans the burst at 1000
		{At: at(1200).UnixNano(), Lat: ms(20)}, // between bursts
	}
	st := stallsOf(bursts, tail, at(0), at(2000))
	if st.Bursts != 4 || st.Episodes != 3 || st.MinCPU != ms(2) || st.MaxCPU != ms(15) || len(st.Threads) != 1 {
		t.Errorf("bursts %d, episodes %d, cpu %v to %v", st.Bursts, st.Episodes, st.MinCPU, st.MaxCPU)
	}
	if st.Period != ms(540) { // gaps 500 and 540: the upper median
		t.Errorf("period %v", st.Period)
	}
	if st.Tail != 6 || st.Overlap != 3 {
		t.Errorf("overlap %d of %d, want 3 of 6", st.Overlap, st.Tail)
	}
	// covered: (10+20+5+10) + 4*10 = 85 ms of 2000; chance: (45 + 4*(10+mean 49.33)) / 2000.
	if d := st.Covered - 0.0425; d > 1e-9 || d < -1e-9 {
		t.Errorf("covered %v", st.Covered)
	}
	mean := (16 + 20 + 20 + 20 + 200 + 20) * time.Millisecond / 6
	want := (ms(45) + 4*(ms(10)+mean)).Seconds() / 2
	if d := st.ByChance - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("by chance %v, want %v", st.ByChance, want)
	}
	line := st.String()
	for _, part := range []string{"kdamond.0 took a CPU in 4 bursts of 2.0ms to 15.0ms (3 episodes every 0.54 s; the bursts ±5ms cover 4.2% of the window)", "3 of the 6 requests at or above the p99 (50%) met one"} {
		if !strings.Contains(line, part) {
			t.Errorf("%q lacks %q", line, part)
		}
	}
	if s := stallsOf(nil, tail, at(0), at(2000)); s.String() != "" || s.Tail != 6 {
		t.Errorf("no bursts: %+v %q", s, s.String())
	}
}

// TestStallsOfThreadsOverlap: the bursts of two threads that overlap (a
// long one holding a short one) are matched as their union, and counted
// as one episode.
func TestStallsOfThreadsOverlap(t *testing.T) {
	t0 := time.Unix(4000, 0)
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	at := func(v int) time.Time { return t0.Add(ms(v)) }
	bursts := []cpuBurst{ // sorted by start, as kthreadSampler.close returns them
		{start: at(100), end: at(300), cpu: ms(150), thread: "khugepaged"}, // long
		{start: at(120), end: at(130), cpu: ms(8), thread: "kdamond.0"},    // inside it
		{start: at(700), end: at(710), cpu: ms(8), thread: "kdamond.0"},
	}
	tail := []tailPoint{
		{At: at(250).UnixNano(), Lat: ms(10)}, // within the long burst, after the short one ended
		{At: at(400).UnixNano(), Lat: ms(10)}, // after both
	}
	st := stallsOf(bursts, tail, at(0), at(1000))
	if strings.Join(st.Threads, ",") != "khugepaged,kdamond.0" {
		t.Errorf("threads %v", st.Threads)
	}
	if st.Overlap != 1 || st.Episodes != 2 || st.Period != ms(600) {
		t.Errorf("overlap %d, episodes %d, period %v: want 1, 2, 600ms", st.Overlap, st.Episodes, st.Period)
	}
	// The union: 95-305 and 695-715 ms, 230 ms of 1000.
	if d := st.Covered - 0.23; d > 1e-9 || d < -1e-9 {
		t.Errorf("covered %v", st.Covered)
	}
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// An open-loop row's tail is the requests that met the gateway short of
// CPU: at a steady rate a latency of tens of milliseconds is a backlog, and
// a backlog on a machine kept busy drains slowly. On this machine the
// kernel's memory monitor (DAMON's kdamond, sampling which pages are used
// every half second to page out the cold ones) takes one of the two CPUs
// for a few to twenty milliseconds every 0.51-0.55 s, and the half-load
// row's slow requests came in bursts at that period. So every open-loop
// row's load process samples the CPU time of the kernel's memory threads
// (kdamond, kswapd, kcompactd, khugepaged) while it runs, and reports how
// many of the row's slowest requests overlapped one of their bursts, beside
// how many would by chance: a tail the row's own work does not explain is
// then seen as the machine's, in the same run.

// kthreadPrefixes name the kernel threads that are sampled: those of
// memory management, which run in bursts and take a CPU from the processes
// of the machine.
var kthreadPrefixes = []string{"kdamond", "kswapd", "kcompactd", "khugepaged"}

// kthreadSample is how often the sampler reads each thread's CPU time, at
// most: a burst of one millisecond is seen, and placed within one sampling
// interval (this, or the pacer's when it wakes less often).
const kthreadSample = 2 * time.Millisecond

// kthreadMinBurst is the least CPU a burst must take to be counted (the
// threads' housekeeping between bursts takes microseconds).
const kthreadMinBurst = time.Millisecond

// kthreadEpisode: bursts of a thread less than this apart are one episode
// of its work (kdamond's takes one to three bursts a few milliseconds
// apart, every half second), for the period reported.
const kthreadEpisode = 50 * time.Millisecond

// kthreadPad widens a burst on each side when requests are matched to it:
// a request that began just after a burst ended still waited behind what
// the burst held back.
const kthreadPad = 5 * time.Millisecond

// kthread is a kernel thread to sample.
type kthread struct {
	pid  int
	name string
}

// memoryKthreads lists the running kernel threads named by
// kthreadPrefixes, from procDir (/proc). None where there is no /proc.
func memoryKthreads(procDir string) []kthread {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	var out []kthread
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue
		}
		name, ppid, ok := parseProcStat(b)
		// Kernel threads are kthreadd's children (kthreadd is pid 2).
		if !ok || ppid != 2 {
			continue
		}
		for _, p := range kthreadPrefixes {
			if strings.HasPrefix(name, p) {
				out = append(out, kthread{pid: pid, name: name})
				break
			}
		}
	}
	return out
}

// parseProcStat returns the command name and the parent pid of a
// /proc/<pid>/stat line: "<pid> (<comm>) <state> <ppid> ...", where comm
// may itself hold spaces and parentheses (it ends at the last ')').
func parseProcStat(b []byte) (name string, ppid int, ok bool) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	fields := strings.Fields(string(b[closing+1:]))
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return "", 0, false
	}
	return string(b[open+1 : closing]), ppid, true
}

// parseSchedstat returns the CPU time in /proc/<pid>/schedstat: its first
// field, in nanoseconds.
func parseSchedstat(b []byte) (time.Duration, bool) {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || ns < 0 {
		return 0, false
	}
	return time.Duration(ns), true
}

// cpuBurst is a span in which a thread was on a CPU: from the sample
// before its time grew to the last sample of a run of growth, and the CPU
// time it took.
type cpuBurst struct {
	start, end time.Time
	cpu        time.Duration
	thread     string
}

// burstTrack turns one thread's CPU time, observed at intervals, into
// bursts: growth after no more than burstQuiet observations without any
// extends the burst, growth after a longer quiet starts another. Counted
// in observations, not time, so that the rule holds at any sampling
// interval (the pacer's, 5 ms at 200 requests a second).
type burstTrack struct {
	seen    bool
	lastAt  time.Time     // the last observation
	lastCPU time.Duration // its CPU time
	quiet   int           // observations without growth since the open burst's last
	open    *cpuBurst
	bursts  []cpuBurst
}

// burstQuiet is how many observations without growth a burst survives.
const burstQuiet = 2

// observe records the thread's CPU time cpu at at.
func (t *burstTrack) observe(at time.Time, cpu time.Duration) {
	if !t.seen {
		t.seen, t.lastAt, t.lastCPU = true, at, cpu
		return
	}
	grew := cpu - t.lastCPU
	switch {
	case grew > 0 && t.open != nil && t.quiet <= burstQuiet:
		t.open.end = at
		t.open.cpu += grew
		t.quiet = 0
	case grew > 0:
		t.close()
		t.open, t.quiet = &cpuBurst{start: t.lastAt, end: at, cpu: grew}, 0
	case t.open != nil:
		t.quiet++
		if t.quiet > burstQuiet {
			t.close()
		}
	}
	t.lastAt, t.lastCPU = at, cpu
}

// close ends the open burst, keeping it if it took kthreadMinBurst or more.
func (t *burstTrack) close() {
	if t.open != nil && t.open.cpu >= kthreadMinBurst {
		t.bursts = append(t.bursts, *t.open)
	}
	t.open = nil
}

// kthreadSampler samples the CPU time of threads when it is polled, at
// most every kthreadSample. The open loop's pacer polls it (it wakes every
// few hundred microseconds anyway): a goroutine of its own, woken by a
// ticker every few milliseconds, cost the load process 0.03-0.05 cores on
// this machine, where a wake-up costs about 55 µs and a read of the file
// 4 µs. Each thread's schedstat file is opened once and read again from its
// start at each sample. One goroutine at a time may poll.
type kthreadSampler struct {
	threads []kthread
	files   []*os.File
	tracks  []burstTrack
	last    time.Time
	buf     []byte
}

// newKthreadSampler opens the schedstat files of threads under procDir
// (none: it samples nothing).
func newKthreadSampler(procDir string, threads []kthread) *kthreadSampler {
	s := &kthreadSampler{threads: threads, files: make([]*os.File, len(threads)), tracks: make([]burstTrack, len(threads)), buf: make([]byte, 128)}
	for i, th := range threads {
		s.files[i], _ = os.Open(filepath.Join(procDir, strconv.Itoa(th.pid), "schedstat"))
	}
	return s
}

// poll samples every thread's CPU time if kthreadSample has passed since
// the last sample.
func (s *kthreadSampler) poll(now time.Time) {
	if now.Sub(s.last) < kthreadSample {
		return
	}
	s.last = now
	for i, f := range s.files {
		if f == nil {
			continue
		}
		if n, err := f.ReadAt(s.buf, 0); n > 0 && (err == nil || errors.Is(err, io.EOF)) {
			if cpu, ok := parseSchedstat(s.buf[:n]); ok {
				s.tracks[i].observe(now, cpu)
			}
		}
	}
}

// close closes the files and returns every thread's bursts, in the order
// of their starts.
func (s *kthreadSampler) close() []cpuBurst {
	var all []cpuBurst
	for i := range s.tracks {
		if s.files[i] != nil {
			s.files[i].Close()
		}
		s.tracks[i].close()
		for _, b := range s.tracks[i].bursts {
			b.thread = s.threads[i].name
			all = append(all, b)
		}
	}
	slices.SortFunc(all, func(a, b cpuBurst) int { return a.start.Compare(b.start) })
	return all
}

// namesIn is the threads that had the bursts, each once, in the order of
// their first.
func namesIn(bursts []cpuBurst) []string {
	var names []string
	for _, b := range bursts {
		if !slices.Contains(names, b.thread) {
			names = append(names, b.thread)
		}
	}
	return names
}

// kthreadStalls is what a load process reports of the kernel threads'
// bursts during its measured window and of the row's tail.
type kthreadStalls struct {
	Threads  []string      `json:"threads"`   // the threads that had bursts in the window
	Bursts   int           `json:"bursts"`    // in the measured window
	Episodes int           `json:"episodes"`  // bursts less than kthreadEpisode apart are one episode
	MinCPU   time.Duration `json:"min_cpu"`   // the least CPU a burst took
	MaxCPU   time.Duration `json:"max_cpu"`   // the most
	Period   time.Duration `json:"period"`    // the median time from one episode's start to the next
	Covered  float64       `json:"covered"`   // the share of the window within a padded burst
	Tail     int           `json:"tail"`      // requests at or above the row's p99
	Overlap  int           `json:"overlap"`   // of them, those whose span met a padded burst
	ByChance float64       `json:"by_chance"` // the share that would, with the bursts placed anywhere
}

// stallsOf matches the tail (requests at or above the row's p99) with the
// bursts within the window [from, to].
func stallsOf(bursts []cpuBurst, tail []tailPoint, from, to time.Time) kthreadStalls {
	var in []cpuBurst
	for _, b := range bursts {
		if !b.end.Before(from) && !b.start.After(to) {
			in = append(in, b)
		}
	}
	st := kthreadStalls{Threads: namesIn(in), Bursts: len(in), Tail: len(tail)}
	window := to.Sub(from)
	if len(in) == 0 || window <= 0 {
		return st
	}
	// The bursts of several threads may overlap: the episodes follow the
	// latest end so far, and the requests are matched with the union of
	// the padded bursts (tailmatch.go).
	var union []span
	var gaps []time.Duration
	episode, lastEnd := in[0].start, in[0].end // the current episode's start, the latest end so far
	st.MinCPU, st.Episodes = in[0].cpu, 1
	for i, b := range in {
		st.MinCPU, st.MaxCPU = min(st.MinCPU, b.cpu), max(st.MaxCPU, b.cpu)
		if i > 0 && b.start.Sub(lastEnd) >= kthreadEpisode {
			gaps = append(gaps, b.start.Sub(episode))
			episode = b.start
			st.Episodes++
		}
		if b.end.After(lastEnd) {
			lastEnd = b.end
		}
		union = addSpan(union, b.start.Add(-kthreadPad), b.end.Add(kthreadPad))
	}
	if len(gaps) > 0 {
		slices.Sort(gaps)
		st.Period = gaps[len(gaps)/2]
	}
	var covered time.Duration
	st.Overlap, st.ByChance, covered = tailMatch(union, tail, window)
	st.Covered = min(1, covered.Seconds()/window.Seconds())
	return st
}

// String is the report's line, or "" when no burst was seen.
func (s kthreadStalls) String() string {
	if s.Bursts == 0 {
		return ""
	}
	period := ""
	if s.Period > 0 {
		period = fmt.Sprintf(" every %.2f s", s.Period.Seconds())
	}
	line := fmt.Sprintf("kernel threads: %s took a CPU in %d bursts of %s to %s (%d episodes%s; the bursts ±5ms cover %.1f%% of the window)",
		strings.Join(s.Threads, ", "), s.Bursts, fmtDur(s.MinCPU), fmtDur(s.MaxCPU), s.Episodes, period, 100*s.Covered)
	if s.Tail > 0 {
		line += fmt.Sprintf("; %d of the %d requests at or above the p99 (%.0f%%) met one, against %.0f%% by chance",
			s.Overlap, s.Tail, 100*float64(s.Overlap)/float64(s.Tail), 100*s.ByChance)
	}
	return line
}

package main

import (
	"bytes"
	"context"
	"fmt"
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

// kthreadSample is how often the sampler reads each thread's CPU time: a
// burst of one millisecond is seen, and a burst is placed within it.
const kthreadSample = 2 * time.Millisecond

// kthreadMinBurst is the least CPU a burst must take to be counted (the
// threads' housekeeping between bursts takes microseconds).
const kthreadMinBurst = time.Millisecond

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
}

// burstTrack turns one thread's CPU time, observed at intervals, into
// bursts: growth observed within two intervals of the last growth extends
// the burst, growth after a longer quiet starts another.
type burstTrack struct {
	seen    bool
	lastAt  time.Time     // the last observation
	lastCPU time.Duration // its CPU time
	open    *cpuBurst
	bursts  []cpuBurst
}

// observe records the thread's CPU time cpu at at.
func (t *burstTrack) observe(at time.Time, cpu time.Duration) {
	if !t.seen {
		t.seen, t.lastAt, t.lastCPU = true, at, cpu
		return
	}
	grew := cpu - t.lastCPU
	if grew > 0 {
		if t.open != nil && at.Sub(t.open.end) <= 2*kthreadSample+kthreadSample/2 {
			t.open.end = at
			t.open.cpu += grew
		} else {
			t.close()
			t.open = &cpuBurst{start: t.lastAt, end: at, cpu: grew}
		}
	} else if t.open != nil && at.Sub(t.open.end) > 2*kthreadSample+kthreadSample/2 {
		t.close()
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

// kthreadSampler samples the CPU time of threads until its context ends.
type kthreadSampler struct {
	threads []kthread
	tracks  []burstTrack
	sampled chan struct{} // closed after the first observation of every thread
	done    chan struct{}
}

// startKthreadSampler starts sampling threads (none: it samples nothing)
// until ctx ends; bursts waits for the sampler to stop.
func startKthreadSampler(ctx context.Context, procDir string, threads []kthread) *kthreadSampler {
	s := &kthreadSampler{threads: threads, tracks: make([]burstTrack, len(threads)), sampled: make(chan struct{}), done: make(chan struct{})}
	paths := make([]string, len(threads))
	for i, th := range threads {
		paths[i] = filepath.Join(procDir, strconv.Itoa(th.pid), "schedstat")
	}
	go func() {
		defer close(s.done)
		first := true
		defer func() {
			if first {
				close(s.sampled)
			}
		}()
		if len(threads) == 0 {
			return
		}
		tick := time.NewTicker(kthreadSample)
		defer tick.Stop()
		for {
			now := time.Now()
			for i, p := range paths {
				if b, err := os.ReadFile(p); err == nil {
					if cpu, ok := parseSchedstat(b); ok {
						s.tracks[i].observe(now, cpu)
					}
				}
			}
			if first {
				first = false
				close(s.sampled)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// bursts waits for the sampler to stop (its context must end) and returns
// every thread's bursts, in time order, with the names of the threads that
// had any.
func (s *kthreadSampler) bursts() ([]cpuBurst, []string) {
	<-s.done
	var all []cpuBurst
	var names []string
	for i := range s.tracks {
		s.tracks[i].close()
		if len(s.tracks[i].bursts) > 0 {
			names = append(names, s.threads[i].name)
		}
		all = append(all, s.tracks[i].bursts...)
	}
	slices.SortFunc(all, func(a, b cpuBurst) int { return a.start.Compare(b.start) })
	return all, names
}

// timedLatency is one request of an open-loop row: when it was scheduled
// and how long it took from then.
type timedLatency struct {
	sched time.Time
	lat   time.Duration
}

// kthreadStalls is what a load process reports of the kernel threads'
// bursts during its measured window and of the row's tail.
type kthreadStalls struct {
	Threads  []string      `json:"threads"`   // the threads that had bursts
	Bursts   int           `json:"bursts"`    // in the measured window
	MinCPU   time.Duration `json:"min_cpu"`   // the least CPU a burst took
	MaxCPU   time.Duration `json:"max_cpu"`   // the most
	Period   time.Duration `json:"period"`    // the median time from one burst's start to the next
	Covered  float64       `json:"covered"`   // the share of the window within a burst, padded
	Tail     int           `json:"tail"`      // requests at or above the row's p99
	Overlap  int           `json:"overlap"`   // of them, those whose span met a padded burst
	ByChance float64       `json:"by_chance"` // the share that would, with the bursts placed anywhere
}

// stallsOf matches the tail (requests at or above the row's p99) with the
// bursts within the window [from, to].
func stallsOf(bursts []cpuBurst, names []string, tail []timedLatency, from, to time.Time) kthreadStalls {
	var in []cpuBurst
	for _, b := range bursts {
		if !b.end.Before(from) && !b.start.After(to) {
			in = append(in, b)
		}
	}
	st := kthreadStalls{Threads: names, Bursts: len(in), Tail: len(tail)}
	window := to.Sub(from)
	if len(in) == 0 || window <= 0 {
		return st
	}
	var covered, span time.Duration
	gaps := make([]time.Duration, 0, len(in))
	st.MinCPU = in[0].cpu
	for i, b := range in {
		st.MinCPU, st.MaxCPU = min(st.MinCPU, b.cpu), max(st.MaxCPU, b.cpu)
		covered += b.end.Sub(b.start) + 2*kthreadPad
		span += b.end.Sub(b.start)
		if i > 0 {
			gaps = append(gaps, b.start.Sub(in[i-1].start))
		}
	}
	if len(gaps) > 0 {
		slices.Sort(gaps)
		st.Period = gaps[len(gaps)/2]
	}
	st.Covered = min(1, covered.Seconds()/window.Seconds())
	var tailSpan time.Duration
	for _, r := range tail {
		tailSpan += r.lat
		a, z := r.sched, r.sched.Add(r.lat)
		// The first burst that ends (padded) at or after the request's
		// start; the request meets it if it starts (padded) before the
		// request's end.
		i, _ := slices.BinarySearchFunc(in, a, func(b cpuBurst, t time.Time) int {
			return b.end.Add(kthreadPad).Compare(t)
		})
		if i < len(in) && !in[i].start.Add(-kthreadPad).After(z) {
			st.Overlap++
		}
	}
	if len(tail) > 0 {
		// A span of length L meets a padded burst placed at random with
		// probability (burst + 2 pad + L) / window; summed over the bursts.
		meanTail := tailSpan / time.Duration(len(tail))
		st.ByChance = min(1, (span+time.Duration(len(in))*(2*kthreadPad+meanTail)).Seconds()/window.Seconds())
	}
	return st
}

// String is the report's line, or "" when no burst was seen.
func (s kthreadStalls) String() string {
	if s.Bursts == 0 {
		return ""
	}
	period := ""
	if s.Period > 0 {
		period = fmt.Sprintf(", every %.2f s", s.Period.Seconds())
	}
	line := fmt.Sprintf("kernel threads: %s took a CPU in %d bursts (%s of CPU to %s%s, %.1f%% of the time)",
		strings.Join(s.Threads, ", "), s.Bursts, fmtDur(s.MinCPU), fmtDur(s.MaxCPU), period, 100*s.Covered)
	if s.Tail > 0 {
		line += fmt.Sprintf("; %d of the %d requests at or above the p99 (%.0f%%) met one, against %.0f%% by chance",
			s.Overlap, s.Tail, 100*float64(s.Overlap)/float64(s.Tail), 100*s.ByChance)
	}
	return line
}

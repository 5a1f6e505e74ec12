package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the process's CPU time and the machine's busy time at one
// instant, so a phase can report how much CPU it used and how much other
// processes took from it (the benchmark is only as good as a quiet
// machine). Linux only; elsewhere the machine figures stay zero.
type cpuSample struct {
	at          time.Time
	self        time.Duration
	busy, total uint64 // /proc/stat jiffies
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	s.self = processCPU()
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return s
	}
	fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 5 || fields[0] != "cpu" {
		return s
	}
	for i, v := range fields[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuSample{at: s.at, self: s.self}
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	return s
}

// cpuUse is what a phase used, in cores (1.0 = one core busy throughout):
// self is the system under test (this process, whose gateway serves the
// load; or the peer's own process, ntfy's), load the load generator's
// processes, others the rest of the machine (other processes, and this
// process when the system under test is another).
type cpuUse struct {
	self, load, others float64
	// provider is the delivery phases' fake provider process (the far end
	// of the harness, providerproc.go), not among the others.
	provider float64
}

// withProvider moves the provider process's CPU time d over wall from the
// others to provider.
func (u cpuUse) withProvider(d, wall time.Duration) cpuUse {
	if wall <= 0 {
		return u
	}
	u.provider = d.Seconds() / wall.Seconds()
	u.others = max(u.others-u.provider, 0)
	return u
}

// cpuBetween is this process's use between a and b, everything else being
// others: a phase whose load, if any, runs in this process.
func cpuBetween(a, b cpuSample) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return cpuUse{}
	}
	u := cpuUse{self: (b.self - a.self).Seconds() / wall}
	if b.total > a.total {
		cores := float64(numCPU())
		machine := float64(b.busy-a.busy) / float64(b.total-a.total) * cores
		u.others = max(machine-u.self, 0)
	}
	return u
}

// cpuSplit is the use between a and b of a measurement whose load ran in
// load processes that used loadCPU between them. With peer (the CPU time
// another process, the system under test, used between them), self is that
// process's and this one's counts among the others.
func cpuSplit(a, b cpuSample, loadCPU time.Duration, peer *time.Duration) cpuUse {
	u := cpuBetween(a, b)
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return u
	}
	u.load = loadCPU.Seconds() / wall
	u.others = max(u.others-u.load, 0)
	if peer != nil {
		p := peer.Seconds() / wall
		u.others = max(u.others-p, 0) + u.self
		u.self = p
	}
	return u
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

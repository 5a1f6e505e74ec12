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
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
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

// cpuUse is what a phase used, in cores (1.0 = one core busy throughout).
type cpuUse struct {
	self, others float64
}

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

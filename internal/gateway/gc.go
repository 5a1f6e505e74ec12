package gateway

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// GCPercent is the garbage collector's target a gateway process runs with
// unless GOGC is set: a collection when the heap has grown 4× its live
// size, not 1×. The pusher allocates a few kilobytes per push (the body,
// the HTTP/2 request and its headers) over a small live heap, and at
// Go's default of 100 the collector and the assists it charges to
// allocating goroutines took about a third of a delivery run's CPU
// (make bench: 11,400 pushes/s at 20 ms provider latency with 100, 15,500
// with 400). The price is memory: the heap may reach about five times
// what is live.
const GCPercent = 400

// TuneGC applies GCPercent unless the operator set GOGC, and, unless
// GOMEMLIMIT is set, a soft memory limit of 80% of the cgroup's memory
// limit when the process has one, so a container near its limit
// collects sooner instead of being killed. It returns what it did, for
// the start log.
func TuneGC(getenv func(string) string) string {
	var did []string
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
		did = append(did, "gc_percent="+strconv.Itoa(GCPercent))
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit := cgroupMemoryLimit(); limit > 0 {
			debug.SetMemoryLimit(limit / 5 * 4)
			did = append(did, "memory_limit="+strconv.FormatInt(limit/5*4, 10))
		}
	}
	return strings.Join(did, " ")
}

// cgroupMemoryLimit is the memory limit of the process's cgroup (v2), or
// 0 when there is none.
func cgroupMemoryLimit() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0 // "max": no limit
	}
	return n
}

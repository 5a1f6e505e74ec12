package gateway

import (
	"runtime"
	"strconv"
)

// ExtraProcs is how many more Ps (GOMAXPROCS) than the runtime's default an
// all-in-one gateway process runs with (TuneProcs).
//
// With one P per core, a P that has goroutines queued does not look at the
// network: under a load that keeps every P busy, a request that arrives
// waits until a P runs out of work or the runtime's monitor polls (every
// 10 ms), then queues behind every goroutine already runnable. With a P
// more than cores, the Ps take turns on the cores under the operating
// system's preemptive scheduler, and a P short of work more often polls
// the network. Measured, not derived (make bench on 2 cores, 1 December,
// alternated builds): /thing/get's p99 under the 64-client write load
// 12.9-16.2 ms with 3 Ps against 17.8-28.6 with 2 (medians 14.9 and 23.8,
// seven pairs), the writes alongside 5% faster; with 4 Ps no better than
// 3. The price is a little more context switching; the fold's rate was
// unchanged.
const ExtraProcs = 1

// TuneProcs sets GOMAXPROCS to the runtime's default plus ExtraProcs for
// a process that runs every service (target "all", the default binary and
// make bench's gateway) and returns what it did, for the start log. It
// leaves GOMAXPROCS alone when the operator set it; for a single service
// (a scaled deployment runs several on a host: in make test, a dozen
// gateway processes on two cores each with a P more took 13.6 minutes of
// CPU against 11.4, the extra Ps spinning for work); and when a cgroup's
// CPU quota holds the default below the machine's CPUs (Go 1.25 and later
// follow the quota): a P beyond a quota would spend it sooner in each
// period and have the process throttled, and the runtime keeps following
// later changes of the quota. Setting it stops the runtime from following
// later changes of the CPUs it may use.
func TuneProcs(getenv func(string) string, target string) string {
	if getenv("GOMAXPROCS") != "" || target != "all" {
		return ""
	}
	n := runtime.GOMAXPROCS(0)
	if n < runtime.NumCPU() {
		return ""
	}
	n += ExtraProcs
	runtime.GOMAXPROCS(n)
	return "gomaxprocs=" + strconv.Itoa(n)
}

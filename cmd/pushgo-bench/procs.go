package main

import (
	"os"
	"runtime"

	"github.com/pushgo/gateway/internal/gateway"
)

// The gateway's services run in this process with the binary's GOMAXPROCS
// (gateway.TuneProcs: one P more than the CPUs), and the raw
// anchors they are divided by run at the runtime's own default: an anchor
// is what anyone measures of the broker out of the box, and one P more
// slows the raw ordered consume by about a quarter here (medians 189,000
// against 259,000/s in five alternated pairs), which would flatter the
// fold's ratio. The load and provider processes keep the default too.
var anchorProcs, gatewayProcs int

// tuneProcs applies the binary's GOMAXPROCS for a gateway of target to
// this process and returns what it did, for the header.
func tuneProcs(target string) string {
	anchorProcs = runtime.GOMAXPROCS(0)
	did := gateway.TuneProcs(os.Getenv, target)
	gatewayProcs = runtime.GOMAXPROCS(0)
	return did
}

// atAnchorProcs runs measure at the runtime's default GOMAXPROCS and
// restores the gateway's after it: for a raw anchor, while no gateway
// runs in this process.
func atAnchorProcs[T any](measure func() (T, error)) (T, error) {
	if anchorProcs == 0 || anchorProcs == gatewayProcs {
		return measure()
	}
	runtime.GOMAXPROCS(anchorProcs)
	defer runtime.GOMAXPROCS(gatewayProcs)
	return measure()
}

// Command pushgo-bench measures the gateway's write path against the raw
// JetStream ceiling of the same embedded broker configuration, and its
// latency at half of its measured maximum rate, for each durability mode
// (-phases write; with -ntfy, ntfy under the same load, in alternating
// rounds); and the projector's budget (-phases projector): the
// rebuild of a large log against a bare ordered consumer of it, and the
// latency of /channel/history and of /thing/get under the write load;
// and the pusher's (-phases delivery): notifications per second against a
// fake provider answering at once and after 20 ms, the fan-out of one
// message to 10,000 devices, and accept-to-provider latency at 500
// messages/s to 10 devices; and the integrations' (-phases integrations):
// Dynatrace event ingest by entityId and by type+entityName against the
// /event/create rate over 100,000 Things, and Alertmanager payloads of 100
// alerts; and, only when named (-phases cluster), raw vs ours on three
// nats-server processes at R3 (cluster.go).
//
//	go run ./cmd/pushgo-bench            # full run, 10s per phase
//	go run ./cmd/pushgo-bench -quick     # 3s phases, 100,000 operations folded
//	go run ./cmd/pushgo-bench -phases projector -ops 2000000
//	go run ./cmd/pushgo-bench -phases delivery -runs 3
//	go run ./cmd/pushgo-bench -phases delivery -gorush /tmp/gorush-bin/gorush   # gorush beside ours (gorush.go)
//	go run ./cmd/pushgo-bench -phases integrations -quick
//	go run ./cmd/pushgo-bench -phases cluster -runs 3   # a 3-node loopback cluster, R3
//	go run ./cmd/pushgo-bench -phases write -ntfy /tmp/ntfy-bin/ntfy   # ntfy beside ours (ntfy.go)
//	go run ./cmd/pushgo-bench -phases projector -readprofile /tmp/read.prof   # the gateway's CPU profile of the reads
//
// The load of every measured HTTP row runs in a process of its own, this
// binary started again as a load process (loadproc.go), so that the
// gateway's process, its CPU figures and its CPU profiles hold the gateway
// alone; the load processes use a minimal keep-alive HTTP/1.1 client
// (lightclient.go) so that they take little CPU from the gateway they share
// the machine with; -client nethttp uses net/http instead.
//
// Each phase is one file registering a phase (phase.go): its own flags
// (-help lists them by phase), its run, which repeats each measurement
// -runs times and keeps the medians (repeat.go), and its table.
//
// Everything runs in this process, its load processes (and -phases cluster's nats-server processes) against 127.0.0.1, in temporary
// directories that are removed at the end. The exit code is non-zero only
// when a request or publish failed (or the benchmark could not run); missed
// budgets are reported, not fatal.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
)

func main() {
	switch os.Getenv(roleEnv) {
	case roleLoad: // a load process (loadproc.go)
		os.Exit(runLoadProcess(os.Stdin, os.Stdout))
	case roleProvider: // the delivery phases' fake provider (providerproc.go)
		os.Exit(runProviderProcess(os.Stdin, os.Stdout))
	}
	os.Exit(run())
}

func run() int {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, opts.hardLimit())
	defer cancel()

	// The gateway's services run in this process, so it runs with the
	// binary's garbage collector settings (gorush, a process of its own,
	// keeps its own).
	gc := gateway.TuneGC(os.Getenv)
	procs := tuneProcs(opts.target)
	gcWatch = startMarkWatch(markWatchEvery)
	defer gcWatch.Stop()
	baseline := runtime.NumGoroutine()
	printHeader(os.Stderr, opts)
	if gc != "" {
		fmt.Fprintf(os.Stderr, "  garbage collector as the pushgo binary sets it: %s (GOGC / GOMEMLIMIT override)\n", gc)
	}
	if procs != "" {
		fmt.Fprintf(os.Stderr, "  scheduler as the pushgo binary sets it: %s for the gateway's rows, the raw anchors at the runtime's default %d (GOMAXPROCS overrides both)\n", procs, anchorProcs)
	}
	var tables []table
	for _, p := range opts.phases {
		t, err := p.run(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pushgo-bench: %s phases: %v\n", p.name(), err)
			return 1
		}
		tables = append(tables, t)
	}
	failed := printReport(os.Stdout, opts, tables)
	checkGoroutines(baseline)
	if failed {
		return 1
	}
	return 0
}

// checkGoroutines reports goroutines left over once every broker, gateway
// and client is closed (some exit asynchronously, so it waits a little).
func checkGoroutines(baseline int) {
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > baseline+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+2 {
		fmt.Fprintf(os.Stderr, "pushgo-bench: warning: %d goroutines still running at exit (started with %d)\n", n, baseline)
	}
}

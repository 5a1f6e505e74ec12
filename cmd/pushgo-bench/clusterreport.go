package main

import (
	"fmt"
	"io"
	"strings"
)

// clusterTable is the cluster phase's table: raw R3 publish and ours on the
// same cluster, in the same run, and the ratio (not budgeted).
type clusterTable struct {
	o         *clusterPhase
	raw, ours clusterRun
}

// clusterRowLabel is the table's first column.
const clusterRowLabel = "cluster R3"

// ratio is ours over raw (0 without a raw rate).
func (t *clusterTable) ratio() float64 {
	if t.raw.res.rate <= 0 {
		return 0
	}
	return t.ours.res.rate / t.raw.res.rate
}

func (t *clusterTable) print(w io.Writer) {
	o := t.o
	row := func(phase string, r result, note string) {
		line := fmt.Sprintf("%-12s %-16s %8.0f %9s %9s   %s", clusterRowLabel, phase, r.rate, fmtDur(r.p50), fmtDur(r.p99), note)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s; %d clients, load through the %s client:\n", o.header(), o.concurrency, o.client)
	fmt.Fprintf(w, "%-12s %-16s %8s %9s %9s   %s\n", "cluster", "phase", "ops/s", "p50", "p99", "ratio")
	row("raw jetstream", t.raw.res, "")
	row("ours (http)", t.ours.res, fmt.Sprintf("%.2f (not budgeted)", t.ratio()))
	fmt.Fprintf(w, "  cores: raw: publishers %.2f, nats-server processes %.2f (%s per publish); ours: gateway %.2f (%s per request), load generator %.2f, nats-server processes %.2f (%s per request)\n",
		t.raw.res.cpu.self, t.raw.brokers, fmtMicros(t.raw.brokersPerOp), t.ours.res.sutCores(), fmtMicros(t.ours.res.cpuPerOp),
		t.ours.res.cpu.load, t.ours.brokers, fmtMicros(t.ours.brokersPerOp))
	for _, r := range t.rows() {
		if r.res.note != "" {
			fmt.Fprintf(w, "  %s %s: %s\n", clusterRowLabel, r.name, r.res.note)
		}
	}
	for _, r := range t.rows() {
		if disturbed(*r.res) {
			fmt.Fprintf(w, "  note: %s %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
				clusterRowLabel, r.name, r.res.cpu.others, numCPU())
		}
	}
}

func (t *clusterTable) rows() []namedResult {
	return []namedResult{{"raw jetstream", &t.raw.res}, {"ours (http)", &t.ours.res}}
}

func (t *clusterTable) failures() []failure { return resultFailures(clusterRowLabel+" ", t.rows()) }

// vouches: the cluster acknowledges a publish once a majority of the
// stream's three replicas stored it.
func (t *clusterTable) vouches() string {
	return fmt.Sprintf("on the cluster once a majority of its %d replicas stored it", clusterNodes)
}

package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

func (p *projReport) print(w io.Writer) { printProjTable(w, p.o, p) }
func (p *projReport) vouches() string   { return "" }

func (p *projReport) failures() []failure {
	return resultFailures("projector phases: ", p.phases(p.o))
}

// printProjTable prints the projector phases (issue 3's budget).
func printProjTable(w io.Writer, o *projPhase, p *projReport) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-30s %8s %8s %9s %8s %8s   %s\n", "phase", "ops", "time", "ops/s", "p50", "p99", "ratio / budget")
	line := func(phase string, ops int64, took time.Duration, rate float64, p50, p99 time.Duration, note string) {
		col := func(ok bool, s string) string {
			if !ok {
				return ""
			}
			return s
		}
		out := fmt.Sprintf("%-30s %8d %8s %9s %8s %8s   %s", phase, ops,
			col(took > 0, fmtSecs(took)), col(rate > 0, fmt.Sprintf("%.0f", rate)),
			col(p50 > 0, fmtDur(p50)), col(p99 > 0, fmtDur(p99)), note)
		fmt.Fprintln(w, strings.TrimRight(out, " "))
	}
	n := int64(p.ops)
	line("populate (async publish)", n, p.populate, float64(n)/max(p.populate.Seconds(), 1e-9), 0, 0,
		fmt.Sprintf("(not budgeted; %d bytes/envelope)", p.bytes/max(n, 1)))
	line("raw ordered consume", n, p.consume.took, p.consume.rate(p.ops), 0, 0,
		fmt.Sprintf("(cpu %.2f cores)", p.consume.cpu.self))
	if p.storeFloor.took > 0 {
		line("consume + store (floor)", n, p.storeFloor.took, p.storeFloor.rate(p.ops), 0, 0,
			fmt.Sprintf("%.2f of the raw consume (each operation's bytes stored once, nothing decoded: the least any fold does; not budgeted; cpu %.2f cores)",
				p.consume.took.Seconds()/p.storeFloor.took.Seconds(), p.storeFloor.cpu.self))
	}
	fr := p.foldRatio()
	rb := p.rebuildBudget(o)
	line("projector fold (rebuild)", n, p.fold.took, p.fold.rate(p.ops), 0, 0,
		fmt.Sprintf("%.2f (>= %.2g: %s), rebuild < %s: %s (cpu %.2f cores)", fr, o.foldRatioBudget, verdict(fr >= o.foldRatioBudget),
			fmtSecs(rb), verdict(p.fold.took < rb), p.fold.cpu.self))
	// The budget is one client's (the row); the concurrent row is
	// shown beside it, not judged.
	line(fmt.Sprintf("/channel/history %d (c=1)", o.historyLimit), p.histSingle.ops, 0, 0, p.histSingle.p50, p.histSingle.p99,
		fmt.Sprintf("(p99 <= %s: %s)", fmtDur(o.historyBudget), verdict(p.histSingle.p99 <= o.historyBudget && p.histSingle.ops > 0)))
	line(fmt.Sprintf("/channel/history %d (c=%d)", o.historyLimit, o.historyClients), p.histMC.ops, 0, 0, p.histMC.p50, p.histMC.p99,
		"(not budgeted)")
	line("/thing/get under load", p.get.ops, 0, 0, p.get.p50, p.get.p99,
		fmt.Sprintf("(p99 <= %s: %s; %.0f/s, late %d, skipped %d)", fmtDur(o.getBudget), verdict(getOK(o, p.get)), p.get.target, p.get.late, p.get.skipped))
	if p.getFloor.ops > 0 {
		line("  GET /healthz beside it", p.getFloor.ops, 0, 0, p.getFloor.p50, p.getFloor.p99,
			fmt.Sprintf("(the cheapest route under the same load, %.0f/s: the floor under any read; not budgeted)", p.getFloor.target))
	}
	line("  write load during /thing/get", p.getLoad.ops, 0, p.getLoad.rate, p.getLoad.p50, p.getLoad.p99,
		fmt.Sprintf("(%d clients, closed loop, not budgeted)", o.concurrency))
	fmt.Fprintf(w, "  history channel: %d operations; rebuild budget scaled from %s per million operations\n",
		p.histOps, fmtSecs(o.rebuildBudget))
	if p.get.note != "" {
		fmt.Fprintf(w, "  /thing/get phase: %s\n", p.get.note)
	}
	for _, ph := range p.phases(o) {
		if disturbed(*ph.res) {
			fmt.Fprintf(w, "  note: %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
				ph.name, ph.res.cpu.others, numCPU())
		}
	}
}

// budgets: the fold over the raw ordered consume, the p99 of a history
// page for one client and of /thing/get under the write load.
func (p *projReport) budgets() []budgetRow {
	o := p.o
	fr := p.foldRatio()
	return []budgetRow{{
		stage:  fmt.Sprintf("projector fold, %d operations", p.ops),
		anchor: "ordered consume " + fmtRate(p.consume.rate(p.ops)),
		ours:   fmt.Sprintf("%s (%s), %.2f cores", fmtRate(p.fold.rate(p.ops)), fmtSecs(p.fold.took), p.fold.cores),
		ratio:  fr, budget: fmt.Sprintf(">= %.2f", o.foldRatioBudget), ok: fr >= o.foldRatioBudget,
	}, {
		stage:  fmt.Sprintf("/channel/history %d items, 1 client", o.historyLimit),
		ours:   fmt.Sprintf("p99 %s, %s, %.2f cores", fmtDur(p.histSingle.p99), fmtRate(p.histSingle.rate), p.histSingle.sutCores()),
		budget: "p99 <= " + fmtDur(o.historyBudget), ok: p.histSingle.p99 <= o.historyBudget && p.histSingle.ops > 0,
	}, {
		stage:  fmt.Sprintf("/thing/get at %.0f/s under write load", o.getRate),
		anchor: p.floorAnchor(),
		ours:   fmt.Sprintf("p99 %s; writes %s, %.2f cores", fmtDur(p.get.p99), fmtRate(p.getLoad.rate), p.get.sutCores()),
		budget: "p99 <= " + fmtDur(o.getBudget), ok: getOK(o, p.get), latency: true,
	}}
}

func (p *projReport) foldRatio() float64 {
	if p.consume.took <= 0 || p.fold.took <= 0 {
		return 0
	}
	return p.consume.took.Seconds() / p.fold.took.Seconds()
}

// rebuildBudget is o.rebuildBudget per million operations, scaled to p.ops.
func (p *projReport) rebuildBudget(o *projPhase) time.Duration {
	return time.Duration(float64(o.rebuildBudget) * float64(p.ops) / 1e6)
}

func (p *projReport) phases(o *projPhase) []namedResult {
	return []namedResult{
		{"/channel/history (c=1)", &p.histSingle},
		{fmt.Sprintf("/channel/history (c=%d)", o.historyClients), &p.histMC},
		{"/thing/get", &p.get},
		{"write load during /thing/get", &p.getLoad},
		{"GET /healthz beside /thing/get", &p.getFloor},
	}
}

// floorAnchor is /thing/get's anchor in the budget rows: the p99 of GET
// /healthz paced beside it, what the cheapest route waited under the same
// load (empty without -read-floor).
func (p *projReport) floorAnchor() string {
	if p.getFloor.ops == 0 {
		return ""
	}
	return "/healthz beside it p99 " + fmtDur(p.getFloor.p99)
}

func getOK(o *projPhase, r result) bool { return r.p99 <= o.getBudget && r.skipped == 0 && r.ops > 0 }

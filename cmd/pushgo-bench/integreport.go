package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// header: -quick lowers -integ-things below the budget's set-up.
func (o *integPhase) header() string {
	things := fmt.Sprintf("%d Things", o.integThings)
	if o.lowered["integ-things"] {
		things += " (-quick: the budget's set-up is 100,000; -integ-things 100000 for it)"
	}
	return fmt.Sprintf("integrations (%s; /event/create and Dynatrace with %d clients, Alertmanager %d-alert payloads with %d)",
		things, o.concurrency, o.amAlerts, o.amClients)
}

func (r *integReport) print(w io.Writer) { printIntegTable(w, r.o, r) }
func (r *integReport) vouches() string {
	return "every integration request answered 2xx with the expected result"
}

func (r *integReport) failures() []failure {
	return resultFailures("integrations phases: ", r.phases(r.o))
}

// phases lists the measured integrations phases, in table order.
func (r *integReport) phases(o *integPhase) []namedResult {
	return []namedResult{
		{fmt.Sprintf("/event/create (baseline, c=%d)", o.concurrency), &r.base},
		{fmt.Sprintf("dynatrace entityId %s (c=%d)", dtProblem, o.concurrency), &r.dtID},
		{fmt.Sprintf("dynatrace entityId %s (c=%d)", dtInfo, o.concurrency), &r.dtInfo},
		{fmt.Sprintf("dynatrace entityName %s (c=%d)", dtProblem, o.concurrency), &r.dtName},
		{fmt.Sprintf("alertmanager %d alerts (c=%d)", o.amAlerts, o.amClients), &r.am},
	}
}

// budgets: the Dynatrace reports over /event/create, by name and by id.
func (r *integReport) budgets() []budgetRow {
	o := r.o
	row := func(sel dtSelector, dt result) budgetRow {
		name := "entityId"
		if sel == selEntityName {
			name = "entityName"
		}
		return budgetRow{
			stage:  fmt.Sprintf("dynatrace %s / /event/create, %d clients", name, o.concurrency),
			anchor: "/event/create " + fmtRate(r.base.rate),
			ours:   fmt.Sprintf("%s, p99 %s, %.2f cores", fmtRate(dt.rate), fmtDur(dt.p99), dt.sutCores()),
			ratio:  r.dtRatio(dt), budget: fmt.Sprintf(">= %.2f", o.dtRatioBudget), ok: r.dtRatio(dt) >= o.dtRatioBudget && dt.errors == 0,
		}
	}
	return []budgetRow{row(selEntityName, r.dtName), row(selEntityID, r.dtID)}
}

// dtRatio is a Dynatrace phase's reports/s over the baseline's requests/s
// (each Dynatrace request reports about exactly one Thing).
func (r *integReport) dtRatio(dt result) float64 {
	if r.base.rate <= 0 {
		return 0
	}
	return dt.rate / r.base.rate
}

// oursFreeLine bounds each missed Dynatrace ratio by what our code could
// still give (round 1's profiles, -integprofile), two ways: if a report
// cost no more of our code than a create (its own work, the Dynatrace
// decode, the selection and the alert key, free), and if our code cost
// nothing in the reports nor in the creates (the ratio then is the
// broker's, the store's, HTTP's and the NATS client's alone). "" without
// the profiles.
func (r *integReport) oursFreeLine() string {
	if r.baseShares == nil {
		return ""
	}
	var parts []string
	for _, row := range []struct {
		name   string
		res    result
		shares *cpuShares
	}{{"entityId", r.dtID, r.idShares}, {"entityName", r.dtName, r.nameShares}} {
		ratio := r.dtRatio(row.res)
		if row.shares == nil || ratio >= r.o.dtRatioBudget {
			continue
		}
		both := ratioOursFree(ratio, *row.shares, *r.baseShares)
		own := ratioOwnOursFree(ratio, row.res.cpuPerOp, r.base.cpuPerOp, *row.shares, *r.baseShares)
		what := "under it even so: the broker, the store, HTTP and the NATS client bound it"
		if max(own, both) >= r.o.dtRatioBudget {
			what = "our code's to meet"
		}
		parts = append(parts, fmt.Sprintf("%s at most %.2f with a report's own work free, %.2f with all of ours free (%s)", row.name, own, both, what))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("  missed ratios (budget %.2f) bounded from round 1's profiles: %s", r.o.dtRatioBudget, strings.Join(parts, "; "))
}

// dtRoundsLine bounds each missed Dynatrace ratio round by round, from
// every round's profiles (-integprofile with -profile-every-run), where
// oursFreeLine applies round 1's to the median: each round's ratio as it
// could be with a report's own work free or with all of ours free,
// whichever is larger. Had our code cost nothing, no round's ratio could
// pass its bound, so the median of the rounds' ratios could not pass the
// median of the bounds (a median of values each no larger than another's
// is no larger); a median bound under the budget says the broker, the
// store, HTTP and the NATS client hold at least half the rounds under it
// whatever our code does. It bounds the rounds' median ratio, printed
// beside: the budget judges the median rate over the median baseline,
// which can differ from it. "" unless every round of the baseline and of
// a missed row was profiled.
func (r *integReport) dtRoundsLine() string {
	base := r.rounds["base"]
	var parts []string
	for _, row := range []struct {
		name, key string
		res       result
	}{{"entityId", "dt-id", r.dtID}, {"entityName", "dt-name", r.dtName}} {
		runs := r.rounds[row.key]
		if r.dtRatio(row.res) >= r.o.dtRatioBudget || len(runs) < 2 || len(runs) != len(base) {
			continue
		}
		bounds := make([]float64, 0, len(runs))
		ratios := make([]float64, 0, len(runs))
		var each []string
		for i, dt := range runs {
			b := base[i]
			if dt.shares == nil || b.shares == nil || b.res.rate <= 0 {
				break
			}
			ratio := dt.res.rate / b.res.rate
			bound := max(ratioOwnOursFree(ratio, dt.res.cpuPerOp, b.res.cpuPerOp, *dt.shares, *b.shares),
				ratioOursFree(ratio, *dt.shares, *b.shares))
			bounds = append(bounds, bound)
			ratios = append(ratios, ratio)
			each = append(each, fmt.Sprintf("%.2f to %.2f", ratio, bound))
		}
		if len(bounds) != len(runs) {
			continue
		}
		m := medianOf(bounds)
		what := "under it even so in at least half the rounds: the broker, the store, HTTP and the NATS client bound them"
		if m >= r.o.dtRatioBudget {
			what = "our code's to meet"
		}
		parts = append(parts, fmt.Sprintf("%s rounds %s, the rounds' median ratio %.2f at most %.2f (%s)",
			row.name, strings.Join(each, ", "), medianOf(ratios), m, what))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("  missed ratios (budget %.2f) bounded round by round (each round's ratio, to the most it could be with a report's own work or all of ours free): %s",
		r.o.dtRatioBudget, strings.Join(parts, "; "))
}

func (r *integReport) dtOK(o *integPhase, dt result) bool {
	return dt.ops > 0 && dt.errors == 0 && r.dtRatio(dt) >= o.dtRatioBudget && dt.p99 <= o.dtP99Budget
}

func (r *integReport) amOK(o *integPhase) bool {
	return r.am.ops > 0 && r.am.errors == 0 && r.am.p99 <= o.amP99Budget
}

// printIntegTable prints the integrations phases and their budget.
func printIntegTable(w io.Writer, o *integPhase, r *integReport) {
	ph := r.phases(o)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-40s %8s %9s %8s %8s   %s\n", "phase", "reqs", "reqs/s", "p50", "p99", "ratio / budget")
	line := func(name string, res result, note string) {
		out := fmt.Sprintf("%-40s %8d %9.0f %8s %8s   %s", name, res.ops, res.rate, fmtDur(res.p50), fmtDur(res.p99), note)
		fmt.Fprintln(w, strings.TrimRight(out, " "))
	}
	line(ph[0].name, r.base, "(raw rate: the baseline of the ratios)")
	dt := func(res result) string {
		return fmt.Sprintf("%.2f (>= %.2f: %s), p99 <= %s: %s", r.dtRatio(res), o.dtRatioBudget, verdict(r.dtRatio(res) >= o.dtRatioBudget),
			fmtDur(o.dtP99Budget), verdict(res.p99 <= o.dtP99Budget))
	}
	line(ph[1].name, r.dtID, dt(r.dtID))
	line(ph[2].name, r.dtInfo, fmt.Sprintf("%.2f (info: create + close, not budgeted)", r.dtRatio(r.dtInfo)))
	line(ph[3].name, r.dtName, dt(r.dtName))
	line(ph[4].name, r.am, fmt.Sprintf("p99 <= %s: %s (%.0f alerts/s)", fmtDur(o.amP99Budget), verdict(r.amOK(o)), r.am.rate*float64(o.amAlerts)))

	fmt.Fprintln(w)
	fmt.Fprintf(w, "budgets (load through the %s client; a phase with failed requests misses its budget):\n", o.client)
	fmt.Fprintf(w, "  %-48s ratio %.2f >= %.2f: %-6s  p99 %s <= %s: %s\n", "dynatrace "+selEntityID.String(),
		r.dtRatio(r.dtID), o.dtRatioBudget, verdict(r.dtRatio(r.dtID) >= o.dtRatioBudget), fmtDur(r.dtID.p99), fmtDur(o.dtP99Budget), verdict(r.dtOK(o, r.dtID)))
	fmt.Fprintf(w, "  %-48s ratio %.2f >= %.2f: %-6s  p99 %s <= %s: %s\n", "dynatrace "+selEntityName.String(),
		r.dtRatio(r.dtName), o.dtRatioBudget, verdict(r.dtRatio(r.dtName) >= o.dtRatioBudget), fmtDur(r.dtName.p99), fmtDur(o.dtP99Budget), verdict(r.dtOK(o, r.dtName)))
	fmt.Fprintf(w, "  %-48s p99 %s <= %s: %s\n", fmt.Sprintf("alertmanager %d-alert payloads", o.amAlerts),
		fmtDur(r.am.p99), fmtDur(o.amP99Budget), verdict(r.amOK(o)))
	if line := r.oursFreeLine(); line != "" {
		fmt.Fprintln(w, line)
	}
	if line := r.dtRoundsLine(); line != "" {
		fmt.Fprintln(w, line)
	}

	fmt.Fprintf(w, "  set-up (not measured): channel, token, %d Things (type HOST, host-<i>) created over HTTP in %s (%.0f/s), projector caught up in %s\n",
		r.things, fmtSecs(r.setup), float64(r.things)/max(r.setup.Seconds(), 1e-9), fmtSecs(r.caughtUp))
	fmt.Fprintf(w, "  dynatrace: a random Thing per request; %s: the first report about a Thing opens an Event, later ones refresh it; %s: create + close\n",
		dtProblem, dtInfo)
	fmt.Fprintf(w, "  alertmanager: %d groups per sender, each sent at a new revision (every alert's description changed) then repeated unchanged;\n",
		amGroupsPerSender)
	fmt.Fprintf(w, "    alert outcomes (every run, warm-up included): opened %d, updated %d, unchanged %d, other %d\n",
		r.amOpened, r.amUpdated, r.amUnchanged, r.amOther)
	for _, p := range ph {
		if p.res.note != "" {
			fmt.Fprintf(w, "  %s: %s\n", p.name, p.res.note)
		}
	}
	for _, p := range ph {
		if disturbed(*p.res) {
			fmt.Fprintf(w, "  note: %s ran while other processes used %.2f of %d cores: disturbed, re-run on a quiet machine\n",
				p.name, p.res.cpu.others, numCPU())
		}
	}
}

// medianOf is the median of v (sorted in place).
func medianOf(v []float64) float64 {
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return m
}

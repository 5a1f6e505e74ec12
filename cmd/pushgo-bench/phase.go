package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// A phase is one table of the report, selected by name with -phases: its
// own flags, its entry in the header, a bound on its run, and the run,
// which measures each of its rows -runs times (repeat) and returns the
// table. Adding a phase is adding one file: a type that implements phase
// (embedding *options for the common flags), registered from the file's
// init with registerPhase, and a type that implements table. The noop
// phase of phase_test.go is a complete example.
type phase interface {
	// name is the phase's -phases name; about says in a few words what
	// its table holds (-help and the -phases usage).
	name() string
	about() string
	// flags registers the phase's own flags on fs (and their -quick values
	// with fs.quick). Every registered phase's flags are accepted, selected
	// or not; a flag name belongs to one phase.
	flags(fs *flagSet)
	// setup runs once the flags are parsed, for the selected phases only:
	// it keeps the common options, checks the phase's flags and derives
	// what run needs.
	setup(o *options) error
	// header is the phase's entry in the header's list of phases.
	header() string
	// limit bounds the phase's whole run; the program's deadline is the
	// sum over the selected phases.
	limit() time.Duration
	// run measures the phase. An error ends the program (named after the
	// phase) before any table is printed.
	run(ctx context.Context) (table, error)
}

// A loadPhase drives the common write load against a gateway (-concurrency
// clients, -entities, -body, -target): the header describes that load once,
// followed by what each such phase adds (loadNote, possibly empty).
type loadPhase interface {
	phase
	loadNote() string
}

// A table is what one phase measured; the tables are printed in registry
// order once every selected phase has run.
type table interface {
	print(w io.Writer)
	// failures lists the rows that may have failed operations (those
	// without are skipped), printed after every table.
	failures() []failure
	// vouches is what "errors: 0" then says of this table beyond answered
	// requests and acknowledged publishes ("" for nothing more).
	vouches() string
}

// A budgeted table has rows under a budget of issue 14's, which the report
// prints again after every table, each beside its raw anchor.
type budgeted interface {
	budgets() []budgetRow
}

// budgetRow is one budgeted row: what it measures, the raw rate it is
// compared with (measured in the same run; "" for a latency budget), our
// figure, the ratio (0 for a latency budget) and the budget.
type budgetRow struct {
	stage, anchor, ours string
	ratio               float64
	budget              string
	ok                  bool
	// latency: a latency row, whose anchor is a figure to read beside
	// ours rather than a rate to divide by (no ratio printed).
	latency bool
}

// failure is one row's failed operations.
type failure struct {
	label  string
	what   string // what failed, after "N FAILED"; "operations" if empty
	errors int64
	kinds  map[string]int
}

// namedResult is a measured row of a phase whose rows are results.
type namedResult struct {
	name string
	res  *result
}

// resultFailures are the failures of rows, labelled prefix + name.
func resultFailures(prefix string, rows []namedResult) []failure {
	out := make([]failure, len(rows))
	for i, r := range rows {
		out[i] = failure{label: prefix + r.name, errors: r.res.errors, kinds: r.res.errKinds}
	}
	return out
}

// registry is every phase, in table order (rank, then name).
var registry []registeredPhase

type registeredPhase struct {
	rank int
	name string
	new  func() phase
}

// registerPhase adds a phase from its file's init. rank orders the tables
// (and the default -phases): write 10, projector 20, delivery 30,
// integrations 40, cluster 50 (opt-in: optphase.go).
func registerPhase(rank int, newPhase func() phase) {
	registry = append(registry, registeredPhase{rank, newPhase().name(), newPhase})
	slices.SortStableFunc(registry, func(a, b registeredPhase) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.name, b.name))
	})
}

// newPhases makes a fresh value of every registered phase, in table order,
// for one parse of the flags.
func newPhases() []phase {
	out := make([]phase, len(registry))
	for i, r := range registry {
		out[i] = r.new()
	}
	return out
}

// flagSet is a flag.FlagSet whose flags may take another value under
// -quick.
type flagSet struct {
	*flag.FlagSet
	quickValues map[string]string
}

func newFlagSet(name string) *flagSet {
	return &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), quickValues: map[string]string{}}
}

// quick makes the registered flag name take value under -quick unless it is
// given, and says so in its usage.
func (fs *flagSet) quick(name, value string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("pushgo-bench: -quick value of unknown flag -" + name)
	}
	f.Usage += " (-quick: " + value + ")"
	fs.quickValues[name] = value
}

// add registers every flag of from on fs, sharing its values.
func (fs *flagSet) add(from *flagSet) {
	from.VisitAll(func(f *flag.Flag) {
		if fs.Lookup(f.Name) != nil {
			panic(fmt.Sprintf("pushgo-bench: flag -%s registered twice (%s)", f.Name, from.Name()))
		}
		fs.Var(f.Value, f.Name, f.Usage)
	})
	for k, v := range from.quickValues {
		fs.quickValues[k] = v
	}
}

// names lists the phases' names; with about, each followed by what it
// measures.
func names(ps []phase, about bool) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name()
		if about {
			out[i] = `"` + out[i] + `" (` + p.about() + ")"
		}
	}
	return out
}

// enumerate joins items as "a, b, c and d", conj standing for "and".
func enumerate(items []string, conj string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// printUsage prints the common flags, then each phase's own.
func printUsage(w io.Writer, common *flagSet, ps []phase, sets []*flagSet) {
	fmt.Fprintf(w, "Usage of %s (flags of every phase are accepted; -phases selects the tables):\n", common.Name())
	common.SetOutput(w)
	common.PrintDefaults()
	for i, p := range ps {
		fmt.Fprintf(w, "\n-phases %s: %s\n", p.name(), p.about())
		sets[i].SetOutput(w)
		sets[i].PrintDefaults()
	}
}

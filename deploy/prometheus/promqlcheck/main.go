// Command promqlcheck reads PromQL the way Prometheus does, for the root
// package's TestDashboardAndAlertsUseExportedMetrics: it loads rule files
// with the loader `promtool check rules` and the Prometheus server use
// (model/rulefmt, which parses every expression and expands every
// template), parses other expressions (the Grafana dashboard's) with
// Prometheus's PromQL parser, and names the metrics each expression
// selects.
//
// It is a module of its own, outside the go.work workspace: the Prometheus
// module requires newer versions of gRPC, OpenTelemetry and the Google
// APIs than the gateway's FCM client is built with, and a requirement of
// the root module would raise them for every service.
//
// Input (stdin, JSON): {"rule_files": [path...], "exprs": [{"where", "expr"}...]}.
// Output (stdout, JSON): {"errors": [...], "rules": [...], "exprs": [...]},
// each rule and expression with the selectors it reads (metric name and
// the labels matched on) or why it could not be read. The exit status is 0 whenever the answer was written:
// judging it is the test's job.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type request struct {
	RuleFiles []string `json:"rule_files"`
	Exprs     []expr   `json:"exprs"`
}

type expr struct {
	Where string `json:"where"`
	Expr  string `json:"expr"`
}

// selected is one expression's selectors, or why they are not known.
type selected struct {
	Where     string     `json:"where"`
	Expr      string     `json:"expr"`
	Selectors []selector `json:"selectors"`
	Error     string     `json:"error,omitempty"`
}

// selector is one vector selector: the metric it reads and the label
// names it matches on (besides the metric name).
type selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

// rule is one loaded rule: its fields as Prometheus read them, and the
// metrics its expression selects.
type rule struct {
	File        string            `json:"file"`
	Group       string            `json:"group"`
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	For         time.Duration     `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	selected
}

type answer struct {
	// Errors are what the rule loader refused, one per problem found.
	Errors []string   `json:"errors"`
	Rules  []rule     `json:"rules"`
	Exprs  []selected `json:"exprs"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "promqlcheck:", err)
		os.Exit(2)
	}
}

func run(in io.Reader, out io.Writer) error {
	var req request
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	p := parser.NewParser(parser.Options{})
	ans := answer{Errors: []string{}, Rules: []rule{}, Exprs: []selected{}}
	for _, file := range req.RuleFiles {
		groups, errs := rulefmt.ParseFile(file, false, model.LegacyValidation, p, slog.New(slog.DiscardHandler))
		for _, err := range errs {
			ans.Errors = append(ans.Errors, err.Error())
		}
		if groups == nil {
			continue
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				ans.Rules = append(ans.Rules, rule{File: file, Group: g.Name, Alert: r.Alert, Record: r.Record,
					For: time.Duration(r.For), Labels: r.Labels, Annotations: r.Annotations,
					selected: selectedBy(p, file+": "+g.Name+"/"+r.Alert+r.Record, r.Expr)})
			}
		}
	}
	for _, e := range req.Exprs {
		ans.Exprs = append(ans.Exprs, selectedBy(p, e.Where, e.Expr))
	}
	return json.NewEncoder(out).Encode(ans)
}

// selectedBy parses s and lists its vector selectors. A selector whose
// metric name is not one fixed name (a regular expression on __name__)
// is an error: nobody could say whether it reads anything.
func selectedBy(p parser.Parser, where, s string) selected {
	sel := selected{Where: where, Expr: s, Selectors: []selector{}}
	e, err := p.ParseExpr(s)
	if err != nil {
		sel.Error = err.Error()
		return sel
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name, matched := vs.Name, []string{}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName {
				matched = append(matched, m.Name)
				continue
			}
			if m.Type != labels.MatchEqual {
				sel.Error = fmt.Sprintf("selector %s: the metric name is not one fixed name", vs)
				return nil
			}
			name = m.Value
		}
		if name == "" {
			sel.Error = fmt.Sprintf("selector %s has no metric name", vs)
			return nil
		}
		slices.Sort(matched)
		one := selector{Metric: name, Labels: slices.Compact(matched)}
		if !slices.ContainsFunc(sel.Selectors, func(o selector) bool {
			return o.Metric == one.Metric && slices.Equal(o.Labels, one.Labels)
		}) {
			sel.Selectors = append(sel.Selectors, one)
		}
		return nil
	})
	return sel
}

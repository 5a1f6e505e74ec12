package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/internal/gateway"
)

// The dashboard and the alert rules of issue 15 (build item 4), held to
// the metrics the gateway really exports.

const (
	dashboardFile = "deploy/grafana/dashboards/pushgo.json"
	alertsFile    = "deploy/prometheus/alerts.yml"
	// promqlcheckDir is a module of its own that reads PromQL with
	// Prometheus's own parser and rule loader (see its main.go for why it
	// is not a requirement of the root module).
	promqlcheckDir = "deploy/prometheus/promqlcheck"
)

// scrapeOnly are the metrics Prometheus makes itself for every target: no
// process exports them.
var scrapeOnly = map[string]bool{"up": true}

// TestDashboardAndAlertsUseExportedMetrics parses every PromQL expression
// of the Grafana dashboard and of the alert rules with Prometheus's own
// parser (the rules with the loader `promtool check rules` uses) and
// fails naming each metric, or label matched on, that no pushgo process
// exports: a misspelled or renamed metric would otherwise show an empty
// panel, or an alert that can never fire. The exported metrics are those a
// gateway running every service serves on /metrics, and, for a vector
// with no series yet, those its collectors describe. Every rule must also
// wait (for:), say its severity and carry a summary and a description, and
// the dashboard and the rules must cover what the README promises.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	g, base := startGateway(t)
	exported := exportedFamilies(t, g, base)
	dash := readDashboard(t)
	ans := checkPromQL(t, []string{alertsFile}, dashboardExprs(t, dash))

	for _, err := range ans.Errors {
		t.Errorf("Prometheus refuses the rules: %s", err)
	}
	check := func(where string, s checked) {
		if s.Error != "" {
			t.Errorf("%s: %s\n\texpr: %s", where, s.Error, s.Expr)
			return
		}
		if len(s.Selectors) == 0 {
			t.Errorf("%s: selects no metric\n\texpr: %s", where, s.Expr)
		}
		for _, sel := range s.Selectors {
			if err := exported.selectable(sel); err != nil {
				t.Errorf("%s: %v\n\texpr: %s", where, err, s.Expr)
			}
		}
	}
	inDashboard, inRules := map[string]bool{}, map[string]bool{}
	for _, e := range ans.Exprs {
		check(e.Where, e.checked)
		for _, s := range e.Selectors {
			inDashboard[s.Metric] = true
		}
	}
	alerts := map[string]bool{}
	for _, r := range ans.Rules {
		where := alertsFile + ": " + r.Group + "/" + r.Alert + r.Record
		check(where, r.checked)
		for _, s := range r.Selectors {
			inRules[s.Metric] = true
		}
		if r.Alert == "" {
			continue
		}
		alerts[r.Alert] = true
		if r.For <= 0 {
			t.Errorf("%s: no for: one bad scrape would page someone", where)
		}
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", where, sev)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", where, a)
			}
		}
	}

	// What the README promises to show and to alert on.
	for _, m := range []string{
		"pushgo_http_requests_total", "pushgo_http_request_duration_seconds_bucket", "pushgo_http_errors_total",
		"pushgo_projector_applied_sequence", "pushgo_projector_lag_operations", "pushgo_projector_dead_letters",
		"pushgo_pusher_deliveries_total", "pushgo_pusher_provider_seconds_bucket", "pushgo_pusher_retries_total",
		"pushgo_pusher_retired_tokens_total", "pushgo_pusher_task_backlog",
		"pushgo_store_used_bytes", "pushgo_store_limit_bytes", "pushgo_limit_refusals_total", "pushgo_streams_open",
		"pushgo_broker_connected",
	} {
		if !inDashboard[m] {
			t.Errorf("%s shows nothing of %s", dashboardFile, m)
		}
	}
	for _, a := range []string{
		"PushGoProjectorLagging", "PushGoDeliveryBacklogGrowing", "PushGoProviderFailures", "PushGoBrokerDisconnected",
		"PushGoStoreNearlyFull", "PushGoDeadLetters", "PushGoTargetDown", "PushGoInboxItemsLost", "PushGoLargeNotificationsRefused",
		"PushGoTokenViewBehind",
	} {
		if !alerts[a] {
			t.Errorf("%s has no alert %s", alertsFile, a)
		}
	}
	if len(inRules) == 0 {
		t.Errorf("%s: no rule read", alertsFile)
	}
}

// TestDashboardImportsAnywhere checks what importing the dashboard into
// any Grafana 11 or 12 depends on: every query goes to the data source the
// ${datasource} variable picks (no uid of one installation), the schema is
// Grafana 11's or later, and the panels neither share an id nor overlap.
func TestDashboardImportsAnywhere(t *testing.T) {
	dash := readDashboard(t)
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 39 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and Grafana 11's schema (39) or later",
			dash.UID, dash.Title, dash.SchemaVersion)
	}
	var dsVar bool
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = true
		}
		if v.Type == "query" && !isVariableDatasource(v.Datasource) {
			t.Errorf("variable %s: data source %+v, want ${datasource}", v.Name, v.Datasource)
		}
	}
	if !dsVar {
		t.Errorf("no datasource variable of type prometheus: import would bind the panels to nothing")
	}
	ids := map[int]string{}
	var boxes []panel
	for _, p := range allPanels(dash.Panels) {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v is not within the 24 columns", p.Title, p.GridPos)
		}
		for _, b := range boxes {
			if overlap(p.GridPos, b.GridPos) {
				t.Errorf("panels %q %+v and %q %+v overlap", p.Title, p.GridPos, b.Title, b.GridPos)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" {
			t.Errorf("panel %d: title %q, description %q: each panel says what it shows", p.ID, p.Title, p.Description)
		}
		if !isVariableDatasource(p.Datasource) {
			t.Errorf("panel %q: data source %+v, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !isVariableDatasource(q.Datasource) {
				t.Errorf("panel %q query %s: data source %+v, want ${datasource}", p.Title, q.RefID, q.Datasource)
			}
		}
	}
}

// TestMetricsCountErrorAnswersByCode: the dashboard's "Errors by code"
// and "Answers by status" panels count what clients got. An error a
// handler returns (no such route) is counted with the status it was
// answered with, not the 200 the response held before echo's error
// handler ran, and every error answer is counted under its catalog code.
func TestMetricsCountErrorAnswersByCode(t *testing.T) {
	_, base := startGateway(t)
	fams := scrape(t, base)
	value := func(name string, labels map[string]string) float64 {
		for _, m := range fams[name].GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"pushgo_http_requests_total", map[string]string{"route": "unmatched", "status": "404"}},
		{"pushgo_http_errors_total", map[string]string{"route": "unmatched", "code": "route_not_found"}},
		{"pushgo_http_requests_total", map[string]string{"route": "/channel/create", "status": "400"}},
		{"pushgo_http_errors_total", map[string]string{"route": "/channel/create", "code": "password_required"}},
		{"pushgo_broker_connected", map[string]string{}},
	} {
		if v := value(c.name, c.labels); v != 1 {
			t.Errorf("%s%s = %v, want 1", c.name, toLabelSet(c.labels), v)
		}
	}
	if v := value("pushgo_http_requests_total", map[string]string{"route": "unmatched", "status": "200"}); v != 0 {
		t.Errorf("the 404 of an unknown route was counted as a 200 (%v)", v)
	}
}

// TestBrokerConnectedMetric: PushGoBrokerDisconnected fires on
// pushgo_broker_connected == 0. A gateway on an external broker says 1,
// and 0 once that broker is gone, while its /metrics still answers.
func TestBrokerConnectedMetric(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"), brokertest.NoEnsure())
	cfg := gateway.Defaults()
	cfg.NATSURL, cfg.NATSCreds = b.ClientURL(), b.CredentialsFile(broker.RoleAll)
	cfg.DataDir, cfg.HTTPAddr, cfg.Target = t.TempDir(), "127.0.0.1:0", "ingest"
	g, err := gateway.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()
	connected := func() float64 {
		f := scrape(t, base)["pushgo_broker_connected"]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("pushgo_broker_connected: %v, want one series", f)
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	if v := connected(); v != 1 {
		t.Fatalf("pushgo_broker_connected = %v with the broker up, want 1", v)
	}
	b.Shutdown()
	deadline := time.Now().Add(20 * time.Second)
	for connected() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("pushgo_broker_connected still 1 20 s after the broker stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := model.LabelSet{}
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// startGateway runs every service in this process on an embedded broker
// and answers two requests with errors (a 404 from the router, a 400 from
// a handler), so the HTTP metrics have series.
func startGateway(t *testing.T) (*gateway.Gateway, string) {
	t.Helper()
	cfg := gateway.Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := gateway.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	base := "http://" + g.Addr()
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/no/such/route", ""},
		{http.MethodPost, "/channel/create", `{"channel_name":"ops"}`},
	} {
		req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return g, base
}

// scrape reads base's /metrics as Prometheus would.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// family is one exported metric family: its type and the label names its
// series can carry (beyond the job and instance Prometheus adds).
type family struct {
	typ    string // counter, gauge, histogram, summary, untyped; "" when not known
	labels map[string]bool
}

type families map[string]family

// exportedFamilies are the metric families g exports: those on its
// /metrics, and those its collectors describe that have no series yet
// (a vector's type then comes from its Go type).
func exportedFamilies(t *testing.T, g *gateway.Gateway, base string) families {
	t.Helper()
	fams := families{}
	scraped := scrape(t, base)
	for name, f := range scraped {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		fams[name] = family{typ: strings.ToLower(f.GetType().String()), labels: labels}
	}
	cs := g.Collectors()
	if len(cs) == 0 {
		t.Fatal("the gateway names no collector")
	}
	described := map[string]bool{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name, labels, err := parseDesc(d)
			if err != nil {
				t.Fatal(err)
			}
			described[name] = true
			f, ok := fams[name]
			if !ok {
				f = family{typ: vectorType(c), labels: map[string]bool{}}
			}
			for l := range labels {
				f.labels[l] = true
			}
			fams[name] = f
		}
	}
	// Were the descriptions misread, every family would look exported;
	// each one /metrics serves must be among them.
	for name := range scraped {
		if !described[name] && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("/metrics serves %s, which no collector describes: the descriptions are misread", name)
		}
	}
	return fams
}

// vectorType is the metric type of a vector collector ("" for others).
func vectorType(c prometheus.Collector) string {
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	return ""
}

var (
	descName     = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*")`)
	descConst    = regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	descVariable = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	constLabel   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// parseDesc reads a Desc's name and label names from its String(), the
// only place client_golang shows them.
func parseDesc(d *prometheus.Desc) (string, map[string]bool, error) {
	s := d.String()
	m := descName.FindStringSubmatch(s)
	if m == nil {
		return "", nil, fmt.Errorf("cannot read the metric name of %s", s)
	}
	name, err := strconv.Unquote(m[1])
	if err != nil || name == "" {
		return "", nil, fmt.Errorf("cannot read the metric name of %s", s)
	}
	labels := map[string]bool{}
	if m := descConst.FindStringSubmatch(s); m != nil {
		for _, l := range constLabel.FindAllStringSubmatch(m[1], -1) {
			labels[l[1]] = true
		}
	}
	if m := descVariable.FindStringSubmatch(s); m != nil {
		for l := range strings.SplitSeq(m[1], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "c("), ")"); l != "" {
				labels[l] = true
			}
		}
	}
	return name, labels, nil
}

// selectable says why sel selects nothing a pushgo process exports, or
// nil. A classic histogram is read through its _bucket, _sum and _count
// series (its own name selects nothing), a summary through its name and
// _sum and _count; every label matched on must be one the family's series
// carry, or job or instance (Prometheus adds them).
func (fams families) selectable(sel selector) error {
	if scrapeOnly[sel.Metric] {
		return nil
	}
	f, ok := fams[sel.Metric]
	extra := map[string]bool{"job": true, "instance": true}
	switch {
	case ok && f.typ == "histogram":
		return fmt.Errorf("%s is a histogram: its own name selects nothing (use %[1]s_bucket, _sum or _count)", sel.Metric)
	case ok && f.typ == "summary":
		extra["quantile"] = true
	case !ok:
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, cut := strings.CutSuffix(sel.Metric, suffix)
			if !cut {
				continue
			}
			if bf, found := fams[base]; found && (bf.typ == "histogram" || bf.typ == "summary" && suffix != "_bucket") {
				f, ok = bf, true
				if suffix == "_bucket" {
					extra["le"] = true
				}
			}
		}
	}
	if !ok {
		return fmt.Errorf("%s is not exported by the gateway", sel.Metric)
	}
	if f.typ == "" {
		return fmt.Errorf("%s: the gateway's collectors do not say its type", sel.Metric)
	}
	for _, l := range sel.Labels {
		if !f.labels[l] && !extra[l] {
			return fmt.Errorf("%s has no label %q (it has %v)", sel.Metric, l, slices.Sorted(maps.Keys(f.labels)))
		}
	}
	return nil
}

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  any    `json:"datasource"`
	GridPos     struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Datasource any    `json:"datasource"`
		Expr       string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Datasource any    `json:"datasource"`
	// Query is a string, or for a Prometheus query variable an object
	// whose query member is the string.
	Query any `json:"query"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func overlap(a, b struct{ X, Y, W, H int }) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// isVariableDatasource reports whether ds is {"type": "prometheus",
// "uid": "${datasource}"}.
func isVariableDatasource(ds any) bool {
	m, ok := ds.(map[string]any)
	return ok && m["type"] == "prometheus" && m["uid"] == "${datasource}"
}

// exprAt is one PromQL expression and where it is.
type exprAt struct {
	Where string `json:"where"`
	Expr  string `json:"expr"`
}

var (
	// grafanaInterval are Grafana's interval variables: a duration in a
	// range selector.
	grafanaInterval = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)\}?`)
	// grafanaVariable is any other variable, in its three syntaxes: it
	// stands in a label matcher's value, where any text parses.
	grafanaVariable = regexp.MustCompile(`\$\{[A-Za-z0-9_]+(:[a-z]+)?\}|\$[A-Za-z0-9_]+|\[\[[A-Za-z0-9_]+\]\]`)
	labelValues     = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
)

// dashboardExprs are the PromQL expressions of every panel query and
// query variable, Grafana's variables replaced by what they stand for.
func dashboardExprs(t *testing.T, d dashboard) []exprAt {
	t.Helper()
	promql := func(s string) string {
		s = grafanaInterval.ReplaceAllString(s, "5m")
		return grafanaVariable.ReplaceAllString(s, "var")
	}
	var out []exprAt
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			where := fmt.Sprintf("%s: panel %q query %s", dashboardFile, p.Title, q.RefID)
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("%s: no expr", where)
				continue
			}
			out = append(out, exprAt{where, promql(q.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		where := fmt.Sprintf("%s: variable %s", dashboardFile, v.Name)
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			t.Errorf("%s: query %q is not label_values(<selector>, <label>)", where, q)
			continue
		}
		out = append(out, exprAt{where, promql(m[1])})
	}
	return out
}

// selector is one vector selector: the metric and the labels it matches on.
type selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

// checked is promqlcheck's reading of one expression.
type checked struct {
	Expr      string     `json:"expr"`
	Selectors []selector `json:"selectors"`
	Error     string     `json:"error"`
}

// promqlAnswer is promqlcheck's output.
type promqlAnswer struct {
	Errors []string `json:"errors"`
	Rules  []struct {
		Group       string            `json:"group"`
		Alert       string            `json:"alert"`
		Record      string            `json:"record"`
		For         time.Duration     `json:"for"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		checked
	} `json:"rules"`
	Exprs []struct {
		Where string `json:"where"`
		checked
	} `json:"exprs"`
}

// checkPromQL builds promqlcheck and has it load ruleFiles and parse exprs.
func checkPromQL(t *testing.T, ruleFiles []string, exprs []exprAt) promqlAnswer {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds promqlcheck: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "promqlcheck")
	// A build with nothing cached took 3 minutes on a loaded 2-core
	// machine (seconds once cached); make test gives the package 12.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goCmd, "build", "-o", bin, ".")
	build.Dir = promqlcheckDir
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", promqlcheckDir, err, out)
	}
	var files []string
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, abs)
	}
	in, err := json.Marshal(map[string]any{"rule_files": files, "exprs": exprs})
	if err != nil {
		t.Fatal(err)
	}
	run := exec.CommandContext(ctx, bin)
	run.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("promqlcheck: %v\n%s", err, stderr.String())
	}
	var ans promqlAnswer
	if err := json.Unmarshal(out, &ans); err != nil {
		t.Fatalf("promqlcheck answered %q: %v", out, err)
	}
	if len(ans.Exprs) != len(exprs) {
		t.Fatalf("promqlcheck read %d of %d expressions", len(ans.Exprs), len(exprs))
	}
	return ans
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v4"

	"github.com/pushgo/gateway/broker"
)

// TestComposeShape loads compose.yaml with compose-go (the parser Docker
// Compose itself uses) and checks the scaled shape: three NATS servers of
// the official image running the repository's cluster config, each with a
// volume and a health check; two ingest, two projector and two pusher
// processes of the pushgo image, each naming all three servers, streams
// at three replicas, its role's credentials, and a health check on its
// /readyz; ingest published on loopback.
func TestComposeShape(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"}, cli.WithWorkingDirectory("."), cli.WithName("pushgo"),
		cli.WithoutEnvironmentResolution, cli.WithResolvedPaths(false))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	for _, name := range []string{"nats-1", "nats-2", "nats-3"} {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.Image, "nats:") || !slices.Equal(s.Command, types.ShellCommand{"-c", "/etc/nats/nats.conf"}) {
			t.Errorf("%s: image %q command %q, want the official nats image with the repository's config", name, s.Image, s.Command)
		}
		// A node catching up after an outage answers /healthz 503 for longer
		// than interval x retries: without a start period it was marked
		// unhealthy and every `docker compose up` aborted on it.
		if s.HealthCheck == nil || s.HealthCheck.StartPeriod == nil || time.Duration(*s.HealthCheck.StartPeriod) < 5*time.Minute ||
			len(s.Volumes) != 2 || s.Environment["SERVER_NAME"] == nil || *s.Environment["SERVER_NAME"] != name {
			t.Errorf("%s: health check %v, volumes %v, SERVER_NAME %v", name, s.HealthCheck, s.Volumes, s.Environment["SERVER_NAME"])
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 20*time.Second {
			t.Errorf("%s: stop_grace_period %v, want room for a clean stop (Docker's default is 10 s)", name, s.StopGracePeriod)
		}
	}
	conf, err := os.ReadFile(filepath.Join("deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jetstream", "routes: $NATS_ROUTES", "include ./accounts.conf"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("deploy/nats/nats.conf has no %q: the three nodes must run JetStream and route to each other", want)
		}
	}
	clusterEnv := readEnvFile(t, filepath.Join("deploy", "nats", "cluster.env"))
	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		if !strings.Contains(clusterEnv["NATS_ROUTES"], "nats://"+n+":6222") {
			t.Errorf("deploy/nats/cluster.env: NATS_ROUTES %q does not name %s", clusterEnv["NATS_ROUTES"], n)
		}
	}
	front, err := p.GetService("front")
	if err != nil {
		t.Fatal(err)
	}
	if len(front.Ports) != 1 || front.Ports[0].Published != "8080" || front.Ports[0].HostIP != "127.0.0.1" {
		t.Errorf("front: ports %+v, want the API on 127.0.0.1:8080", front.Ports)
	}
	caddyfile, err := os.ReadFile(filepath.Join("deploy", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dynamic a", "name ingest", "port 8080", "flush_interval -1", "respond /metrics 404", "respond /deadletters 404"} {
		if !strings.Contains(string(caddyfile), want) {
			t.Errorf("deploy/caddy/Caddyfile has no %q: the front must follow every ingest replica and stream SSE", want)
		}
	}
	for _, target := range []string{"ingest", "projector", "pusher"} {
		s, err := p.GetService(target)
		if err != nil {
			t.Fatal(err)
		}
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 2 {
			t.Errorf("%s: want 2 replicas, got %+v", target, s.Deploy)
		}
		if !slices.Equal(s.Command, types.ShellCommand{"-target", target}) {
			t.Errorf("%s: command %q", target, s.Command)
		}
		urls := env("PUSHGO_NATS_URL")
		for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
			if !strings.Contains(urls, "nats://"+n+":4222") {
				t.Errorf("%s: PUSHGO_NATS_URL %q does not name %s", target, urls, n)
			}
			if _, ok := s.DependsOn[n]; !ok {
				t.Errorf("%s: does not wait for %s", target, n)
			}
		}
		if env("PUSHGO_REPLICAS") != "3" || env("PUSHGO_NATS_CREDS") == "" {
			t.Errorf("%s: PUSHGO_REPLICAS %q, PUSHGO_NATS_CREDS %q", target, env("PUSHGO_REPLICAS"), env("PUSHGO_NATS_CREDS"))
		}
		if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "/readyz") {
			t.Errorf("%s: health check %v, want one on /readyz", target, s.HealthCheck)
		}
		// The HTTP server's drain (10 s) and the pusher's hand-over take
		// longer than Docker's 10 s before SIGKILL.
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 20*time.Second {
			t.Errorf("%s: stop_grace_period %v, want room for a clean stop", target, s.StopGracePeriod)
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s: ports %v: only the front is published (replicas cannot share a host port)", target, s.Ports)
		}
		if target == "projector" {
			// The projection on a volume, in a slot a replica: recreated,
			// a replica goes on from its store instead of folding the log
			// again and losing what left it.
			onVolume := slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Type == types.VolumeTypeVolume && v.Target == "/data"
			})
			slots, _ := strconv.Atoi(env("PUSHGO_PROJECTION_SLOTS"))
			if !onVolume || slots < int(*s.Deploy.Replicas) {
				t.Errorf("projector: volumes %v, PUSHGO_PROJECTION_SLOTS %q: want a named volume at /data (the image's data directory) and a slot a replica", s.Volumes, env("PUSHGO_PROJECTION_SLOTS"))
			}
		}
	}
}

// TestClusterConfigParses runs the repository's node config through
// nats-server's own parser, as each of compose.yaml's three servers does:
// JetStream on, the node named by SERVER_NAME, routes to all three, and
// the pushgo account with one nkey user per role from accounts.conf.
func TestClusterConfigParses(t *testing.T) {
	t.Setenv("SERVER_NAME", "nats-2")
	for k, v := range readEnvFile(t, filepath.Join("deploy", "nats", "cluster.env")) {
		t.Setenv(k, v)
	}
	for _, role := range []string{"ALL", "INGEST", "PROJECTOR", "PUSHER", "ADMIN"} {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		t.Setenv("PUSHGO_NKEY_"+role, pub)
	}
	o, err := server.ProcessConfigFile(filepath.Join("deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("nats-server refuses deploy/nats/nats.conf: %v", err)
	}
	if !o.JetStream || o.ServerName != "nats-2" || o.Cluster.Name != "pushgo" || len(o.Routes) != 3 {
		t.Fatalf("jetstream %v, server name %q, cluster %q, %d routes: want JetStream, nats-2, pushgo, 3 routes",
			o.JetStream, o.ServerName, o.Cluster.Name, len(o.Routes))
	}
	if o.PingInterval != broker.ClientPingInterval || o.MaxPingsOut != broker.ClientMaxPingsOut {
		t.Errorf("client pings every %s, %d missed: want the embedded broker's (%s, %d), so a hung client is dropped within about 20 s",
			o.PingInterval, o.MaxPingsOut, broker.ClientPingInterval, broker.ClientMaxPingsOut)
	}
	if o.SyncInterval != time.Second {
		t.Errorf("JetStream sync interval %s, want 1s (PUSHGO_SYNC's default; nats-server's own is 2 minutes)", o.SyncInterval)
	}
	if len(o.Nkeys) != 5 {
		t.Fatalf("%d nkey users, want one per role (5)", len(o.Nkeys))
	}
	// Storage: the account's limit (over all three copies) is what refuses
	// writes; each node's own is a backstop above its share, with room for
	// the account's overshoot (up to about 15%), and both are set: without
	// them three nodes on one disk filled it and JetStream shut down.
	env := readEnvFile(t, filepath.Join("deploy", "nats", "cluster.env"))
	account, err := conf.Parse("v: " + env["PUSHGO_MAX_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	accountMax, _ := account["v"].(int64)
	if o.JetStreamMaxStore <= 0 || accountMax <= 0 || float64(accountMax)/3*1.25 >= float64(o.JetStreamMaxStore) {
		t.Errorf("node file store limit %d, account limit %d: want both, the node's above a third of the account's with 25%% room",
			o.JetStreamMaxStore, accountMax)
	}
}

// readEnvFile reads a KEY=VALUE file as compose's env_file does (comments
// and blank lines skipped).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// TestComposeMonitoring checks what compose.yaml adds to watch the
// gateway: Prometheus and Grafana of pinned images, published on loopback
// only, their configuration mounted read-only from the repository;
// Prometheus scrapes every pushgo service on the port it serves /metrics
// on and loads the alert rules TestDashboardAndAlertsUseExportedMetrics
// checks; Grafana gets that Prometheus as its default data source and the
// repository's dashboard.
func TestComposeMonitoring(t *testing.T) {
	p := loadCompose(t)
	prom, err := p.GetService("prometheus")
	if err != nil {
		t.Fatal(err)
	}
	graf, err := p.GetService("grafana")
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]*regexp.Regexp{
		"prometheus": regexp.MustCompile(`^prom/prometheus:v[0-9]+\.[0-9]+\.[0-9]+$`),
		"grafana":    regexp.MustCompile(`^grafana/grafana:1[1-9]\.[0-9]+\.[0-9]+$`),
	}
	for _, s := range []types.ServiceConfig{prom, graf} {
		if !pinned[s.Name].MatchString(s.Image) {
			t.Errorf("%s: image %q, want one release pinned (%s)", s.Name, s.Image, pinned[s.Name])
		}
		if len(s.Ports) == 0 {
			t.Errorf("%s: not published", s.Name)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %+v is published beyond loopback", s.Name, port)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if !v.ReadOnly {
				t.Errorf("%s: %s is mounted writable", s.Name, v.Source)
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: mounts %s: %v", s.Name, v.Source, err)
			}
		}
	}

	// Prometheus: its config, the rules, every pushgo service scraped.
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	configFile := ""
	for _, arg := range prom.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			configFile = v
		}
	}
	src := mountedFrom(t, prom, configFile)
	if src != "deploy/prometheus/prometheus.yml" {
		t.Errorf("prometheus: --config.file %q is %q, want deploy/prometheus/prometheus.yml", configFile, src)
	}
	readYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
	rulesLoaded := false
	for _, f := range cfg.RuleFiles {
		if mountedFrom(t, prom, f) == alertsFile {
			rulesLoaded = true
		}
	}
	if !rulesLoaded {
		t.Errorf("prometheus: rule_files %v: none is %s mounted", cfg.RuleFiles, alertsFile)
	}
	scraped := map[string]int{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				if d.Type == "A" {
					scraped[n] = d.Port
				}
			}
		}
	}
	var pushgo []string
	for name, s := range p.Services {
		if len(s.Command) != 2 || s.Command[0] != "-target" {
			continue
		}
		pushgo = append(pushgo, name)
		addr := ""
		if v := s.Environment["PUSHGO_HTTP_ADDR"]; v != nil {
			addr = *v
		}
		_, port, _ := strings.Cut(addr, ":")
		if got, ok := scraped[name]; !ok || strconv.Itoa(got) != port {
			t.Errorf("prometheus scrapes %s on port %d (listed %v), want every replica (dns_sd_configs type A) on %q, its PUSHGO_HTTP_ADDR's port",
				name, got, ok, port)
		}
	}
	if len(pushgo) != 3 {
		t.Errorf("pushgo services %v, want ingest, projector and pusher", pushgo)
	}

	// Grafana: the data source is that Prometheus, the dashboards are
	// the repository's.
	if mountedFrom(t, graf, "/etc/grafana/provisioning") != "deploy/grafana/provisioning" {
		t.Errorf("grafana: /etc/grafana/provisioning is not deploy/grafana/provisioning")
	}
	var ds struct {
		Datasources []struct {
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/prometheus.yaml", &ds)
	promURL := fmt.Sprintf("http://prometheus:%d", prom.Ports[0].Target)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != promURL || !ds.Datasources[0].IsDefault {
		t.Errorf("grafana data sources %+v, want one, the default, of type prometheus at %s", ds.Datasources, promURL)
	}
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "deploy/grafana/provisioning/dashboards/pushgo.yaml", &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" {
		t.Fatalf("grafana dashboard providers %+v, want one of type file", providers.Providers)
	}
	dir := mountedFrom(t, graf, providers.Providers[0].Options.Path)
	if filepath.Join(dir, filepath.Base(dashboardFile)) != dashboardFile {
		t.Errorf("grafana: the dashboards provider reads %s (%q), want the directory of %s", providers.Providers[0].Options.Path, dir, dashboardFile)
	}
	if home := graf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home == nil ||
		*home != providers.Providers[0].Options.Path+"/"+filepath.Base(dashboardFile) {
		t.Errorf("grafana: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %v, want the PushGo dashboard", home)
	}
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"}, cli.WithWorkingDirectory("."), cli.WithName("pushgo"),
		cli.WithoutEnvironmentResolution, cli.WithResolvedPaths(false))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

// mountedFrom is the repository path s mounts at path (a file or
// directory, or a file inside a mounted directory), or "".
func mountedFrom(t *testing.T, s types.ServiceConfig, path string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		rel, err := filepath.Rel(v.Target, path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		return filepath.Clean(filepath.Join(v.Source, rel))
	}
	return ""
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
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
		if s.HealthCheck == nil || len(s.Volumes) != 2 || s.Environment["SERVER_NAME"] == nil || *s.Environment["SERVER_NAME"] != name {
			t.Errorf("%s: health check %v, volumes %v, SERVER_NAME %v", name, s.HealthCheck, s.Volumes, s.Environment["SERVER_NAME"])
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
	for _, want := range []string{"dynamic a", "name ingest", "port 8080", "flush_interval -1"} {
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
		if len(s.Ports) > 0 {
			t.Errorf("%s: ports %v: only the front is published (replicas cannot share a host port)", target, s.Ports)
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
	if o.SyncInterval != time.Second {
		t.Errorf("JetStream sync interval %s, want 1s (PUSHGO_SYNC's default; nats-server's own is 2 minutes)", o.SyncInterval)
	}
	if len(o.Nkeys) != 5 {
		t.Fatalf("%d nkey users, want one per role (5)", len(o.Nkeys))
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

package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// The layers, from the bottom up: schemas (the contract, no I/O), broker
// (the NATS plumbing and the registries every service shares), then the
// services ingest, projector and pusher, which meet only through those two
// and the log. The root module composes them.
const modulePrefix = "github.com/pushgo/gateway/"

// layerRule forbids the packages of one module, tests included, to depend
// on any package whose import path starts with one of forbidden.
type layerRule struct {
	module    string
	forbidden []string
	why       string
}

var layerRules = []layerRule{
	{"schemas", []string{
		modulePrefix + "broker", modulePrefix + "ingest", modulePrefix + "projector", modulePrefix + "pusher",
		"github.com/nats-io/", "github.com/cockroachdb/pebble", "github.com/labstack/echo",
	}, "schemas is the contract: no I/O, no broker, no service"},
	{"broker", []string{modulePrefix + "ingest", modulePrefix + "projector", modulePrefix + "pusher"},
		"broker sits below the services"},
	{"ingest", []string{modulePrefix + "projector", modulePrefix + "pusher"}, "services never import each other"},
	{"projector", []string{modulePrefix + "ingest", modulePrefix + "pusher"}, "services never import each other"},
	{"pusher", []string{modulePrefix + "ingest", modulePrefix + "projector"}, "services never import each other"},
}

// TestLayering reads every module's dependency graph from `go list -deps
// -test`, so a forbidden import fails here wherever it is added, test
// files included.
func TestLayering(t *testing.T) {
	if testing.Short() {
		t.Skip("go list over every module")
	}
	for _, r := range layerRules {
		t.Run(r.module, func(t *testing.T) {
			for pkg, deps := range depsOf(t, "./"+r.module+"/...") {
				for _, d := range deps {
					for _, f := range r.forbidden {
						if within(d, f) {
							t.Errorf("%s depends on %s: %s", pkg, d, r.why)
						}
					}
				}
			}
		})
	}
}

// within reports whether package path p is f or below it; an f ending in
// "/" names every path starting with it (a whole organisation).
func within(p, f string) bool {
	if strings.HasSuffix(f, "/") {
		return strings.HasPrefix(p, f)
	}
	return p == f || strings.HasPrefix(p, f+"/")
}

// depsOf maps each package matched by pattern (and its test variants) to
// its transitive dependencies.
func depsOf(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, pattern)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, stderr.String())
	}
	root := modulePrefix + strings.TrimPrefix(strings.TrimSuffix(pattern, "/..."), "./")
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		// -deps also lists the dependencies themselves: keep the module's
		// own packages, their external tests ("p_test") and test mains
		// ("p.test").
		if p, ok := strings.CutPrefix(f[0], root); ok && (p == "" || strings.ContainsRune("/_.", rune(p[0]))) {
			m[f[0]] = f[1:]
		}
	}
	if len(m) == 0 {
		t.Fatalf("go list %s listed no package of the module", pattern)
	}
	return m
}

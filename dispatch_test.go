package main

import (
	"context"
	"errors"
	"flag"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushgo/gateway/internal/cli"
	"github.com/pushgo/gateway/internal/gateway"
)

// serverFlagNames are the flags gateway.Load defines, read from the usage
// it prints for -h (the flag package writes it to os.Stderr, captured here).
func serverFlagNames(t *testing.T) []string {
	t.Helper()
	var loadErr error
	_, usage := withStderr(t, func() int {
		_, loadErr = gateway.Load([]string{"-h"}, func(string) string { return "" })
		return 0
	})
	if !errors.Is(loadErr, flag.ErrHelp) {
		t.Fatalf("gateway.Load -h: %v, want flag.ErrHelp", loadErr)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([^\s=]+)`).FindAllStringSubmatch(usage, -1) {
		names = append(names, m[1])
	}
	return names
}

// TestEveryServerFlagRunsTheServer: each of the server's flags, first on
// the command line in any of the flag package's spellings, runs the server
// with the arguments untouched, as "pushgo -target ingest" did before the
// client existed. A server flag that the client also defines (a future
// -timeout or -json) would become the client's and fail here.
func TestEveryServerFlagRunsTheServer(t *testing.T) {
	names := serverFlagNames(t)
	for _, want := range []string{"http-addr", "target", "token", "log-level", "rebuild", "nats-url"} {
		if !slices.Contains(names, want) {
			t.Fatalf("server flags read from -h: %q; %q missing (is the usage format still flag.PrintDefaults'?)", names, want)
		}
	}
	if len(names) < 40 {
		t.Fatalf("only %d server flags read from -h: %q", len(names), names)
	}
	for _, name := range names {
		for _, args := range [][]string{
			{"-" + name, "v"}, {"--" + name, "v"}, {"-" + name + "=v"}, {"--" + name + "=v"},
			{"serve", "-" + name, "v"}, {"-" + name, "v", "-log-level", "debug"},
		} {
			var served [][]string
			var stdout, stderr strings.Builder
			code := cli.Main(context.Background(), args, cli.Env{
				Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
				Getenv: func(string) string { return "ftp://not-a-gateway" }, // a client command fails before sending
			}, func(_ context.Context, a []string) int {
				served = append(served, slices.Clone(a))
				return 42
			})
			want := args
			if args[0] == "serve" {
				want = args[1:]
			}
			if code != 42 || len(served) != 1 || !slices.Equal(served[0], want) {
				t.Errorf("pushgo %s: exit %d, served %q (stderr %q); want the server run with %q", strings.Join(args, " "), code, served, stderr.String(), want)
			}
		}
	}
}

// Command pushgo is the PushGo gateway: an event-sourced push gateway over
// NATS JetStream. With no configuration it runs every service in one
// process with an embedded broker storing under ./data.
//
// The same binary is the gateway's command line client: "pushgo" with no
// command, with only the server's flags, or "pushgo serve [flags]" runs
// the gateway; "pushgo channel|send|event|thing|tail|status ..." are
// clients of a running gateway (internal/cli; pushgo --help lists them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pushgo/gateway/internal/cli"
	"github.com/pushgo/gateway/internal/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, serve)
	stop()
	os.Exit(code)
}

// serve runs the gateway with the server's flags until ctx ends, and
// returns the exit code: 0 after a clean stop (or -h), 2 for a bad
// configuration, 1 when the gateway failed.
func serve(ctx context.Context, args []string) int {
	cfg, err := gateway.Load(args, gateway.EnvOS)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package printed the server's flags
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo:", err)
		return 2
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if gc := gateway.TuneGC(os.Getenv); gc != "" {
		log.Debug("pushgo: garbage collector tuned", "settings", gc)
	}
	if procs := gateway.TuneProcs(os.Getenv, cfg.Target); procs != "" {
		log.Debug("pushgo: scheduler tuned", "settings", procs)
	}
	if err := gateway.Run(ctx, cfg, log); err != nil {
		log.Error("pushgo stopped", "err", err)
		return 1
	}
	return 0
}

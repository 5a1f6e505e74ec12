// Command pushgo is the PushGo gateway: an event-sourced push gateway over
// NATS JetStream. With no configuration it runs every service in one
// process with an embedded broker storing under ./data.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pushgo/gateway/internal/gateway"
)

func main() {
	cfg, err := gateway.Load(os.Args[1:], gateway.EnvOS)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushgo:", err)
		os.Exit(2)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if gc := gateway.TuneGC(os.Getenv); gc != "" {
		log.Debug("pushgo: garbage collector tuned", "settings", gc)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := gateway.Run(ctx, cfg, log); err != nil {
		log.Error("pushgo stopped", "err", err)
		os.Exit(1)
	}
}

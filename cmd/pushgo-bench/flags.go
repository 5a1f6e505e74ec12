package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/schemas/broker"
)

// options are the command's flags after defaults and -quick are applied.
type options struct {
	duration    time.Duration // measured length of each phase
	warmup      time.Duration // unmeasured lead-in of each phase
	runs        int
	entities    int // events and things each
	concurrency int
	bodySize    int
	halfLoad    float64 // fraction of OURS's rate for the open-loop phase
	p99Budget   time.Duration
	ratioBudget float64
	cpuProfile  string
	diag        bool
	timeline    bool
	target      string // gateway.Config.Target
	modes       []syncMode
}

// syncMode is one durability setting under test.
type syncMode struct {
	sync broker.Sync
}

func (m syncMode) label() string { return "sync=" + m.sync.String() }

func parseFlags(args []string) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("pushgo-bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured length of each phase")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each phase")
	fs.IntVar(&o.runs, "runs", 1, "repeat each measurement N times and report the median")
	fs.IntVar(&o.entities, "entities", 1000, "events and things created before the HTTP run (each)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent publishers / HTTP clients")
	fs.IntVar(&o.bodySize, "body", 400, "approximate request body size in bytes")
	fs.Float64Var(&o.halfLoad, "load", 0.5, "open-loop rate as a fraction of OURS's measured rate")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the first OURS (http) phase to this file")
	fs.BoolVar(&o.diag, "diag", false, "also measure GET /healthz closed-loop (the HTTP-only floor) and raw JetStream open-loop at the half-load rate (informational rows)")
	fs.BoolVar(&o.timeline, "timeline", false, "print each phase's successes per second (to see stalls and drift)")
	fs.StringVar(&o.target, "target", "all", "gateway services to run in-process: all (ingest + projector, the default binary) or ingest")
	quick := fs.Bool("quick", false, "smoke mode: 3s phases, 500ms warm-up (explicit flags still win)")
	modes := fs.String("modes", "default,always", `comma-separated sync modes: "default" (gateway.Defaults().Sync), "always", or an fsync interval`)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["warmup"] {
			o.warmup = 500 * time.Millisecond
		}
	}
	o.p99Budget, o.ratioBudget = 20*time.Millisecond, 0.5
	switch {
	case o.duration <= 0 || o.warmup < 0:
		return options{}, errors.New("-duration must be positive and -warmup not negative")
	case o.runs < 1 || o.entities < 1 || o.concurrency < 1:
		return options{}, errors.New("-runs, -entities and -concurrency must be at least 1")
	case o.bodySize < 200 || o.bodySize > 16<<10:
		return options{}, errors.New("-body must be within 200..16384")
	case o.halfLoad <= 0 || o.halfLoad > 1:
		return options{}, errors.New("-load must be within (0, 1]")
	case o.target != "all" && o.target != "ingest":
		return options{}, errors.New("-target must be all or ingest (the HTTP routes need ingest)")
	}
	for _, s := range strings.Split(*modes, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		m := syncMode{sync: gateway.Defaults().Sync}
		if s != "default" {
			var err error
			if m.sync, err = broker.ParseSync(s); err != nil {
				return options{}, err
			}
		}
		o.modes = append(o.modes, m)
	}
	if len(o.modes) == 0 {
		return options{}, errors.New("-modes names no mode")
	}
	return o, nil
}

// hardLimit bounds the whole program, whatever the broker or the gateway
// do: three timed phases per run, plus generous room for start-up, entity
// creation and shutdown.
func (o options) hardLimit() time.Duration {
	perRun := 5*(o.duration+o.warmup+15*time.Second) + 2*settleLimit
	return time.Duration(len(o.modes)) * (time.Duration(o.runs)*perRun + 2*time.Minute)
}

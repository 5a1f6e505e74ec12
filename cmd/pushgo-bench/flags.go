package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/schemas/streams"
)

// options are the common flags after defaults and -quick are applied, and
// the selected phases, whose own flags are theirs (phase.go).
type options struct {
	duration    time.Duration // measured length of each phase
	warmup      time.Duration // unmeasured lead-in of each phase
	runs        int
	entities    int // events and things each
	concurrency int
	bodySize    int
	timeline    bool
	target      string // gateway.Config.Target
	partitions  int    // gateway.Config.DeliveryPartitions; 0: the gateway's choice
	inboxCap    int64  // gateway.Config.InboxPerDevice; -1: the gateway's default
	client      string // clientLight or clientNetHTTP: the load phases' HTTP client

	phases  []phase         // selected, in table order
	lowered map[string]bool // the flags -quick gave their -quick value
}

const (
	clientLight   = "light"
	clientNetHTTP = "nethttp"
)

// parseFlags parses the common flags and every registered phase's own, and
// sets up the phases -phases selects.
func parseFlags(args []string) (*options, error) {
	o := &options{lowered: map[string]bool{}}
	all := newPhases()
	common := newFlagSet("pushgo-bench")
	common.DurationVar(&o.duration, "duration", 10*time.Second, "measured length of each phase")
	common.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each phase")
	common.IntVar(&o.runs, "runs", 1, "repeat each measurement N times and report the median")
	common.IntVar(&o.entities, "entities", 1000, "events and things created before the HTTP run (each)")
	common.IntVar(&o.concurrency, "concurrency", 64, "concurrent publishers / HTTP clients")
	common.IntVar(&o.bodySize, "body", 400, "approximate request body size in bytes")
	common.BoolVar(&profileEveryRun, "profile-every-run", false, "profile every run of a phase, not only the first, each to its own file (-run<N> before the extension): to compare a run with the ones after it")
	common.BoolVar(&o.timeline, "timeline", false, "print each phase's successes per second (to see stalls and drift)")
	common.StringVar(&o.target, "target", "all", "gateway services to run in-process: all (ingest + projector, the default binary) or ingest")
	common.Int64Var(&o.inboxCap, "inbox-per-device", -1, "inbox items kept per device by every gateway the bench starts (PUSHGO_INBOX_PER_DEVICE; -1: the gateway's default, 0: none), to measure what a cap costs the delivery rows")
	common.IntVar(&o.partitions, "delivery-partitions", 0, "delivery partitions of every gateway the bench starts (PUSHGO_DELIVERY_PARTITIONS; 0: the gateway's default): the broker hands each operation to each partition's consumer, so rows at 1 and at the default show what one costs")
	common.StringVar(&o.client, "client", clientLight, "HTTP client of the load phases: light (minimal keep-alive HTTP/1.1, one connection per worker) or nethttp")
	phaseList := common.String("phases", strings.Join(names(defaultPhases(all), false), ","), "comma-separated tables to produce: "+enumerate(names(all, true), "and"))
	quick := common.Bool("quick", false, "smoke mode: every flag marked (-quick: v) takes v unless given")
	common.quick("duration", "3s")
	common.quick("warmup", "500ms")

	fs := newFlagSet("pushgo-bench")
	fs.add(common)
	sets := make([]*flagSet, len(all))
	for i, p := range all {
		sets[i] = newFlagSet(p.name())
		p.flags(sets[i])
		fs.add(sets[i])
	}
	fs.Usage = func() { printUsage(fs.Output(), common, all, sets) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *quick {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, v := range fs.quickValues {
			if !given[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, fmt.Errorf("-quick value of -%s: %w", name, err)
				}
				o.lowered[name] = true
			}
		}
	}

	selected := map[string]bool{}
	for _, s := range strings.Split(*phaseList, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !hasPhase(all, s) {
			return nil, fmt.Errorf("-phases: unknown %q (want %s)", s, enumerate(names(all, false), "and/or"))
		}
		selected[s] = true
	}
	for _, p := range all {
		if selected[p.name()] {
			o.phases = append(o.phases, p)
		}
	}
	switch {
	case o.duration <= 0 || o.warmup < 0:
		return nil, errors.New("-duration must be positive and -warmup not negative")
	case o.runs < 1 || o.entities < 1 || o.concurrency < 1:
		return nil, errors.New("-runs, -entities and -concurrency must be at least 1")
	case o.bodySize < 200 || o.bodySize > 16<<10:
		return nil, errors.New("-body must be within 200..16384")
	case o.target != "all" && o.target != "ingest":
		return nil, errors.New("-target must be all or ingest (the HTTP routes need ingest)")
	case o.partitions < 0 || o.partitions > pusher.MaxPartitions:
		return nil, fmt.Errorf("-delivery-partitions must be within 0..%d", pusher.MaxPartitions)
	case o.inboxCap < -1:
		return nil, errors.New("-inbox-per-device must be -1 (the default), 0 (none) or positive")
	case o.client != clientLight && o.client != clientNetHTTP:
		return nil, errors.New("-client must be light or nethttp")
	case len(o.phases) == 0:
		return nil, errors.New("-phases names no table")
	}
	for _, p := range o.phases {
		if err := p.setup(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func hasPhase(ps []phase, name string) bool {
	for _, p := range ps {
		if p.name() == name {
			return true
		}
	}
	return false
}

// hardLimit bounds the whole program, whatever the broker or the gateway
// do: the sum of the selected phases' bounds.
func (o *options) hardLimit() time.Duration {
	var total time.Duration
	for _, p := range o.phases {
		total += p.limit()
	}
	return total
}

// inboxPerDevice is the inbox cap of the gateways the bench starts:
// -inbox-per-device, else the gateway's default.
func (o *options) inboxPerDevice() int64 {
	if o.inboxCap >= 0 {
		return o.inboxCap
	}
	return streams.DefaultInboxPerDevice
}

// deliveryPartitions is the delivery partitions of the gateways the bench
// starts: -delivery-partitions, else what the gateway gives a new
// deployment of its target.
func (o *options) deliveryPartitions() int {
	if o.partitions > 0 {
		return o.partitions
	}
	cfg := gateway.Defaults()
	cfg.Target = o.target
	return cfg.NewDeliveryPartitions()
}

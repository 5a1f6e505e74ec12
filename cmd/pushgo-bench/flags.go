package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
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
	client      string // clientLight or clientNetHTTP: the load phases' HTTP client

	// The projector phases (-phases projector).
	write, projector bool // which tables to produce
	ops              int  // operations populated for the raw consume and the fold
	historyOps       int  // operations appended to the history channel
	historyReqs      int  // /channel/history requests per measurement
	historyClients   int  // concurrent clients of the concurrent history row
	historyLimit     int
	getRate          float64 // /thing/get requests per second under the write load
	foldProfile      string
	foldRatioBudget  float64
	rebuildBudget    time.Duration // per million operations
	historyBudget    time.Duration // p99
	getBudget        time.Duration // p99

	// The delivery phases (-phases delivery).
	delivery           bool
	deliveryProvider   string        // providerAPNs or providerFCM
	deliveryDevices    int           // devices of the throughput channel
	deliveryMsgs       int           // messages of each throughput run
	fanoutDevices      int           // devices of the fan-out channel
	latencyDevices     int           // devices of the latency channel
	latencyRate        float64       // messages per second of the latency phase
	providerLatency    time.Duration // the fake provider's latency of the second throughput phase
	deliverySenders    int           // HTTP clients sending the messages
	deliveryProfile    string
	deliveryRateBudget float64       // notifications/s at providerLatency
	fanoutBudget       time.Duration // last push of the fan-out
	latencyBudget      time.Duration // p99 accept-to-provider

	// The integrations phases (-phases integrations).
	integrations     bool
	integThings      int           // Things created before the Dynatrace phases
	amAlerts         int           // alerts per Alertmanager payload
	amClients        int           // concurrent Alertmanager senders
	dtRatioBudget    float64       // Dynatrace reports/s over the /event/create rate
	dtP99Budget      time.Duration // Dynatrace request p99
	amP99Budget      time.Duration // Alertmanager payload p99
	integProfile     string
	integQuickThings bool // -quick lowered -integ-things (said in the header)
}

const (
	providerAPNs = "apns"
	providerFCM  = "fcm"
)

const (
	clientLight   = "light"
	clientNetHTTP = "nethttp"
)

// getReaders are the connections of the paced /thing/get readers.
const getReaders = 16

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
	fs.StringVar(&o.client, "client", clientLight, "HTTP client of the load phases: light (minimal keep-alive HTTP/1.1, one connection per worker) or nethttp")
	phaseList := fs.String("phases", "write,projector,delivery,integrations", `comma-separated tables to produce: "write" (raw vs ours, per sync mode), "projector" (populate, raw consume, fold, history and /thing/get latency), "delivery" (notifications/s, fan-out, accept-to-provider latency against a fake provider) and "integrations" (Dynatrace ingest and Alertmanager webhooks against the /event/create rate)`)
	fs.IntVar(&o.ops, "ops", 1_000_000, "operations populated for the projector fold phases")
	fs.IntVar(&o.historyOps, "history-ops", 20_000, "operations appended over HTTP to the channel whose /channel/history is read")
	fs.IntVar(&o.historyReqs, "history-reqs", 500, "/channel/history requests per measurement")
	fs.IntVar(&o.historyClients, "history-clients", 8, "concurrent clients of the concurrent /channel/history row (at most -concurrency)")
	fs.IntVar(&o.historyLimit, "history-limit", 1000, "limit of each /channel/history request")
	fs.Float64Var(&o.getRate, "get-rate", 200, "/thing/get requests per second issued during the write load")
	fs.StringVar(&o.foldProfile, "foldprofile", "", "write a CPU profile of the first projector fold (rebuild) to this file")
	fs.StringVar(&o.deliveryProvider, "provider", providerAPNs, "delivery phases: the provider the devices use: apns (real APNs sender, fake APNs over TLS HTTP/2) or fcm (real FCM sender, fake FCM over HTTP/1.1)")
	fs.IntVar(&o.deliveryDevices, "delivery-devices", 10_000, "delivery phases: devices subscribed to the throughput channel")
	fs.IntVar(&o.deliveryMsgs, "delivery-msgs", 10, "delivery phases: messages sent in each throughput run (each pushed to every device)")
	fs.IntVar(&o.fanoutDevices, "fanout-devices", 10_000, "delivery phases: devices subscribed to the fan-out channel")
	fs.IntVar(&o.latencyDevices, "latency-devices", 10, "delivery phases: devices subscribed to the latency channel")
	fs.Float64Var(&o.latencyRate, "latency-rate", 500, "delivery phases: messages per second of the latency phase (open loop)")
	fs.DurationVar(&o.providerLatency, "provider-latency", 20*time.Millisecond, "delivery phases: the fake provider's answer latency of the second throughput phase")
	fs.IntVar(&o.deliverySenders, "delivery-clients", 16, "delivery phases: HTTP clients sending the messages")
	fs.StringVar(&o.deliveryProfile, "deliveryprofile", "", "write a CPU profile of the first run of each delivery phase to this file, the phase inserted before the extension (x.prof: x-0ms.prof, x-20ms.prof, x-fanout.prof, x-latency.prof)")
	fs.IntVar(&o.integThings, "integ-things", 100_000, "integrations phases: Things (type HOST, titled host-<i>) created before the Dynatrace phases")
	fs.IntVar(&o.amAlerts, "am-alerts", 100, "integrations phases: alerts per Alertmanager payload")
	fs.IntVar(&o.amClients, "am-clients", 1, "integrations phases: concurrent Alertmanager senders (at most -concurrency)")
	fs.StringVar(&o.integProfile, "integprofile", "", "write a CPU profile of the first run of each integrations phase to this file, the phase inserted before the extension (x.prof: x-base.prof, x-dt-id.prof, x-dt-info.prof, x-dt-name.prof, x-am.prof)")
	quick := fs.Bool("quick", false, "smoke mode: 3s phases, 500ms warm-up, 100,000 populated operations, 200 history requests, 5 messages per delivery throughput run, 20,000 integration Things (explicit flags still win)")
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
		if !set["ops"] {
			o.ops = 100_000
		}
		if !set["history-reqs"] {
			o.historyReqs = 200
		}
		if !set["delivery-msgs"] {
			o.deliveryMsgs = 5
		}
		if !set["integ-things"] {
			o.integThings, o.integQuickThings = 20_000, true
		}
	}
	o.p99Budget, o.ratioBudget = 20*time.Millisecond, 0.5
	o.foldRatioBudget, o.rebuildBudget = 0.5, 30*time.Second
	o.historyBudget, o.getBudget = 20*time.Millisecond, 5*time.Millisecond
	o.deliveryRateBudget, o.fanoutBudget, o.latencyBudget = 10_000, time.Second, 100*time.Millisecond
	o.dtRatioBudget, o.dtP99Budget, o.amP99Budget = 0.5, 30*time.Millisecond, 50*time.Millisecond
	for _, p := range strings.Split(*phaseList, ",") {
		switch strings.TrimSpace(p) {
		case "write":
			o.write = true
		case "projector":
			o.projector = true
		case "delivery":
			o.delivery = true
		case "integrations":
			o.integrations = true
		case "":
		default:
			return options{}, fmt.Errorf("-phases: unknown %q (want write, projector, delivery and/or integrations)", p)
		}
	}
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
	case o.client != clientLight && o.client != clientNetHTTP:
		return options{}, errors.New("-client must be light or nethttp")
	case !o.write && !o.projector && !o.delivery && !o.integrations:
		return options{}, errors.New("-phases names no table")
	case o.projector && o.ops < minOps:
		return options{}, fmt.Errorf("-ops must be at least %d", minOps)
	case o.projector && (o.historyOps < 1 || o.historyReqs < 1 || o.historyClients < 1):
		return options{}, errors.New("-history-ops, -history-reqs and -history-clients must be at least 1")
	case o.historyLimit < 1 || o.historyLimit > 1000:
		return options{}, errors.New("-history-limit must be within 1..1000")
	case o.getRate <= 0:
		return options{}, errors.New("-get-rate must be positive")
	case o.projector && o.target != "all":
		return options{}, errors.New("-phases projector needs -target all (the reads need the projector)")
	case o.deliveryProvider != providerAPNs && o.deliveryProvider != providerFCM:
		return options{}, errors.New("-provider must be apns or fcm")
	case o.deliveryDevices < 1 || o.deliveryMsgs < 1 || o.fanoutDevices < 1 || o.latencyDevices < 1 || o.deliverySenders < 1:
		return options{}, errors.New("-delivery-devices, -delivery-msgs, -fanout-devices, -latency-devices and -delivery-clients must be at least 1")
	case o.latencyRate <= 0 || o.providerLatency < 0:
		return options{}, errors.New("-latency-rate must be positive and -provider-latency not negative")
	case o.integrations && (o.integThings < 1 || o.amAlerts < 1 || o.amClients < 1):
		return options{}, errors.New("-integ-things, -am-alerts and -am-clients must be at least 1")
	case o.integrations && o.target != "all":
		return options{}, errors.New("-phases integrations needs -target all (the Dynatrace selectors read the projection)")
	}
	o.historyClients = min(o.historyClients, o.concurrency)
	o.amClients = min(o.amClients, o.concurrency)
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
// do: three timed phases per run (four with -diag), plus generous room for
// start-up, entity creation and shutdown; and the projector, delivery and
// integrations phases, each bounded on its own.
func (o options) hardLimit() time.Duration {
	var total time.Duration
	if o.write {
		perRun := 6*(o.duration+o.warmup+15*time.Second) + 2*settleLimit
		total += time.Duration(len(o.modes)) * (time.Duration(o.runs)*perRun + 2*time.Minute)
	}
	if o.projector {
		perRun := o.consumeLimit() + o.foldLimit() + 2*o.historyTimeLimit() + 2*(o.duration+o.warmup+15*time.Second) + settleLimit
		total += o.populateLimit() + time.Duration(o.runs)*perRun + 2*settleLimit + 3*time.Minute
	}
	if o.delivery {
		total += o.deliveryLimit()
	}
	if o.integrations {
		total += o.integLimit()
	}
	return total
}

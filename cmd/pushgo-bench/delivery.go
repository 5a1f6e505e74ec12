package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/broker/provision"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/ingest"
	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/pusher/sender/fcm"
	sdevices "github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// The delivery phases (issue 4's budget): the gateway's three services in
// this process, wired as the pushgo binary wires them (one broker
// connection, default pusher configuration: 512 lanes, 20,000 tasks in
// flight), with the real APNs (or FCM) sender pointed at a counting fake
// provider on loopback (fakeprovider.go). Delivery is durable per
// operation: the pusher's partitions acknowledge the operations they
// finished and recorded (file storage, the gateway's default sync policy).
//
//   - throughput at 0 ms and at -provider-latency: a burst of -delivery-msgs
//     messages to a channel of -delivery-devices devices; notifications/s is
//     the pushes the fake received over the time from the first request to
//     the last arrival.
//   - fan-out: one message to a channel of -fanout-devices devices; the time
//     from its 200 answer to the last arrival.
//   - latency: messages at -latency-rate per second (open loop) to a channel
//     of -latency-devices devices; accept-to-provider p50 and p99.
//
// Accept-to-provider is measured at the fake: arrival time minus the
// operation's accepted_at, which the push carries as "ingested_at" in whole
// milliseconds (so it reads up to 1 ms high).

func init() { registerPhase(30, func() phase { return &deliveryPhase{} }) }

// deliveryPhase is the delivery phases' flags, with the common options.
type deliveryPhase struct {
	*options
	gorushOptions                    // -gorush: gorush beside ours (gorush.go)
	deliveryProvider   string        // providerAPNs or providerFCM
	deliveryDevices    int           // devices of the throughput channel
	deliveryMsgs       int           // messages of each throughput run
	fanoutDevices      int           // devices of the fan-out channel
	latencyDevices     int           // devices of the latency channel
	latencyRate        float64       // messages per second of the latency phase
	latencyWindow      time.Duration // measured length of the latency phase
	latencyProvider    time.Duration // the fake provider's latency in the latency phase
	providerLatency    time.Duration // the fake provider's latency of the second throughput phase
	deliverySenders    int           // HTTP clients sending the messages
	deliveryProfile    string
	deliveryHeap       string        // heap profile after the latency rows
	deliveryAllocs     string        // allocations of the first latency row
	deliveryRateBudget float64       // notifications/s at providerLatency
	fanoutBudget       time.Duration // last push of the fan-out
	latencyBudget      time.Duration // p99 accept-to-provider
}

const (
	providerAPNs = "apns"
	providerFCM  = "fcm"
)

func (*deliveryPhase) name() string { return "delivery" }
func (*deliveryPhase) about() string {
	return "notifications/s, fan-out, accept-to-provider latency against a fake provider"
}

func (p *deliveryPhase) flags(fs *flagSet) {
	fs.StringVar(&p.deliveryProvider, "provider", providerAPNs, "delivery phases: the provider the devices use: apns (real APNs sender, fake APNs over TLS HTTP/2) or fcm (real FCM sender, fake FCM over HTTP/1.1)")
	fs.IntVar(&p.deliveryDevices, "delivery-devices", 10_000, "delivery phases: devices subscribed to the throughput channel")
	fs.IntVar(&p.deliveryMsgs, "delivery-msgs", 10, "delivery phases: messages sent in each throughput run (each pushed to every device)")
	fs.IntVar(&p.fanoutDevices, "fanout-devices", 10_000, "delivery phases: devices subscribed to the fan-out channel")
	fs.IntVar(&p.latencyDevices, "latency-devices", 10, "delivery phases: devices subscribed to the latency channel")
	fs.Float64Var(&p.latencyRate, "latency-rate", 500, "delivery phases: messages per second of the latency phase (open loop)")
	fs.DurationVar(&p.latencyWindow, "latency-duration", time.Minute, "delivery phases: measured length of the latency phase (issue 11's budget: p99 and no backlog growth over 60 s)")
	fs.quick("latency-duration", "10s")
	fs.DurationVar(&p.latencyProvider, "latency-provider-latency", 0, "delivery phases: the fake provider's answer latency in the latency phase (issue 11's budget: 0; a real APNs answers in about 20 ms)")
	fs.DurationVar(&p.providerLatency, "provider-latency", 20*time.Millisecond, "delivery phases: the fake provider's answer latency of the second throughput phase")
	fs.IntVar(&p.deliverySenders, "delivery-clients", 16, "delivery phases: HTTP clients sending the messages")
	fs.StringVar(&p.deliveryHeap, "deliveryheapprofile", "", "write a heap profile of the benchmark's process (the gateway's, its embedded broker's) to this file after the latency rows, after a collection: what is live, which every collection marks (the latency row's tail sits on the collection cycles)")
	fs.StringVar(&p.deliveryAllocs, "deliveryallocprofile", "", "write what the process allocated during the first latency row to this file (a heap profile's difference, after a collection at each end) and print whose allocations they were, per message accepted: the garbage whose collection cycles hold that row's tail")
	fs.StringVar(&p.deliveryProfile, "deliveryprofile", "", "write a CPU profile of the first run of each delivery phase to this file, the phase inserted before the extension (x.prof: x-0ms.prof, x-20ms.prof, x-fanout.prof, x-latency.prof)")
	fs.quick("delivery-msgs", "5")
	p.gorushFlags(fs)
}

func (p *deliveryPhase) setup(o *options) error {
	p.options = o
	switch {
	case p.deliveryProvider != providerAPNs && p.deliveryProvider != providerFCM:
		return errors.New("-provider must be apns or fcm")
	case p.deliveryDevices < 1 || p.deliveryMsgs < 1 || p.fanoutDevices < 1 || p.latencyDevices < 1 || p.deliverySenders < 1:
		return errors.New("-delivery-devices, -delivery-msgs, -fanout-devices, -latency-devices and -delivery-clients must be at least 1")
	case p.latencyRate <= 0 || p.providerLatency < 0 || p.latencyProvider < 0 || p.latencyWindow <= 0:
		return errors.New("-latency-rate and -latency-duration must be positive and -provider-latency not negative")
	}
	p.deliveryRateBudget, p.fanoutBudget, p.latencyBudget = 10_000, time.Second, 100*time.Millisecond
	return p.gorushSetup(p.deliveryProvider)
}

func (p *deliveryPhase) header() string {
	return fmt.Sprintf("delivery (%s; %d devices x %d messages at 0 and %s provider latency%s; fan-out to %d devices; %.0f messages/s to %d devices)",
		p.deliveryProvider, p.deliveryDevices, p.deliveryMsgs, fmtLatency(p.providerLatency), p.gorushHeader(), p.fanoutDevices, p.latencyRate, p.latencyDevices)
}

func (p *deliveryPhase) run(ctx context.Context) (table, error) {
	rep, err := benchDelivery(ctx, p)
	return &rep, err
}

// deliveryRow is one measured delivery phase (medians over -runs).
type deliveryRow struct {
	notifs   int64         // pushes received (latency phase: those accepted in the window)
	took     time.Duration // first request (fan-out: the 200 answer) to the last arrival
	rate     float64       // notifs / took
	steady   float64       // arrivals/s between the 10th and 90th percentile arrival
	p50, p99 time.Duration // accept-to-provider
	first    time.Duration // fan-out: 200 answer to the first arrival
	expand   time.Duration // fan-out: the partitions' time to schedule it, summed (pushgo_pusher_fanout_seconds)
	cpuPer   time.Duration // throughput: this process's CPU time per notification
	tailPer  time.Duration // throughput with -gorush: the same after the last push, until the process is quiet
	sent     int64         // messages accepted
	dups     int64         // deliveries received more than once (retries)
	late     int64         // latency phase: messages that waited for a free client
	// latency phase: the pusher's queues when the last message was sent:
	// operations not yet expanded, tasks not yet settled.
	opsBacklog, taskBacklog uint64
	errors                  int64
	errKinds                map[string]int
	cpu                     cpuUse
	rss0, rss1              int64 // throughput: this process's resident memory at the start and the end, bytes
	// throughput: the live heap after a collection at the start and the
	// end, bytes (the fake provider's record is in its own process).
	heap0, heap1 int64
	// latency phase, of one run: the tail's episodes and the gateway's
	// collection cycles beside it (latencytail.go, gctail.go).
	tailNotes []string
}

// deliveryReport is what the delivery phases measured.
type deliveryReport struct {
	o                      *deliveryPhase
	provider               string
	setup                  time.Duration
	pool                   int
	thr0, thrLat, fan, lat deliveryRow
	gorush                 *gorushRow // with -gorush: gorush at the provider latency
}

// deliveryWait bounds the wait for a phase's pushes to arrive.
const deliveryWait = 2 * time.Minute

// limit: per run, three bursts and the latency phase, each with its wait
// for the pushes; room for the set-up.
func (p *deliveryPhase) limit() time.Duration {
	perRun := 3*(deliveryWait+15*time.Second) + p.warmup + p.latencyWindow + deliveryWait
	return 3*time.Minute + time.Duration(p.runs)*perRun + p.gorushLimit(p.runs)
}

// deliveryEnv is the in-process gateway of the delivery phases.
type deliveryEnv struct {
	dir      string
	b        *broker.Embedded
	nc       *nats.Conn
	js       jetstream.JetStream
	proj     *projector.Projector
	push     *pusher.Pusher
	metrics  *prometheus.Registry
	svc      *ingest.Service
	srv      *http.Server
	ln       net.Listener
	served   chan error
	reg      *devices.Registry
	fake     *providerProc
	client   *http.Client
	light    *lightClient
	base     string
	password string
	keys     []string // the device pool
}

func benchDelivery(ctx context.Context, o *deliveryPhase) (rep deliveryReport, err error) {
	rep.o = o
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep.provider = o.deliveryProvider
	rep.pool = max(o.deliveryDevices, o.fanoutDevices, o.latencyDevices)
	fmt.Fprintf(os.Stderr, "== delivery phases: real %s sender against a fake %s on loopback; pool of %d devices\n",
		o.deliveryProvider, o.deliveryProvider, rep.pool)
	e, err := startDeliveryEnv(ctx, o, log)
	if err != nil {
		return rep, err
	}
	defer e.close()

	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := e.makeDevices(sctx, o, rep.pool); err != nil {
		return rep, fmt.Errorf("set-up: devices: %w", err)
	}
	made := time.Since(began)
	thrCh, err := e.channel(sctx, "bench-throughput", o.deliveryDevices)
	if err != nil {
		return rep, err
	}
	fanCh, err := e.channel(sctx, "bench-fanout", o.fanoutDevices)
	if err != nil {
		return rep, err
	}
	latCh, err := e.channel(sctx, "bench-latency", o.latencyDevices)
	if err != nil {
		return rep, err
	}
	// An operation reaches the devices subscribed strictly before its
	// accepted_at millisecond.
	time.Sleep(5 * time.Millisecond)
	rep.setup = time.Since(began)
	fmt.Fprintf(os.Stderr, "  set-up (not budgeted): %d devices registered with a %s route in %s; 3 channels subscribed (%d + %d + %d) in %s\n",
		rep.pool, o.deliveryProvider, made.Round(time.Millisecond), o.deliveryDevices, o.fanoutDevices, o.latencyDevices,
		(rep.setup - made).Round(time.Millisecond))

	thr := func(lat time.Duration) string {
		return fmt.Sprintf("@%s (%d dev x %d)", fmtLatency(lat), o.deliveryDevices, o.deliveryMsgs)
	}
	if rep.thr0, err = repeat(ctx, o.options, "delivery "+thr(0), func(run int) (deliveryRow, error) {
		return e.throughput(ctx, o, thrCh, 0, run)
	}); err != nil {
		return rep, err
	}
	if rep.thrLat, err = repeat(ctx, o.options, "delivery "+thr(o.providerLatency), func(run int) (deliveryRow, error) {
		return e.throughput(ctx, o, thrCh, o.providerLatency, run)
	}); err != nil {
		return rep, err
	}
	if o.gorushPath != "" {
		g, err := e.benchGorush(ctx, o)
		if err != nil {
			return rep, err
		}
		rep.gorush = &g
	}
	if rep.fan, err = repeat(ctx, o.options, fmt.Sprintf("fan-out %d devices", o.fanoutDevices), func(run int) (deliveryRow, error) {
		return e.fanout(ctx, o, fanCh, run)
	}); err != nil {
		return rep, err
	}
	if rep.lat, err = repeat(ctx, o.options, o.latencyRowName(), func(run int) (deliveryRow, error) {
		return e.latency(ctx, o, latCh, run)
	}); err != nil {
		return rep, err
	}
	if o.deliveryHeap != "" {
		if err := writeHeapProfile(o.deliveryHeap); err != nil {
			return rep, err
		}
	}
	if err := e.push.Err(); err != nil {
		return rep, fmt.Errorf("pusher: %w", err)
	}
	return rep, nil
}

// latencyRowName names the latency row: its rate, devices and, when not 0,
// the provider's latency.
func (p *deliveryPhase) latencyRowName() string {
	name := fmt.Sprintf("%.0f ops/s x %d dev", p.latencyRate, p.latencyDevices)
	if p.latencyProvider > 0 {
		name += " @" + fmtLatency(p.latencyProvider)
	}
	return name
}

func fmtLatency(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// progress prints one run of a delivery phase.
func (r deliveryRow) progress(_ *options, name string, run int) {
	fmt.Fprintf(os.Stderr, "  run %d  %-32s %7d notifs in %8s: %6.0f/s (steady %6.0f/s)  accept->provider p50 %s p99 %s",
		run+1, name, r.notifs, fmtSecs(r.took), r.rate, r.steady, fmtDur(r.p50), fmtDur(r.p99))
	if r.expand > 0 || r.first > 0 {
		fmt.Fprintf(os.Stderr, "  first push %s, scheduled in %s (summed over partitions)", fmtDur(r.first), fmtDur(r.expand))
	}
	if r.opsBacklog > 0 || r.taskBacklog > 0 {
		fmt.Fprintf(os.Stderr, "  backlog at the last message: %d operations not acknowledged (busiest partition), %d retry tasks", r.opsBacklog, r.taskBacklog)
	}
	if r.rss0 > 0 && r.rss1 > 0 {
		fmt.Fprintf(os.Stderr, "  rss %d -> %d MiB, live heap %d -> %d MiB", r.rss0>>20, r.rss1>>20, r.heap0>>20, r.heap1>>20)
	}
	fmt.Fprintf(os.Stderr, "  errors %d dups %d [cpu: us %.2f cores, fake provider %.2f, others %.2f of %d]\n",
		r.errors, r.dups, r.cpu.self, r.cpu.provider, r.cpu.others, numCPU())
	for k, v := range r.errKinds {
		fmt.Fprintf(os.Stderr, "         %d x %s\n", v, k)
	}
	for _, n := range r.tailNotes {
		if n != "" {
			fmt.Fprintf(os.Stderr, "         %s\n", n)
		}
	}
	if r.cpu.others > 0.25 {
		fmt.Fprintf(os.Stderr, "  warning: other processes used %.2f cores during this phase: the numbers above are disturbed\n", r.cpu.others)
	}
}

// profilePath inserts the phase key before path's extension ("" stays "").
func profilePath(path, key string) string {
	if path == "" {
		return ""
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + key + ext
}

func startDeliveryEnv(ctx context.Context, o *deliveryPhase, log *slog.Logger) (e *deliveryEnv, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e = &deliveryEnv{}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "pushgo-bench-delivery-*"); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cfg := gateway.Defaults()
	cfg.InboxPerDevice = o.inboxPerDevice()
	e.b, err = broker.Start(broker.Config{
		Dir: filepath.Join(e.dir, "jetstream"), Listen: "off", Sync: cfg.Sync,
		MaxStore: cfg.MaxStore, MaxMemory: cfg.MaxMemory, Logger: log.With("component", "nats"),
	})
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if e.nc, err = e.b.Connect(nats.MaxReconnects(-1)); err != nil {
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}
	if err := provision.Ensure(sctx, e.js, cfg.StreamOptions()); err != nil {
		return nil, err
	}
	if e.proj, err = projector.Start(sctx, e.nc, projector.Config{Dir: filepath.Join(e.dir, "projection"), Serve: true,
		Logger: log.With("component", "projector")}); err != nil {
		return nil, fmt.Errorf("start projector: %w", err)
	}

	if e.fake, err = startProviderProc(sctx); err != nil {
		return nil, err
	}
	key, err := p8()
	if err != nil {
		return nil, err
	}
	as, err := apns.New(apns.Options{Key: key, KeyID: "ABC123DEFG", TeamID: "TEAM123456", Topic: "dev.pushgo.bench",
		Endpoint: e.fake.apnsURL(), NewHTTPClient: e.fake.apnsClient})
	if err != nil {
		return nil, err
	}
	fs, err := fcm.New(fcm.Options{ProjectID: "pushgo-bench", TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bench"}),
		Endpoint: e.fake.fcmEndpoint()})
	if err != nil {
		return nil, err
	}
	if e.push, err = pusher.Start(sctx, e.nc, pusher.Config{
		Senders: map[payload.Provider]sender.Sender{payload.APNs: as, payload.FCM: fs}, Logger: log.With("component", "pusher"),
		Partitions: o.partitions,
	}); err != nil {
		return nil, fmt.Errorf("start pusher: %w", err)
	}
	e.metrics = prometheus.NewRegistry()
	for _, c := range e.push.Collectors() {
		if err := e.metrics.Register(c); err != nil {
			return nil, err
		}
	}
	// The fan-out consumer starts at new operations: it must exist before
	// the first message.
	if err := e.waitConsumers(sctx); err != nil {
		return nil, err
	}

	if e.svc, err = ingest.Start(sctx, e.nc, ingest.Config{Streams: cfg.StreamOptions(), AppendTimeout: cfg.AppendTimeout,
		Logger: log.With("component", "ingest")}); err != nil {
		return nil, fmt.Errorf("start ingest: %w", err)
	}
	if e.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	e.srv = &http.Server{Handler: e.svc.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	e.served = make(chan error, 1)
	go func() { e.served <- e.srv.Serve(e.ln) }()
	e.base = "http://" + e.ln.Addr().String()
	e.client = newHTTPClient(o.deliverySenders)
	e.light = newLightClient(e.ln.Addr().String(), o.deliverySenders)
	if e.reg, err = devices.Open(sctx, e.js, devices.Options{}); err != nil {
		return nil, err
	}
	e.password = "bench-" + ids.NewRandomID()[:16]
	return e, nil
}

// p8 is a fresh APNs auth key (.p8 contents); the fake checks no signature.
func p8() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func (e *deliveryEnv) waitConsumers(ctx context.Context) error {
	for {
		_, err1 := e.js.Consumer(ctx, streams.Ops, pusher.PartitionConsumerPrefix+"0")
		_, err2 := e.js.Consumer(ctx, streams.Deliveries, pusher.SendConsumer)
		if err1 == nil && err2 == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pusher consumers not created: %v, %v", err1, err2)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *deliveryEnv) close() {
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := e.srv.Shutdown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "  http shutdown:", err)
		}
		cancel()
		<-e.served
		e.srv = nil
	}
	if e.light != nil {
		e.light.close()
	}
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	if e.svc != nil {
		e.svc.Close()
		e.svc = nil
	}
	if e.push != nil {
		_ = e.push.Close()
		e.push = nil
	}
	if e.proj != nil {
		if err := e.proj.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "  projector close:", err)
		}
		e.proj = nil
	}
	if e.nc != nil {
		e.nc.Close()
		e.nc = nil
	}
	if e.b != nil {
		e.b.Shutdown()
		e.b = nil
	}
	if e.fake != nil {
		e.fake.close()
		e.fake = nil
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
		e.dir = ""
	}
}

// setupWorkers is the concurrency of the device set-up.
const setupWorkers = 64

// each runs f(i) for i in [0, n) on setupWorkers goroutines and returns the
// first error.
func each(ctx context.Context, n int, f func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(setupWorkers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// makeDevices registers n devices and binds each a push route of the
// chosen provider, directly in the registry (as /device/register and
// /channel/device do).
func (e *deliveryEnv) makeDevices(ctx context.Context, o *deliveryPhase, n int) error {
	platform, channelType := "ios", sdevices.ChannelTypeAPNs
	if o.deliveryProvider == providerFCM {
		platform, channelType = "android", sdevices.ChannelTypeFCM
	}
	e.keys = make([]string, n)
	return each(ctx, n, func(i int) error {
		now := time.Now()
		r, err := e.reg.Register(ctx, "", platform, now)
		if err != nil {
			return err
		}
		if _, err := e.reg.BindRoute(ctx, r.Device.Key, channelType, deviceToken(o.deliveryProvider, i), "", now); err != nil {
			return err
		}
		e.keys[i] = r.Device.Key
		return nil
	})
}

func deviceToken(provider string, i int) string {
	if provider == providerFCM {
		return fmt.Sprintf("bench-fcm-%08d:APA91bench", i)
	}
	return fmt.Sprintf("%064x", i+1)
}

// channel creates a channel over HTTP and subscribes the first n devices
// of the pool to it.
func (e *deliveryEnv) channel(ctx context.Context, name string, n int) (string, error) {
	b, err := post(ctx, e.client, e.base+"/channel/create", []byte(`{"channel_name":"`+name+`","password":"`+e.password+`"}`), true)
	if err != nil {
		return "", fmt.Errorf("create channel: %w", err)
	}
	id, err := dataField(b, "channel_id")
	if err != nil {
		return "", err
	}
	if err := each(ctx, n, func(i int) error {
		_, err := e.reg.Subscribe(ctx, e.keys[i], id, time.Now())
		return err
	}); err != nil {
		return "", fmt.Errorf("subscribe to %s: %w", name, err)
	}
	return id, nil
}

// messageBody appends a POST /message body: a plain alert.
func (e *deliveryEnv) messageBody(dst []byte, ch string, n uint64) []byte {
	return deliveryMessageBody(dst, ch, e.password, n)
}

// deliveryMessageBody appends the POST /message body of message n of the
// delivery phases to channel ch.
func deliveryMessageBody(dst []byte, ch, password string, n uint64) []byte {
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, ch...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, password...)
	dst = append(dst, `","title":"bench message `...)
	dst = strconv.AppendUint(dst, n, 10)
	dst = append(dst, `","body":"delivery benchmark: one alert to every subscribed device","severity":"normal"}`...)
	return dst
}

func (e *deliveryEnv) message(ctx context.Context, ch string, w *worker) error {
	w.buf = e.messageBody(w.buf[:0], ch, w.n)
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err := e.light.conn(w.id).post(octx, "/message", w.buf)
	return err
}

// throughput sends o.deliveryMsgs messages to ch as fast as
// o.deliverySenders clients can, with the fake answering after latency,
// and times them until the last push arrives. Run 0 is profiled with
// -deliveryprofile.
func (e *deliveryEnv) throughput(ctx context.Context, o *deliveryPhase, ch string, latency time.Duration, run int) (deliveryRow, error) {
	began := time.Now()
	a, err := e.fake.reset(ctx, latency, began.UnixMilli())
	if err != nil {
		return deliveryRow{}, err
	}
	stop, err := profileRun(run, profilePath(o.deliveryProfile, fmtLatency(latency)), "delivery @"+fmtLatency(latency))
	if err != nil {
		return deliveryRow{}, err
	}
	heap0 := liveHeap()
	fake0, cpu0, rss0 := e.fake.cpu(), sampleCPU(), residentBytes()
	// The clock starts with the first message: the reset, the profile's
	// start and liveHeap's forced collection before it are set-up (gorush's
	// clock, beside it, has none of them).
	start := time.Now()
	recs := make([]*recorder, o.deliverySenders)
	var next atomic.Int64
	var wg sync.WaitGroup
	for i, w := range newWorkers(o.deliverySenders) {
		recs[i] = newRecorder(o.deliveryMsgs/o.deliverySenders + 1)
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(o.deliveryMsgs) {
				if err := e.message(ctx, ch, w); err != nil {
					recs[i].fail(err)
				} else {
					recs[i].ok(0)
				}
				w.n++
			}
		})
	}
	wg.Wait()
	sent := summarize(recs, 0)
	werr := a.wait(ctx, sent.ops*int64(o.deliveryDevices))
	fake1, cpu1 := e.fake.cpu(), sampleCPU()
	stop()

	st, err := a.stats(ctx, 0)
	if err != nil {
		return deliveryRow{}, err
	}
	r := deliveryRow{notifs: st.n, steady: st.steady, dups: st.dups, sent: sent.ops,
		cpu:    cpuBetween(cpu0, cpu1).withProvider(fake1-fake0, cpu1.at.Sub(cpu0.at)),
		errors: sent.errors, errKinds: sent.errKinds, rss0: rss0, rss1: residentBytes()}
	r.heap0, r.heap1 = heap0, liveHeap()
	if st.n > 0 {
		r.took = st.last.Sub(start)
		r.rate = float64(st.n) / r.took.Seconds()
		r.cpuPer = (cpu1.self - cpu0.self) / time.Duration(st.n)
		if o.gorushPath != "" { // the side-by-side counts the work left after the last push
			r.tailPer = (settle(ctx).self - cpu1.self) / time.Duration(st.n)
		}
	}
	r.p50, r.p99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	r.account(werr, st)
	return r, nil
}

// fanout sends one message to ch and times it from the 200 answer to the
// last of its pushes.
func (e *deliveryEnv) fanout(ctx context.Context, o *deliveryPhase, ch string, run int) (deliveryRow, error) {
	a, err := e.fake.reset(ctx, 0, time.Now().UnixMilli())
	if err != nil {
		return deliveryRow{}, err
	}
	expand0, err := e.expandSeconds()
	if err != nil {
		return deliveryRow{}, err
	}
	stop, err := profileRun(run, profilePath(o.deliveryProfile, "fanout"), "fan-out")
	if err != nil {
		return deliveryRow{}, err
	}
	fake0, cpu0 := e.fake.cpu(), sampleCPU()
	w := newWorkers(1)[0]
	r := deliveryRow{errKinds: map[string]int{}}
	err = e.message(ctx, ch, w)
	answered := time.Now()
	var werr error
	if err != nil {
		r.errors++
		r.errKinds[err.Error()]++
	} else {
		r.sent = 1
		werr = a.wait(ctx, int64(o.fanoutDevices))
	}
	fake1, cpu1 := e.fake.cpu(), sampleCPU()
	r.cpu = cpuBetween(cpu0, cpu1).withProvider(fake1-fake0, cpu1.at.Sub(cpu0.at))
	stop()

	st, err := a.stats(ctx, 0)
	if err != nil {
		return deliveryRow{}, err
	}
	r.notifs, r.steady, r.dups = st.n, st.steady, st.dups
	if st.n > 0 {
		r.took, r.first = st.last.Sub(answered), st.first.Sub(answered)
		r.rate = float64(st.n) / r.took.Seconds()
	}
	r.p50, r.p99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	// The expansion is observed once its tasks are all acknowledged; give
	// the metric a moment if the pushes beat the fan-out's bookkeeping.
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		expand1, err := e.expandSeconds()
		if err != nil {
			return deliveryRow{}, err
		}
		if expand1 > expand0 || time.Now().After(deadline) {
			r.expand = expand1 - expand0
			break
		}
	}
	r.account(werr, st)
	return r, nil
}

// expandSeconds is the pusher's pushgo_pusher_fanout_seconds sum.
func (e *deliveryEnv) expandSeconds() (time.Duration, error) {
	mfs, err := e.metrics.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == "pushgo_pusher_fanout_seconds" && len(mf.GetMetric()) > 0 {
			return time.Duration(mf.GetMetric()[0].GetHistogram().GetSampleSum() * float64(time.Second)), nil
		}
	}
	return 0, nil
}

// latency sends messages to ch at o.latencyRate per second (open loop) and
// measures accept-to-provider of those accepted after the warm-up.
func (e *deliveryEnv) latency(ctx context.Context, o *deliveryPhase, ch string, run int) (deliveryRow, error) {
	a, err := e.fake.reset(ctx, o.latencyProvider, time.Now().UnixMilli())
	if err != nil {
		return deliveryRow{}, err
	}
	allocs, err := startAllocRecorder(runProfile(run, o.deliveryAllocs), "latency")
	if err != nil {
		return deliveryRow{}, err
	}
	stop, err := profileRun(run, profilePath(o.deliveryProfile, "latency"), "latency")
	if err != nil {
		return deliveryRow{}, err
	}
	// The messages go from a load process (loadproc.go), the pushes are
	// timed at the fake provider, in its own process.
	spec := loadSpec{Op: opDeliveryMessage, Addr: e.ln.Addr().String(), Client: clientLight, ChannelID: ch, Password: e.password}
	fake0, began := e.fake.cpu(), time.Now()
	reps, cpu, err := runLoads(ctx, nil, spec.open(o.deliverySenders, o.latencyRate, o.warmup, o.latencyWindow))
	if err != nil {
		stop()
		return deliveryRow{}, err
	}
	res := reps[0].result(cpu.withProvider(e.fake.cpu()-fake0, time.Since(began)))
	measureFrom := reps[0].Began.Add(o.warmup)
	opsBacklog, taskBacklog := e.backlog(ctx)
	werr := a.wait(ctx, reps[0].Succeeded*int64(o.latencyDevices))
	stop()
	allocs.stop(os.Stderr, o.latencyRate)

	st, err := a.stats(ctx, measureFrom.UnixMilli())
	if err != nil {
		return deliveryRow{}, err
	}
	r := deliveryRow{notifs: int64(len(st.lat)), took: o.latencyWindow, rate: float64(len(st.lat)) / o.latencyWindow.Seconds(), steady: st.steady,
		dups: st.dups, sent: res.ops, late: res.late, cpu: res.cpu, errors: res.errors, errKinds: res.errKinds}
	r.p50, r.p99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	r.opsBacklog, r.taskBacklog = opsBacklog, taskBacklog
	r.tailNotes = []string{episodesOf(st.tail).String(), gcTailOf(gcCycles(), st.tail, measureFrom, measureFrom.Add(o.latencyWindow)).String()}
	if res.skipped > 0 {
		r.errors += res.skipped
		r.errKinds[fmt.Sprintf("messages not sent: the %.0f/s schedule fell more than a second behind", o.latencyRate)] += int(res.skipped)
	}
	r.account(werr, st)
	return r, nil
}

// backlog reads the pusher's queues: operations its busiest partition has
// not acknowledged, and retry tasks not settled.
func (e *deliveryEnv) backlog(ctx context.Context) (ops, tasks uint64) {
	info := func(stream, name string) uint64 {
		c, err := e.js.Consumer(ctx, stream, name)
		if err != nil {
			return 0
		}
		i, err := c.Info(ctx)
		if err != nil {
			return 0
		}
		return i.NumPending + uint64(i.NumAckPending)
	}
	for i := range pusher.MaxPartitions {
		ops = max(ops, info(streams.Ops, fmt.Sprintf("%s%d", pusher.PartitionConsumerPrefix, i)))
	}
	return ops, info(streams.Deliveries, pusher.SendConsumer)
}

// account counts the pushes that did not arrive, and requests the fake
// could not read, as failures.
func (r *deliveryRow) account(werr error, st arrivalStats) {
	if r.errKinds == nil {
		r.errKinds = map[string]int{}
	}
	if werr != nil {
		r.errors++
		r.errKinds[werr.Error()]++
	}
	if st.bad > 0 {
		r.errors += st.bad
		r.errKinds["push without delivery_id or ingested_at"] += int(st.bad)
	}
}

// columns: medians; errors, duplicates and late messages summed; the most
// disturbed run's CPU.
func (deliveryRow) columns() []column[deliveryRow] {
	return []column[deliveryRow]{
		mid(func(r *deliveryRow) *int64 { return &r.notifs }),
		mid(func(r *deliveryRow) *int64 { return &r.sent }),
		mid(func(r *deliveryRow) *time.Duration { return &r.took }),
		mid(func(r *deliveryRow) *float64 { return &r.rate }),
		mid(func(r *deliveryRow) *float64 { return &r.steady }),
		mid(func(r *deliveryRow) *time.Duration { return &r.p50 }),
		mid(func(r *deliveryRow) *time.Duration { return &r.p99 }),
		mid(func(r *deliveryRow) *time.Duration { return &r.first }),
		mid(func(r *deliveryRow) *time.Duration { return &r.expand }),
		mid(func(r *deliveryRow) *time.Duration { return &r.cpuPer }),
		mid(func(r *deliveryRow) *time.Duration { return &r.tailPer }),
		mid(func(r *deliveryRow) *uint64 { return &r.opsBacklog }),
		mid(func(r *deliveryRow) *uint64 { return &r.taskBacklog }),
		sum(func(r *deliveryRow) *int64 { return &r.errors }),
		sum(func(r *deliveryRow) *int64 { return &r.dups }),
		sum(func(r *deliveryRow) *int64 { return &r.late }),
		busiest(func(r *deliveryRow) *cpuUse { return &r.cpu }),
		kinds(func(r *deliveryRow) *map[string]int { return &r.errKinds }),
	}
}

// liveHeap is the heap in use right after a collection: what the process
// holds, without the garbage GOGC lets accumulate.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// residentBytes is this process's resident memory (VmRSS), 0 if unknown.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
// provider on loopback (fakeprovider.go). Every notification goes through a
// durable task on the PUSHGO_DELIVERIES work queue (file storage, the
// gateway's default sync policy).
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

// deliveryRow is one measured delivery phase (medians over -runs).
type deliveryRow struct {
	notifs   int64         // pushes received (latency phase: those accepted in the window)
	took     time.Duration // first request (fan-out: the 200 answer) to the last arrival
	rate     float64       // notifs / took
	steady   float64       // arrivals/s between the 10th and 90th percentile arrival
	p50, p99 time.Duration // accept-to-provider
	first    time.Duration // fan-out: 200 answer to the first arrival
	expand   time.Duration // fan-out: the pusher's expansion (tasks published), its own metric
	sent     int64         // messages accepted
	dups     int64         // deliveries received more than once (retries)
	late     int64         // latency phase: messages that waited for a free client
	// latency phase: the pusher's queues when the last message was sent:
	// operations not yet expanded, tasks not yet settled.
	opsBacklog, taskBacklog uint64
	errors                  int64
	errKinds                map[string]int
	cpu                     cpuUse
}

// deliveryReport is what the delivery phases measured.
type deliveryReport struct {
	provider               string
	setup                  time.Duration
	pool                   int
	thr0, thrLat, fan, lat deliveryRow
}

// deliveryWait bounds the wait for a phase's pushes to arrive.
const deliveryWait = 2 * time.Minute

func (o options) deliveryLimit() time.Duration {
	perRun := 3*(deliveryWait+15*time.Second) + o.warmup + o.duration + deliveryWait
	return 3*time.Minute + time.Duration(o.runs)*perRun
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
	fake     *fakeProvider
	client   *http.Client
	light    *lightClient
	base     string
	password string
	keys     []string // the device pool
}

func benchDelivery(ctx context.Context, o options) (rep deliveryReport, err error) {
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
	if rep.thr0, err = repeatDelivery(ctx, o, "delivery "+thr(0), func(profile string) (deliveryRow, error) {
		return e.throughput(ctx, o, thrCh, 0, profile)
	}, "0ms"); err != nil {
		return rep, err
	}
	if rep.thrLat, err = repeatDelivery(ctx, o, "delivery "+thr(o.providerLatency), func(profile string) (deliveryRow, error) {
		return e.throughput(ctx, o, thrCh, o.providerLatency, profile)
	}, fmtLatency(o.providerLatency)); err != nil {
		return rep, err
	}
	if rep.fan, err = repeatDelivery(ctx, o, fmt.Sprintf("fan-out %d devices", o.fanoutDevices), func(profile string) (deliveryRow, error) {
		return e.fanout(ctx, o, fanCh, profile)
	}, "fanout"); err != nil {
		return rep, err
	}
	if rep.lat, err = repeatDelivery(ctx, o, fmt.Sprintf("%.0f ops/s x %d dev", o.latencyRate, o.latencyDevices), func(profile string) (deliveryRow, error) {
		return e.latency(ctx, o, latCh, profile)
	}, "latency"); err != nil {
		return rep, err
	}
	if err := e.push.Err(); err != nil {
		return rep, fmt.Errorf("pusher: %w", err)
	}
	return rep, nil
}

func fmtLatency(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// repeatDelivery measures o.runs times and keeps the medians; the first run
// is profiled when -deliveryprofile is set.
func repeatDelivery(ctx context.Context, o options, name string, measure func(profile string) (deliveryRow, error), key string) (deliveryRow, error) {
	var rows []deliveryRow
	for i := range o.runs {
		profile := ""
		if i == 0 && o.deliveryProfile != "" {
			profile = profilePath(o.deliveryProfile, key)
		}
		r, err := measure(profile)
		if err != nil {
			return deliveryRow{}, fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(os.Stderr, "  run %d  %-32s %7d notifs in %8s: %6.0f/s (steady %6.0f/s)  accept->provider p50 %s p99 %s",
			i+1, name, r.notifs, fmtSecs(r.took), r.rate, r.steady, fmtDur(r.p50), fmtDur(r.p99))
		if r.expand > 0 || r.first > 0 {
			fmt.Fprintf(os.Stderr, "  first push %s, tasks published in %s", fmtDur(r.first), fmtDur(r.expand))
		}
		if r.opsBacklog > 0 || r.taskBacklog > 0 {
			fmt.Fprintf(os.Stderr, "  backlog at the last message: %d operations to expand, %d tasks to send", r.opsBacklog, r.taskBacklog)
		}
		fmt.Fprintf(os.Stderr, "  errors %d dups %d [cpu: us %.2f cores, others %.2f of %d]\n", r.errors, r.dups, r.cpu.self, r.cpu.others, numCPU())
		for k, v := range r.errKinds {
			fmt.Fprintf(os.Stderr, "         %d x %s\n", v, k)
		}
		if r.cpu.others > 0.25 {
			fmt.Fprintf(os.Stderr, "  warning: other processes used %.2f cores during this phase: the numbers above are disturbed\n", r.cpu.others)
		}
		rows = append(rows, r)
		if err := ctx.Err(); err != nil {
			return deliveryRow{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return medianRow(rows), nil
}

// profilePath inserts the phase key before path's extension.
func profilePath(path, key string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + key + ext
}

func startDeliveryEnv(ctx context.Context, o options, log *slog.Logger) (e *deliveryEnv, err error) {
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

	e.fake = newFakeProvider()
	key, err := p8()
	if err != nil {
		return nil, err
	}
	as, err := apns.New(apns.Options{Key: key, KeyID: "ABC123DEFG", TeamID: "TEAM123456", Topic: "dev.pushgo.bench",
		Endpoint: e.fake.apnsURL(), HTTPClient: e.fake.apnsClient()})
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
	e.password = "bench-" + ids.NewOpID()[:16]
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
		_, err1 := e.js.Consumer(ctx, streams.Ops, pusher.FanoutConsumer)
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
func (e *deliveryEnv) makeDevices(ctx context.Context, o options, n int) error {
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
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, ch...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, e.password...)
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

// profiled starts a CPU profile when path is set.
func profiled(path, what string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	return startCPUProfile(path, what)
}

// throughput sends o.deliveryMsgs messages to ch as fast as
// o.deliverySenders clients can, with the fake answering after latency,
// and times them until the last push arrives.
func (e *deliveryEnv) throughput(ctx context.Context, o options, ch string, latency time.Duration, profile string) (deliveryRow, error) {
	began := time.Now()
	a := e.fake.reset(latency, began.UnixMilli())
	stop, err := profiled(profile, "delivery @"+fmtLatency(latency))
	if err != nil {
		return deliveryRow{}, err
	}
	cpu0 := sampleCPU()
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
	werr := waitArrivals(ctx, a, sent.ops*int64(o.deliveryDevices))
	cpu := cpuBetween(cpu0, sampleCPU())
	stop()

	st := a.stats(0)
	r := deliveryRow{notifs: st.n, steady: st.steady, dups: st.dups, sent: sent.ops, cpu: cpu,
		errors: sent.errors, errKinds: sent.errKinds}
	if st.n > 0 {
		r.took = st.last.Sub(began)
		r.rate = float64(st.n) / r.took.Seconds()
	}
	r.p50, r.p99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	r.account(werr, st)
	return r, nil
}

// fanout sends one message to ch and times it from the 200 answer to the
// last of its pushes.
func (e *deliveryEnv) fanout(ctx context.Context, o options, ch string, profile string) (deliveryRow, error) {
	a := e.fake.reset(0, time.Now().UnixMilli())
	expand0, err := e.expandSeconds()
	if err != nil {
		return deliveryRow{}, err
	}
	stop, err := profiled(profile, "fan-out")
	if err != nil {
		return deliveryRow{}, err
	}
	cpu0 := sampleCPU()
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
		werr = waitArrivals(ctx, a, int64(o.fanoutDevices))
	}
	r.cpu = cpuBetween(cpu0, sampleCPU())
	stop()

	st := a.stats(0)
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
func (e *deliveryEnv) latency(ctx context.Context, o options, ch string, profile string) (deliveryRow, error) {
	a := e.fake.reset(0, time.Now().UnixMilli())
	stop, err := profiled(profile, "latency")
	if err != nil {
		return deliveryRow{}, err
	}
	var ok atomic.Int64
	measureFrom := time.Now().Add(o.warmup)
	res := openLoop(ctx, o.deliverySenders, o.latencyRate, o.warmup, o.duration, func(ctx context.Context, w *worker) error {
		err := e.message(ctx, ch, w)
		if err == nil {
			ok.Add(1)
		}
		return err
	})
	opsBacklog, taskBacklog := e.backlog(ctx)
	werr := waitArrivals(ctx, a, ok.Load()*int64(o.latencyDevices))
	stop()

	st := a.stats(measureFrom.UnixMilli())
	r := deliveryRow{notifs: int64(len(st.lat)), took: o.duration, rate: float64(len(st.lat)) / o.duration.Seconds(), steady: st.steady,
		dups: st.dups, sent: res.ops, late: res.late, cpu: res.cpu, errors: res.errors, errKinds: res.errKinds}
	r.p50, r.p99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	r.opsBacklog, r.taskBacklog = opsBacklog, taskBacklog
	if res.skipped > 0 {
		r.errors += res.skipped
		r.errKinds[fmt.Sprintf("messages not sent: the %.0f/s schedule fell more than a second behind", o.latencyRate)] += int(res.skipped)
	}
	r.account(werr, st)
	return r, nil
}

// backlog reads the pusher's two queues: operations its fan-out consumer
// has not acknowledged, and tasks its sender consumer has not settled.
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
	return info(streams.Ops, pusher.FanoutConsumer), info(streams.Deliveries, pusher.SendConsumer)
}

// waitArrivals waits until a has want distinct pushes, or deliveryWait.
func waitArrivals(ctx context.Context, a *arrivals, want int64) error {
	ctx, cancel := context.WithTimeout(ctx, deliveryWait)
	defer cancel()
	for a.n.Load() < want {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d notifications not received within %s", want-a.n.Load(), want, deliveryWait)
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
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

// medianRow combines runs column by column (medians; errors, duplicates
// and late messages summed; the most disturbed run's CPU).
func medianRow(rs []deliveryRow) deliveryRow {
	if len(rs) == 1 {
		return rs[0]
	}
	out := deliveryRow{errKinds: map[string]int{}}
	col := func(f func(deliveryRow) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		mid := len(xs) / 2
		if len(xs)%2 == 1 {
			return xs[mid]
		}
		return (xs[mid-1] + xs[mid]) / 2
	}
	dur := func(f func(deliveryRow) time.Duration) time.Duration {
		return time.Duration(col(func(r deliveryRow) float64 { return float64(f(r)) }))
	}
	out.notifs = int64(col(func(r deliveryRow) float64 { return float64(r.notifs) }))
	out.sent = int64(col(func(r deliveryRow) float64 { return float64(r.sent) }))
	out.took = dur(func(r deliveryRow) time.Duration { return r.took })
	out.rate = col(func(r deliveryRow) float64 { return r.rate })
	out.steady = col(func(r deliveryRow) float64 { return r.steady })
	out.p50 = dur(func(r deliveryRow) time.Duration { return r.p50 })
	out.p99 = dur(func(r deliveryRow) time.Duration { return r.p99 })
	out.first = dur(func(r deliveryRow) time.Duration { return r.first })
	out.expand = dur(func(r deliveryRow) time.Duration { return r.expand })
	out.opsBacklog = uint64(col(func(r deliveryRow) float64 { return float64(r.opsBacklog) }))
	out.taskBacklog = uint64(col(func(r deliveryRow) float64 { return float64(r.taskBacklog) }))
	for _, r := range rs {
		out.errors += r.errors
		out.dups += r.dups
		out.late += r.late
		if r.cpu.others >= out.cpu.others {
			out.cpu = r.cpu
		}
		for k, v := range r.errKinds {
			out.errKinds[k] += v
		}
	}
	return out
}

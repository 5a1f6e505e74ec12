package pusher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/broker/kvview"
	schemadevices "github.com/pushgo/gateway/schemas/devices"

	"golang.org/x/sync/errgroup"

	"github.com/pushgo/gateway/broker/consume"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/pusher/audience"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/schemas/streams"
)

// Config configures a Pusher. Zero fields take the documented defaults.
type Config struct {
	// Senders by provider. A provider without a sender is reported at
	// start, and its deliveries fail visibly with a not_configured receipt.
	Senders map[payload.Provider]sender.Sender
	// Policy is the per-device retry policy (default sender.DefaultPolicy).
	Policy sender.Policy
	// Lanes is the number of concurrent sends (the workers of the
	// partitions, and the lanes of the retry queue; one device's sends are
	// handed to the provider one at a time, in order, and at most
	// maxDeviceInFlight of them are unanswered). Default 512.
	Lanes int
	// MaxInFlight bounds the deliveries scheduled and not yet ended in
	// this process (an operation is admitted while fewer are; one larger
	// than the bound is admitted alone), and the retry tasks taken.
	// Default 20,000.
	MaxInFlight int
	// Partitions is how many delivery partitions devices are hashed to
	// (see PartitionOf); one replica at a time sends a partition's
	// deliveries. The count is the deployment's, recorded in its
	// partition consumers: one that differs from the recorded count
	// changes it, and only while no replica runs the partitions (Start
	// waits for them, then refuses; partitioncount.go). At most
	// MaxPartitions. 0: the count the deployment's partition consumers
	// record (an existing deployment keeps its count), else NewPartitions.
	//
	// Every partition is handed every operation by the broker, whatever
	// its share of the audience: each one costs about a tenth of a
	// single node's write path (PUSHGO_OPS delivered once more, parsed and
	// passed; make bench, 2 December: 1 partition against 2, three
	// alternated pairs, 199-209 µs of CPU per write against 225-244). So
	// the default is small; set it to at least the pusher replicas a
	// deployment will run (a replica without a partition is a standby).
	Partitions int
	// NewPartitions is the partition count a pusher left to choose
	// (Partitions 0) gives a new deployment, one without partition
	// consumers; it never changes an existing deployment's count. At most
	// MaxPartitions; 0: DefaultPartitions. A process that runs every
	// service sets it to 1 (SingleNodePartitions): its one pusher owns
	// every partition anyway.
	NewPartitions int
	// PartitionWindow is how many operations a partition takes before the
	// oldest is finished (the consumer's MaxAckPending): how far its fast devices may run ahead of its slowest, and so what a crash can send again. Default 256.
	PartitionWindow int
	// Failover is how long a partition's owner may stop pulling before
	// the broker pins another replica (the consumer's PinnedTTL): the
	// longest a dead replica's devices wait. Default 6 s, at least 3 s.
	Failover time.Duration
	// BalanceInterval is how often a replica compares the partitions it
	// owns with its share (ceil(partitions / live replicas)) and hands one
	// over when it has more. Default 10 s (jittered).
	BalanceInterval time.Duration
	// SendTimeout bounds one provider call, SDK retries included.
	// Default 10s.
	SendTimeout time.Duration
	// RetryAckWait is the retry queue's ack wait: how long a retry task
	// taken by a replica that stopped answering (killed) waits before
	// another replica takes it. A replica keeps the tasks it holds alive
	// every third of it, however long they wait in their lanes. Default
	// SendTimeout + 20s.
	RetryAckWait time.Duration
	// QuietThingUpdates lists the channels whose thing updates go as
	// background pushes instead of PushGo's alerts; "*" means every
	// channel. ThingUpdateAlerts lists channels exempted from it (alerts
	// win), so "quiet everywhere but these" can be said.
	QuietThingUpdates []string
	ThingUpdateAlerts []string
	// PublicBaseURL, when set, is sent as base_url in every push: where the
	// Apple app pulls an oversized item from and acks a direct push at (as
	// PushGo's PUSHGO_PUBLIC_BASE_URL). An absolute http(s) URL.
	PublicBaseURL string
	Now           func() time.Time
	Logger        *slog.Logger
}

func (c *Config) defaults() {
	c.Partitions = max(c.Partitions, 0) // 0: decided in openPartitions
	if c.NewPartitions <= 0 {
		c.NewPartitions = DefaultPartitions
	}
	if c.Lanes <= 0 {
		c.Lanes = 512
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 20_000
	}
	if c.PartitionWindow <= 0 {
		c.PartitionWindow = 256
	}
	if c.Failover <= 0 {
		c.Failover = 6 * time.Second
	}
	if c.BalanceInterval <= 0 {
		c.BalanceInterval = 10 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.RetryAckWait <= 0 {
		c.RetryAckWait = c.SendTimeout + 20*time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// CheckPublicBaseURL rejects a public base URL the apps could not use:
// base_url must be an absolute http(s) URL (the Apple app validates it as a
// server URL and ignores it otherwise), short enough to leave a wake-up
// room. The gateway checks PUSHGO_PUBLIC_BASE_URL with it before anything
// starts; Start checks Config.PublicBaseURL again.
func CheckPublicBaseURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || len(u) > 512 {
		return errors.New("want an absolute http(s) URL of at most 512 bytes, such as https://push.example.com")
	}
	return nil
}

// publicBaseURLCaveat says what of a valid public base URL the PushGo apps
// will not use, "" when nothing. The Apple app takes a server URL only over
// https (http on loopback only under its test automation: AppConstants.swift
// validatedServerURL), so over http it acks no direct push and pulls no
// wake-up, and files every push again at its next full sync; the Android
// app keeps only https://host[:port] of a gateway's address, http on
// loopback only, and drops any path (UrlValidators.kt
// normalizeGatewayBaseUrl), so a gateway under a path prefix is out of its
// reach. Both hold for a test gateway on this machine, which is not warned
// of.
func publicBaseURLCaveat(u string) string {
	p, err := url.Parse(u)
	if u == "" || err != nil || isLoopbackHost(p.Hostname()) {
		return ""
	}
	var caveats []string
	if p.Scheme == "http" {
		caveats = append(caveats, "is plain http: the PushGo apps use a gateway only over https, so the Apple app acknowledges no push "+
			"(each comes back at its next full sync) and pulls no wake-up; serve the gateway over TLS and set its https URL")
	}
	if strings.Trim(p.Path, "/") != "" {
		caveats = append(caveats, "has a path: the Android app keeps only https://host[:port] of a gateway's address, "+
			"so a gateway under a path prefix is out of its reach; serve it at the root of a host")
	}
	return strings.Join(caveats, "; and it ")
}

// isLoopbackHost reports whether host names this machine, as both apps'
// loopback exceptions do (Android's list includes its emulator's 10.0.2.2).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") || host == "10.0.2.2" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Pusher runs the delivery partitions, their workers and the retry queue.
// The caller MUST call Close.
type Pusher struct {
	cfg       Config
	log       *slog.Logger
	js        jetstream.JetStream
	devices   *devices.Registry
	routes    *kvview.Map[schemadevices.Device] // the devices bucket in memory
	audience  *audience.Audience
	fresh     *freshness
	senders   map[payload.Provider]sender.Sender
	ops       *opCache
	opsStream jetstream.Stream
	inbox     inbox
	floors    *leaderread.Bucket // the partitions' floors' record (floors.go)
	metrics   *metrics
	now       func() time.Time
	sched     *scheduler
	window    *window
	summaries *summaries
	// floorMoved: a partition's floor passed an operation, so ackFloors
	// has something to acknowledge (capacity one).
	floorMoved chan struct{}

	parts    []*partition
	sendLoop *consume.Loop // the retry queue
	lanes    []*lane       // the retry queue's: one device's tasks go through one lane
	laneSeed maphash.Seed
	laneWG   sync.WaitGroup // retry lanes and receipt waits
	// draining is set as the pusher stops (drain): the lanes start no
	// task, and a hand-over ending meanwhile leaves its partition
	// releasing. retrying counts the tasks started and not yet settled
	// (their sends, their outcome receipts), which drain lets finish.
	draining atomic.Bool
	retrying atomic.Int64

	cancel     context.CancelFunc // stops every loop
	stopTaking context.CancelFunc // stops the partitions taking operations
	done       chan struct{}      // closed when the loops have ended
	errMu      sync.Mutex
	err        error

	closeOnce sync.Once
	failed    atomic.Bool // fail was called

	backlog atomic.Uint64 // retry tasks pending or in flight, sampled
	held    heldTasks     // retry tasks taken and not settled (keepAlive)
}

// Start binds the streams and buckets (which provision.Ensure created),
// settles the partition count with the deployment's partition consumers
// and creates those missing (partitioncount.go), and starts the loops. A
// Config.Partitions that would change the deployment's count while other
// replicas run makes it wait for them up to Config.Failover and 2 s, then
// fail.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Pusher, error) {
	cfg.defaults()
	if err := CheckPublicBaseURL(cfg.PublicBaseURL); err != nil {
		return nil, fmt.Errorf("pusher: public base URL %q: %w", cfg.PublicBaseURL, err)
	}
	if cfg.Partitions > MaxPartitions || cfg.NewPartitions > MaxPartitions {
		return nil, fmt.Errorf("pusher: %d partitions (%d for a new deployment): at most %d", cfg.Partitions, cfg.NewPartitions, MaxPartitions)
	}
	if cfg.Failover < 3*time.Second {
		return nil, fmt.Errorf("pusher: failover %s: at least 3s (a pinned replica pulls again every second)", cfg.Failover)
	}
	// An unanswered asynchronous publish (an inbox item in flight when its
	// stream's leader died) fails after inboxAnswerWait instead of holding
	// a place of the 4,096 until the connection reconnects.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(inboxAnswerWait))
	if err != nil {
		return nil, err
	}
	opsStream, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		return nil, fmt.Errorf("pusher: stream %s: %w", streams.Ops, err)
	}
	reg, err := devices.Open(ctx, js, devices.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("pusher: devices: %w", err)
	}
	floors, err := leaderread.OpenBucket(ctx, js, streams.PartitionFloorsBucket)
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("pusher: %w", err)
	}
	p := &Pusher{cfg: cfg, log: cfg.Logger, js: js, devices: reg, senders: cfg.Senders, ops: newOpCache(leaderread.New(js, opsStream), 4096), opsStream: opsStream,
		floors:  floors,
		metrics: newMetrics(), now: cfg.Now, sched: newScheduler(), window: newWindow(cfg.MaxInFlight), floorMoved: make(chan struct{}, 1)}
	p.inbox = newInbox(js, p.metrics, cfg.Logger)
	p.summaries = newSummaries(p)
	// Who an operation goes to, and each device's route, are read from
	// memory kept current by watches: no broker round trip per push.
	if p.routes, err = kvview.OpenMap(ctx, js, streams.DevicesBucket, devices.Decode, kvview.Options{Logger: cfg.Logger}); err != nil {
		p.closeRegistries()
		return nil, fmt.Errorf("pusher: device routes: %w", err)
	}
	if p.audience, err = audience.Open(ctx, js, cfg.Logger); err != nil {
		p.closeRegistries()
		return nil, fmt.Errorf("pusher: audience: %w", err)
	}
	p.fresh = &freshness{sync: func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return p.audience.Sync(gctx) })
		g.Go(func() error { return p.routes.Watch().Sync(gctx) })
		return g.Wait()
	}}
	for _, prov := range []payload.Provider{payload.APNs, payload.FCM} {
		if cfg.Senders[prov] == nil {
			cfg.Logger.Warn("pusher: provider not configured; its deliveries will fail with not_configured receipts", "provider", prov)
		}
	}
	if cfg.Senders[payload.APNs] != nil && cfg.PublicBaseURL == "" {
		// The Apple app acks a direct push with base_url and
		// provider_device_key; without base_url it acks none, and every
		// push stays in its device's inbox until the app's next full pull
		// files it again.
		cfg.Logger.Warn("pusher: PUSHGO_PUBLIC_BASE_URL is not set: the Apple app cannot acknowledge a push without it, " +
			"so every push stays in its device's inbox and the app files it again at its next full sync (a read message shows unread); " +
			"set it to this gateway's public URL")
	}
	if caveat := publicBaseURLCaveat(cfg.PublicBaseURL); caveat != "" {
		cfg.Logger.Warn("pusher: PUSHGO_PUBLIC_BASE_URL "+caveat, "url", cfg.PublicBaseURL)
	}
	if err := p.openPartitions(ctx); err != nil {
		p.closeRegistries()
		return nil, err
	}
	p.laneSeed = maphash.MakeSeed()
	if p.sendLoop, err = consume.New(js, consume.Config{Stream: streams.Deliveries, Consumer: p.sendConsumer(),
		Handler: p.toLane, PullMaxMessages: min(cfg.MaxInFlight, 2000), Logger: cfg.Logger}); err != nil {
		p.closeRegistries()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	tctx, stopTaking := context.WithCancel(rctx)
	p.cancel, p.stopTaking, p.done = cancel, stopTaking, make(chan struct{})
	var g errgroup.Group
	run := func(name string, loop func(context.Context) error, taking ...bool) {
		ctx := rctx
		if len(taking) > 0 {
			ctx = tctx
		}
		g.Go(func() error {
			err := loop(ctx)
			if err != nil && rctx.Err() == nil {
				p.log.Error("pusher: loop stopped for good", "loop", name, "err", err)
				p.errMu.Lock()
				p.err = errors.Join(p.err, fmt.Errorf("%s: %w", name, err))
				p.errMu.Unlock()
				cancel() // one loop that cannot go on stops the service
				return err
			}
			return nil
		})
	}
	for _, pt := range p.parts {
		run(pt.name, pt.loop.Run, true)
		run(pt.name+" intake", func(ctx context.Context) error { pt.runIntake(ctx); return nil }, true)
	}
	run("workers", func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, p.sched.close)
		defer stop()
		p.sched.runWorkers(ctx, cfg.Lanes, p.deliver)
		return nil
	})
	run("acks", p.ackFloors)
	run("balance", p.balance)
	run("summaries", p.summaries.run)
	run("retry", p.send)
	run("retry keep-alive", p.keepAlive)
	run("inbox answers", p.inbox.runAnswers)
	run("inbox retries", p.inbox.runRetries)
	run("backlog", p.sampleBacklog)
	go func() {
		_ = g.Wait()
		close(p.done)
	}()
	return p, nil
}

// openPartitions settles the partition count with the deployment's
// partition consumers (settlePartitions: every replica runs the count
// they record) and builds the partition loops. A partition consumer keeps
// where it is (its start cannot change); one created now starts after the
// lowest ack floor of those that exist (or of the fan-out consumer of an
// older pusher), so an operation appended while partitions were added or
// the pusher upgraded is not skipped; with none it starts at new
// operations.
func (p *Pusher) openPartitions(ctx context.Context) error {
	have, start, err := p.settlePartitions(ctx)
	if err != nil {
		return err
	}
	expiry := time.Second
	for i := range p.cfg.Partitions {
		pt := &partition{p: p, n: i, name: fmt.Sprintf("%s%d", PartitionConsumerPrefix, i),
			intake: make(chan intakeItem, 2*p.cfg.PartitionWindow+256)}
		cfg := p.partitionConsumer(i, start)
		if info := have[pt.name]; info != nil {
			cfg = p.partitionConsumer(i, 0)
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartSeq, info.Config.OptStartTime
		}
		if pt.loop, err = consume.New(p.js, consume.Config{Stream: streams.Ops, Consumer: cfg,
			// Created again only while the deployment's count is still
			// this replica's: a replica that changed it deleted this
			// consumer, and one made again here would record the old
			// count and start from this replica's floors.
			Resume: func(lastAcked uint64) (jetstream.ConsumerConfig, error) {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := p.checkPartitions(cctx); err != nil {
					return jetstream.ConsumerConfig{}, err
				}
				return p.partitionConsumer(i, p.resumeAt(i, lastAcked, start)), nil
			},
			Handler: pt.take, PullMaxMessages: 256, PriorityGroup: PriorityGroup, PullExpiry: expiry,
			Heartbeat: expiry / 2, Logger: p.log}); err != nil {
			return err
		}
		p.parts = append(p.parts, pt)
	}
	// The fan-out consumer of a pusher before partitions: its floor is
	// where the partitions took over.
	if err := p.js.DeleteConsumer(ctx, streams.Ops, legacyFanoutConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		p.log.Warn("pusher: could not delete the old fan-out consumer", "err", err)
	}
	return nil
}

// legacyFanoutConsumer is the consumer of PUSHGO_OPS of pushers before
// delivery partitions.
const legacyFanoutConsumer = "pushgo-fanout"

// partitionStart lists the consumers of PUSHGO_OPS, and says where a
// partition consumer created now starts: after the lowest ack floor of the
// partition consumers (or the old fan-out consumer) that exist; 0 (new
// operations only) when there are none.
func (p *Pusher) partitionStart(ctx context.Context) (map[string]*jetstream.ConsumerInfo, uint64, error) {
	lister := p.opsStream.ListConsumers(ctx)
	have := map[string]*jetstream.ConsumerInfo{}
	for info := range lister.Info() {
		have[info.Name] = info
	}
	if err := lister.Err(); err != nil {
		return nil, 0, fmt.Errorf("pusher: list consumers: %w", err)
	}
	var floor uint64
	found := false
	for name, info := range have {
		if name == legacyFanoutConsumer || strings.HasPrefix(name, PartitionConsumerPrefix) {
			if !found || info.AckFloor.Stream < floor {
				floor = info.AckFloor.Stream
			}
			found = true
		}
	}
	if !found {
		return have, 0, nil
	}
	return have, floor + 1, nil
}

// ackFloors acknowledges each partition's finished operations ackInterval
// after a floor moved, until ctx ends: one AckAll per partition per
// interval at most, and no timer at all while no floor moves (an idle
// gateway is not woken forty times a second). It hands the floors to their
// record (recordLoop), written at most every floorRecordInterval
// (floors.go) on a goroutine of its own: written here, a floors bucket
// without a leader held every partition's acknowledgements for 5 s a
// partition each round, and their windows (MaxAckPending) filled.
func (p *Pusher) ackFloors(ctx context.Context) error {
	ackT := time.NewTimer(ackInterval)
	ackT.Stop()
	defer ackT.Stop()
	acking := false
	acked := make([]uint64, len(p.parts))
	toRecord := make(chan []uint64, 1)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		p.recordLoop(ctx, toRecord)
	}()
	ackAll := func() {
		for i, pt := range p.parts {
			acked[i] = pt.ackFloor()
		}
		// The latest floors replace any the record has not taken yet.
		select {
		case <-toRecord:
		default:
		}
		toRecord <- slices.Clone(acked)
	}
	for {
		select {
		case <-ctx.Done():
			ackAll() // what was finished before the stop
			<-recorded
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			p.recordFloors(rctx, acked, time.Now(), true)
			cancel()
			return nil
		case <-p.floorMoved:
			// Not a reset of a running timer: under a steady load the floor
			// moves all the time, and the acknowledgement would never come.
			if !acking {
				ackT.Reset(ackInterval)
				acking = true
			}
		case <-ackT.C:
			acking = false
			ackAll()
		}
	}
}

// recordLoop writes the floors it is handed to their record until ctx
// ends, each partition's at most every floorRecordInterval: one held back
// by its interval (or whose write failed) is written when its time comes,
// with the latest floors handed.
func (p *Pusher) recordLoop(ctx context.Context, floors <-chan []uint64) {
	t := time.NewTimer(floorRecordInterval)
	t.Stop()
	defer t.Stop()
	var latest []uint64
	for {
		select {
		case <-ctx.Done():
			return
		case latest = <-floors:
		case <-t.C:
		}
		if latest == nil {
			continue
		}
		if again := p.recordFloors(ctx, latest, time.Now(), false); again > 0 {
			t.Reset(again)
		}
	}
}

// ackInterval is how often partitions acknowledge: with the summaries'
// interval, what a crash can send twice beyond the operations in flight.
const ackInterval = 25 * time.Millisecond

// Run waits until ctx ends, then stops the pusher (Close) and returns nil;
// or until a loop fails for good, then stops it and returns that error.
// Transient failures (broker reconnecting, a consumer deleted) do not end
// Run: the loops recreate what they need.
func (p *Pusher) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-p.done:
	}
	_ = p.Close()
	return p.Err()
}

// Ready reports nil while every loop of the pusher runs, or names the
// loops that do not (their consumer is being recreated).
func (p *Pusher) Ready() error {
	var errs []error
	loops := []*consume.Loop{p.sendLoop}
	for _, pt := range p.parts {
		loops = append(loops, pt.loop)
	}
	for _, l := range loops {
		if !l.Running() {
			errs = append(errs, fmt.Errorf("pusher: consumer %s not running: %v", l.Name(), l.Err()))
		}
	}
	if err := p.audience.Err(); err != nil {
		errs = append(errs, fmt.Errorf("pusher: audience: %w", err))
	}
	if err := p.routes.Watch().Err(); err != nil {
		errs = append(errs, fmt.Errorf("pusher: device routes: %w", err))
	}
	if err := p.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Err is the error that stopped a loop, or nil.
func (p *Pusher) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// Close stops the loops and waits for in-flight sends. Operations not
// finished are redone by their partitions' next owners, and retry tasks
// taken but not settled are redelivered: nothing is lost.
func (p *Pusher) Close() error {
	p.closeOnce.Do(func() {
		confirmed := p.drain()
		p.cancel()
		<-p.done
		p.laneWG.Wait()
		// A parked task put back in its lane as the lanes ended
		// (parkAfterReadFailure) is handed back now, not after its ack
		// wait.
		for _, l := range p.lanes {
			p.handBack(l)
		}
		// Hand the partitions over now rather than after the failover time
		// (without a connection the broker fails them over by itself). A
		// partition whose floor the broker did not confirm is left to the
		// failover time: unpinned now, its next owner could reset below
		// the floor and send again what this replica sent.
		if p.js.Conn().IsConnected() {
			uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			for i, pt := range p.parts {
				// Only a pin the broker still gives this replica: a replica
				// that lost its partition (a stall past the failover time)
				// still holds the old pin id, and unpinning then took the
				// partition from its new owner mid-send.
				if pt.pin != "" && confirmed[i] && pt.pinnedTo(uctx, pt.pin) {
					_ = p.opsStream.UnpinConsumer(uctx, pt.name, PriorityGroup)
				}
			}
			cancel()
		}
		p.closeRegistries()
	})
	return nil
}

// drain hands the partitions over cleanly: they stop taking operations
// but keep pulling (keeping their pins), the sends in flight end (for at
// most drainTimeout), their summaries are written and acknowledged, and
// only then does the pulling stop: the next owner starts where this one
// stopped and sends nothing twice. It reports, by partition, whether the
// broker confirmed the floor's acknowledgement (ackFloorSync).
func (p *Pusher) drain() (confirmed []bool) {
	// The retry lanes start no task, and the sends they have under way
	// end, within the same bound: cut by the stop, a push the provider had
	// taken was sent again when its task came back (a duplicate on the
	// device). Set first: a hand-over that ends now (handOver) then leaves
	// its partition releasing.
	p.draining.Store(true)
	for _, pt := range p.parts {
		pt.releasing.Store(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	// Every partition within the first part of the wait, together.
	first, firstCancel := context.WithTimeout(ctx, drainTimeout-drainHandOff)
	settled := true
	for _, pt := range p.parts {
		settled = pt.waitSettled(first, drainTimeout) && settled
	}
	firstCancel()
	if !settled {
		p.handOffQueued()
		settled = true
		for _, pt := range p.parts {
			settled = pt.waitSettled(ctx, drainTimeout) && settled
		}
		if !settled {
			// Operations the intakes scheduled after the hand-off (taken
			// before the stop, expanded since) may queue behind the same
			// device again: once more, so the floor passes them too.
			p.handOffQueued()
		}
	}
	for p.retrying.Load() > 0 && ctx.Err() == nil {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	// The summaries get a bound of their own: written with a context the
	// waits above ran out, a batch was dropped unwritten, and the next
	// owner sent its operations again.
	fctx, fcancel := context.WithTimeout(context.Background(), ackSyncTimeout)
	for p.summaries.flush(fctx) {
	}
	fcancel()
	confirmed = make([]bool, len(p.parts))
	if p.js.Conn().IsConnected() { // else nothing is confirmed (and Close unpins nothing)
		// A bound of its own (the sends in flight may have taken all of
		// ctx's), and every partition at once: one slow answer does not
		// leave the others unconfirmed.
		actx, acancel := context.WithTimeout(context.Background(), ackSyncTimeout)
		var wg sync.WaitGroup
		for i, pt := range p.parts {
			wg.Go(func() { confirmed[i] = pt.ackFloorSync(actx) })
		}
		wg.Wait()
		acancel()
	}
	p.stopTaking()
	return confirmed
}

// drainTimeout bounds the wait for sends in flight when the pusher stops.
// Within it, drainHandOff before its end, the deliveries still queued are
// handed to the retry queue (handOffQueued).
const (
	drainTimeout = 5 * time.Second
	drainHandOff = 2 * time.Second
)

// handOffQueued hands every delivery still queued (scheduled, not taken by
// a worker) to the retry queue, as a first try (no attempt counted) due at
// once, so that its operation ends here and its partition's floor passes
// it. A device behind (a slow provider answering one push at a time) held
// its partition's floor at its first unsent operation when the stop's wait
// ran out, and the next owner redid every operation above it for every
// device of the partition: a clean stop during a burst pushed tens of
// operations twice to every healthy phone. The sends workers have taken
// go on (the drain waits for them). A delivery of an epoch already
// cancelled is abandoned, as deliver does: its next owner redoes it.
func (p *Pusher) handOffQueued() {
	queued := p.sched.takeQueued()
	if len(queued) == 0 {
		return
	}
	// An operation's deliveries are handed off all or none (one handed off
	// in part is redone whole by the next owner, and its devices whose task
	// was stored would be pushed twice): an operation is not begun once the
	// bound has passed. A store that fails partway (the broker gone) leaves
	// that one in part, as a send cut by a crash does. Lowest sequences
	// first: the floor passes operations in order.
	byOp := map[*opRun][]string{}
	var order []*opRun
	for _, d := range queued {
		if _, ok := byOp[d.op]; !ok {
			order = append(order, d.op)
		}
		byOp[d.op] = append(byOp[d.op], d.device)
	}
	slices.SortFunc(order, func(a, b *opRun) int { return cmp.Compare(a.seq, b.seq) })
	ctx, cancel := context.WithTimeout(context.Background(), ackSyncTimeout)
	defer cancel()
	handed := 0
	for _, op := range order {
		devices := byOp[op]
		if op.ep.cancelled.Load() || ctx.Err() != nil {
			for range devices {
				op.abandon()
			}
		} else {
			for _, device := range devices {
				p.toRetry(ctx, op, device, 0, 0)
			}
			handed += len(devices)
		}
		p.window.release(len(devices))
	}
	p.log.Info("pusher: stopping with deliveries queued; handed to the retry queue", "deliveries", len(queued), "handed", handed)
}

func (p *Pusher) closeRegistries() {
	if p.audience != nil {
		p.audience.Close()
	}
	if p.routes != nil {
		p.routes.Close()
	}
	p.devices.Close()
}

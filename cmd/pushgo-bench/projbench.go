package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/broker/provision"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/schemas/streams"
)

// The projector phases (issue 3's budget): how fast a fresh projector folds
// a large log compared with merely reading it, and the read latencies of
// the gateway: /channel/history pages, and /thing/get while the write load
// runs.

func init() { registerPhase(20, func() phase { return &projPhase{} }) }

// projPhase is the projector phases' flags, with the common options.
type projPhase struct {
	*options
	ops             int // operations populated for the raw consume and the fold
	historyOps      int // operations appended to the history channel
	historyReqs     int // /channel/history requests per measurement
	historyClients  int // concurrent clients of the concurrent history row
	historyLimit    int
	getRate         float64 // /thing/get requests per second under the write load
	readFloor       bool    // pace GET /healthz beside /thing/get
	storeFloor      bool    // measure the fold's floor (storefloor.go)
	foldProfile     string
	readProfile     string
	foldRatioBudget float64
	rebuildBudget   time.Duration // per million operations
	historyBudget   time.Duration // p99
	getBudget       time.Duration // p99
}

func (*projPhase) name() string { return "projector" }
func (*projPhase) about() string {
	return "populate, raw consume, fold, history and /thing/get latency"
}

func (p *projPhase) flags(fs *flagSet) {
	fs.IntVar(&p.ops, "ops", 1_000_000, "operations populated for the projector fold phases")
	fs.IntVar(&p.historyOps, "history-ops", 20_000, "operations appended over HTTP to the channel whose /channel/history is read")
	fs.IntVar(&p.historyReqs, "history-reqs", 500, "/channel/history requests per measurement")
	fs.IntVar(&p.historyClients, "history-clients", 8, "concurrent clients of the concurrent /channel/history row (at most -concurrency)")
	fs.IntVar(&p.historyLimit, "history-limit", 1000, "limit of each /channel/history request")
	fs.Float64Var(&p.getRate, "get-rate", 200, "/thing/get requests per second issued during the write load")
	fs.BoolVar(&p.storeFloor, "store-floor", true, "in each fold run, also read the log into a fresh projection store with nothing else (each operation's bytes written once as a history item, groups committed as the fold does): the least any fold of this log into this store does (informational)")
	fs.BoolVar(&p.readFloor, "read-floor", true, "pace GET /healthz at -get-rate beside /thing/get, from a process of its own: the latency of the gateway's cheapest route under the same write load, the floor under any read (informational)")
	fs.StringVar(&p.foldProfile, "foldprofile", "", "write a CPU profile of the first projector fold (rebuild) to this file")
	fs.StringVar(&p.readProfile, "readprofile", "", "write a CPU profile of the gateway during the first /channel/history c=1 run and the first /thing/get run to this file, the phase inserted before the extension (x.prof: x-history.prof, x-thing-get.prof)")
	fs.quick("ops", "100000")
	fs.quick("history-reqs", "200")
}

func (p *projPhase) setup(o *options) error {
	p.options = o
	switch {
	case p.ops < minOps:
		return fmt.Errorf("-ops must be at least %d", minOps)
	case p.historyOps < 1 || p.historyReqs < 1 || p.historyClients < 1:
		return errors.New("-history-ops, -history-reqs and -history-clients must be at least 1")
	case p.historyLimit < 1 || p.historyLimit > 1000:
		return errors.New("-history-limit must be within 1..1000")
	case p.getRate <= 0:
		return errors.New("-get-rate must be positive")
	case p.target != "all":
		return errors.New("-phases projector needs -target all (the reads need the projector)")
	}
	p.historyClients = min(p.historyClients, p.concurrency)
	p.foldRatioBudget, p.rebuildBudget = 0.5, 30*time.Second
	p.historyBudget, p.getBudget = 20*time.Millisecond, 5*time.Millisecond
	return nil
}

func (p *projPhase) header() string {
	return fmt.Sprintf("projector (%d operations folded; /channel/history: %d requests of %d after %d appends; /thing/get at %.0f/s)",
		p.ops, p.historyReqs, p.historyLimit, p.historyOps, p.getRate)
}

// loadNote: the read phases run the write load (with the default sync).
func (p *projPhase) loadNote() string { return "" }

// limit: populate once; per run, a raw consume, a fold, two history
// measurements and the /thing/get phase; room for start-up and shutdown.
func (p *projPhase) limit() time.Duration {
	perRun := p.consumeLimit() + p.foldLimit() + 2*p.historyTimeLimit() + 2*(p.duration+p.warmup+15*time.Second) + settleLimit
	return p.populateLimit() + time.Duration(p.runs)*perRun + 2*settleLimit + 3*time.Minute
}

func (p *projPhase) run(ctx context.Context) (table, error) {
	rep, err := benchProjector(ctx, p)
	return &rep, err
}

// projReport is what the projector phases measured (medians over -runs).
type projReport struct {
	o                  *projPhase
	ops                int
	bytes              int64
	populate           time.Duration
	consume, fold      timed
	storeFloor         timed  // the fold's floor (-store-floor; zero without)
	histOps            uint64 // operations in the history channel
	histSingle, histMC result
	get, getLoad       result // /thing/get, and the write load it ran under
	getFloor           result // GET /healthz paced beside /thing/get (-read-floor; zero without)
}

// timed is one measured pass over the whole log.
type timed struct {
	took time.Duration
	cpu  cpuUse
	// cores is the process's cores in the run (cpu.self); after median,
	// the median of the runs', where cpu is the most disturbed run's.
	cores float64
}

// columns: the median time and cores, the most disturbed run's CPU.
func (timed) columns() []column[timed] {
	return []column[timed]{
		mid(func(t *timed) *time.Duration { return &t.took }),
		busiest(func(t *timed) *cpuUse { return &t.cpu }),
		mid(func(t *timed) *float64 { return &t.cores }),
	}
}

func (t timed) rate(n int) float64 {
	if t.took <= 0 {
		return 0
	}
	return float64(n) / t.took.Seconds()
}

// Time bounds of the projector phases. The fold gets a minute plus
// 200 µs per operation (3m20s for a million), well above the budget.
func (o *projPhase) populateLimit() time.Duration {
	return 2*time.Minute + time.Duration(o.ops)*time.Millisecond/2
}
func (o *projPhase) consumeLimit() time.Duration {
	return time.Minute + time.Duration(o.ops)*100*time.Microsecond
}
func (o *projPhase) foldLimit() time.Duration {
	return time.Minute + time.Duration(o.ops)*200*time.Microsecond
}
func (o *projPhase) historyTimeLimit() time.Duration {
	return time.Duration(o.historyReqs)*opTimeout/time.Duration(o.historyClients) + time.Minute
}

// asyncWindow bounds the populate phase's unacknowledged publishes.
const asyncWindow = 4096

func benchProjector(ctx context.Context, o *projPhase) (rep projReport, err error) {
	rep.o = o
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(os.Stderr, "== projector phases: %d operations over %d channels, %d events + %d things\n",
		o.ops, genChannels, genEntities, genEntities)
	if err := foldPhases(ctx, o, log, &rep); err != nil {
		return rep, err
	}
	if err := readPhases(ctx, o, log, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// foldPhases populates a fresh broker once, then reads the whole log with
// a bare ordered consumer and folds it with a fresh projector, o.runs
// times each.
func foldPhases(ctx context.Context, o *projPhase, log *slog.Logger, rep *projReport) error {
	dir, err := os.MkdirTemp("", "pushgo-bench-fold-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := gateway.Defaults()
	b, err := broker.Start(broker.Config{
		Dir: filepath.Join(dir, "jetstream"), Listen: "off", Sync: cfg.Sync,
		MaxStore: cfg.MaxStore, MaxMemory: cfg.MaxMemory, Logger: log.With("component", "nats"),
	})
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	defer b.Shutdown()

	rep.ops = o.ops
	var last uint64
	if last, rep.bytes, rep.populate, err = populate(ctx, o, b); err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  populate: %d operations (%.0f MB of envelopes, %d bytes each on average) published in %s, %.0f ops/s\n",
		o.ops, float64(rep.bytes)/1e6, rep.bytes/int64(o.ops), rep.populate.Round(time.Millisecond), float64(o.ops)/rep.populate.Seconds())

	fold, err := repeat(ctx, o.options, "fold", func(run int) (foldRound, error) {
		c, err := atAnchorProcs(func() (timed, error) { return rawConsume(ctx, o, b, last) })
		if err != nil {
			return foldRound{}, fmt.Errorf("raw consume: %w", err)
		}
		var floor timed
		if o.storeFloor {
			if floor, err = storeFloor(ctx, o, b, last); err != nil {
				return foldRound{}, fmt.Errorf("store floor: %w", err)
			}
		}
		f, err := foldRun(ctx, o, b, last, run)
		if err != nil {
			return foldRound{}, err
		}
		return foldRound{ops: o.ops, consume: c, floor: floor, fold: f}, nil
	})
	rep.consume, rep.storeFloor, rep.fold = fold.consume, fold.floor, fold.fold
	return err
}

// foldRound is one run of the fold phases: the raw consume of the log,
// the store floor (-store-floor; zero without), then the fold.
type foldRound struct {
	ops                  int
	consume, floor, fold timed
}

func (foldRound) columns() []column[foldRound] {
	return []column[foldRound]{
		mid(func(r *foldRound) *int { return &r.ops }),
		nested(func(r *foldRound) *timed { return &r.consume }),
		nested(func(r *foldRound) *timed { return &r.floor }),
		nested(func(r *foldRound) *timed { return &r.fold }),
	}
}

func (r foldRound) progress(_ *options, _ string, run int) {
	fmt.Fprintf(os.Stderr, "  run %d  raw ordered consume %d ops in %s: %.0f ops/s [cpu: us %.2f cores, others %.2f]\n",
		run+1, r.ops, r.consume.took.Round(time.Millisecond), r.consume.rate(r.ops), r.consume.cpu.self, r.consume.cpu.others)
	if r.floor.took > 0 {
		fmt.Fprintf(os.Stderr, "  run %d  consume + store   %d ops in %s: %.0f ops/s [cpu: us %.2f cores, others %.2f]\n",
			run+1, r.ops, r.floor.took.Round(time.Millisecond), r.floor.rate(r.ops), r.floor.cpu.self, r.floor.cpu.others)
	}
	fmt.Fprintf(os.Stderr, "  run %d  projector fold    %d ops in %s: %.0f ops/s [cpu: us %.2f cores, others %.2f]\n",
		run+1, r.ops, r.fold.took.Round(time.Millisecond), r.fold.rate(r.ops), r.fold.cpu.self, r.fold.cpu.others)
}

// populate publishes o.ops operations with PublishAsync, at most
// asyncWindow unacknowledged, and returns the last stream sequence. Any
// failed publish fails the phase.
func populate(ctx context.Context, o *projPhase, b *broker.Embedded) (last uint64, bytes int64, took time.Duration, err error) {
	nc, err := b.Connect()
	if err != nil {
		return 0, 0, 0, err
	}
	defer nc.Close()
	var pubErrs atomic.Int64
	var firstErr atomic.Pointer[error]
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(asyncWindow),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			pubErrs.Add(1)
			firstErr.CompareAndSwap(nil, &err)
		}))
	if err != nil {
		return 0, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.populateLimit())
	defer cancel()
	if err := provision.Ensure(ctx, js, streams.DefaultOptions()); err != nil {
		return 0, 0, 0, err
	}

	began := time.Now()
	g := newOpGen(o.ops, uint64(began.UnixNano()), began.UnixMilli()-int64(o.ops))
	for ctx.Err() == nil {
		m, ok, err := g.next()
		if err != nil {
			return 0, 0, 0, err
		}
		if !ok {
			break
		}
		bytes += int64(len(m.data))
		if _, err := js.PublishMsgAsync(m.msg(), jetstream.WithStallWait(30*time.Second)); err != nil {
			return 0, 0, 0, fmt.Errorf("publish #%d: %w", g.i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, 0, fmt.Errorf("%d publishes unacknowledged: %w", js.PublishAsyncPending(), ctx.Err())
	}
	took = time.Since(began)
	if n := pubErrs.Load(); n > 0 {
		return 0, 0, 0, fmt.Errorf("%d publishes failed, first: %v", n, *firstErr.Load())
	}
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		return 0, 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	if info.State.Msgs != uint64(o.ops) {
		return 0, 0, 0, fmt.Errorf("stream holds %d operations, want %d", info.State.Msgs, o.ops)
	}
	return info.State.LastSeq, bytes, took, nil
}

// consumePull is the consumers' pull batch: the projector's (twice its
// default batch size of 1000), so that raw and fold read the log the same
// way.
const consumePull = 2000

// connectJS connects to b, for a reader of the log.
func connectJS(b *broker.Embedded) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := b.Connect()
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// rawConsume reads the whole log with an ordered consumer, doing nothing
// but count, and times it until the message at last arrives.
func rawConsume(ctx context.Context, o *projPhase, b *broker.Embedded, last uint64) (timed, error) {
	nc, js, err := connectJS(b)
	if err != nil {
		return timed{}, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.consumeLimit())
	defer cancel()

	cpu0 := sampleCPU()
	began := time.Now()
	cons, err := js.OrderedConsumer(ctx, streams.Ops, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return timed{}, err
	}
	done := make(chan struct{})
	var count, bad int64 // the handler runs on one goroutine
	var reached bool
	var doneAt time.Time
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			bad++
			return
		}
		count++
		if !reached && md.Sequence.Stream >= last {
			reached, doneAt = true, time.Now()
			close(done)
		}
	}, jetstream.PullMaxMessages(consumePull))
	if err != nil {
		return timed{}, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return timed{}, fmt.Errorf("last operation not received: %w", ctx.Err())
	}
	res := timed{took: doneAt.Sub(began), cpu: cpuBetween(cpu0, sampleCPU())}
	res.cores = res.cpu.self
	if bad > 0 || count != int64(o.ops) {
		return timed{}, fmt.Errorf("received %d operations (%d without metadata), want %d", count, bad, o.ops)
	}
	return res, nil
}

// foldRun starts a projector on an empty store (a rebuild) and times it
// until it has committed the last operation; the first run is profiled
// with -foldprofile.
func foldRun(ctx context.Context, o *projPhase, b *broker.Embedded, last uint64, run int) (timed, error) {
	dir, err := os.MkdirTemp("", "pushgo-bench-projection-*")
	if err != nil {
		return timed{}, err
	}
	defer os.RemoveAll(dir)
	nc, err := b.Connect()
	if err != nil {
		return timed{}, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.foldLimit())
	defer cancel()

	stop, err := profileRun(run, o.foldProfile, "projector fold")
	if err != nil {
		return timed{}, err
	}
	cpu0 := sampleCPU()
	began := time.Now()
	p, err := projector.Start(ctx, nc, projector.Config{Dir: filepath.Join(dir, "projection"), Serve: false})
	if err != nil {
		stop()
		return timed{}, err
	}
	err = p.WaitApplied(ctx, last)
	res := timed{took: time.Since(began), cpu: cpuBetween(cpu0, sampleCPU())}
	res.cores = res.cpu.self
	stop()
	if cerr := p.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return timed{}, fmt.Errorf("applied %d of %d: %w", p.Applied(), last, err)
	}
	return res, nil
}

// readPhases start the whole gateway, give it a channel with
// o.historyOps operations (appended over HTTP), then measure
// /channel/history with one client and with o.historyClients, and
// /thing/get at a fixed rate under the closed-loop write load.
func readPhases(ctx context.Context, o *projPhase, log *slog.Logger, rep *projReport) error {
	t, err := startTarget(ctx, o.options, syncMode{sync: gateway.Defaults().Sync}, log)
	if err != nil {
		return err
	}
	defer t.close()

	fill, err := runLoad(ctx, t.spec(opUpdate).count(o.concurrency, o.historyOps, o.populateLimit()))
	if err != nil {
		return fmt.Errorf("history fill: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  history channel: %d updates appended in %s (%.0f ops/s), errors %d\n",
		fill.ops, fill.elapsed.Round(time.Millisecond), fill.rate, fill.errors)
	if fill.errors > 0 {
		return fmt.Errorf("history fill: %d appends failed: %v", fill.errors, fill.errKinds)
	}
	began := time.Now()
	if rep.histOps, err = t.waitReady(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  /readyz: projector_lag 0 at applied %d after %s\n", rep.histOps, time.Since(began).Round(time.Millisecond))
	if rep.histOps < uint64(o.historyLimit) {
		return fmt.Errorf("history channel has %d operations, fewer than -history-limit %d", rep.histOps, o.historyLimit)
	}

	hist := t.spec(opHistory)
	hist.HistoryLast, hist.HistoryLimit = rep.histOps, o.historyLimit
	if rep.histSingle, err = repeat(ctx, o.options, "history c=1", func(run int) (result, error) {
		stop, err := profileRun(run, profilePath(o.readProfile, "history"), "/channel/history c=1")
		if err != nil {
			return result{}, err
		}
		defer stop()
		return runLoad(ctx, hist.count(1, o.historyReqs, o.historyTimeLimit()))
	}); err != nil {
		return err
	}
	if rep.histMC, err = repeat(ctx, o.options, fmt.Sprintf("history c=%d", o.historyClients), func(int) (result, error) {
		return runLoad(ctx, hist.count(o.historyClients, o.historyReqs, o.historyTimeLimit()))
	}); err != nil {
		return err
	}

	get, err := repeat(ctx, o.options, "thing/get", func(run int) (getRound, error) {
		stop, err := profileRun(run, profilePath(o.readProfile, "thing-get"), "/thing/get under load")
		if err != nil {
			return getRound{}, err
		}
		specs := []loadSpec{
			t.spec(opUpdate).closed(o.concurrency, o.warmup, o.duration),
			t.spec(opThingGet).open(getReaders, o.getRate, o.warmup, o.duration),
		}
		if o.readFloor {
			specs = append(specs, t.spec(opHealthz).open(getReaders, o.getRate, o.warmup, o.duration))
		}
		schedFrom := schedSnapshot()
		reps, cpu, err := runLoads(ctx, nil, specs...)
		waits := schedBetween(schedFrom, schedSnapshot())
		stop()
		if err != nil {
			return getRound{}, err
		}
		r := getRound{load: reps[0].result(cpu), get: reps[1].result(cpu)}
		if o.readFloor {
			r.floor = reps[2].result(cpu)
		}
		r.get.note = t.settleNote(ctx)
		if waits.n > 0 {
			r.get.note += "; " + waits.String()
		}
		return r, nil
	})
	rep.get, rep.getLoad, rep.getFloor = get.get, get.load, get.floor
	return err
}

// getRound is one run of the /thing/get phase: the paced reads, the write
// load they ran under and, with -read-floor, GET /healthz paced beside
// them (zero without).
type getRound struct{ get, load, floor result }

func (getRound) columns() []column[getRound] {
	return []column[getRound]{
		nested(func(r *getRound) *result { return &r.get }),
		nested(func(r *getRound) *result { return &r.load }),
		nested(func(r *getRound) *result { return &r.floor }),
	}
}

func (r getRound) progress(o *options, name string, run int) {
	r.load.progress(o, "  write load", run)
	r.get.progress(o, name, run)
	if r.floor.ops > 0 {
		r.floor.progress(o, "  /healthz beside", run)
	}
}

// countLoop issues n operations from `workers` clients, back to back,
// and records them all (no warm-up: the history reads are few). It runs in
// a load process (loadproc.go).
func countLoop(ctx context.Context, workers, n int, op opFunc) result {
	cpu0 := sampleCPU()
	ws := newWorkers(workers)
	recs := make([]*recorder, workers)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i, w := range ws {
		recs[i] = newRecorder(n/workers + 1)
		wg.Go(func() {
			rec := recs[i]
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				t0 := time.Now()
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				err := op(octx, w)
				cancel()
				done := time.Now()
				w.n++
				if err != nil {
					rec.fail(err)
				} else {
					rec.ok(done.Sub(t0))
					rec.tick(done.Sub(start))
				}
			}
		})
	}
	wg.Wait()
	res := summarize(recs, time.Since(start))
	res.cpu = cpuBetween(cpu0, sampleCPU())
	return res
}

package main

import (
	"context"
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

// projReport is what the projector phases measured (medians over -runs).
type projReport struct {
	ops                int
	bytes              int64
	populate           time.Duration
	consume, fold      timed
	histOps            uint64 // operations in the history channel
	histSingle, histMC result
	get, getLoad       result // /thing/get, and the write load it ran under
}

// timed is one measured pass over the whole log.
type timed struct {
	took time.Duration
	cpu  cpuUse
}

func (t timed) rate(n int) float64 {
	if t.took <= 0 {
		return 0
	}
	return float64(n) / t.took.Seconds()
}

// Time bounds of the projector phases. The fold gets a minute plus
// 200 µs per operation (3m20s for a million), well above the budget.
func (o options) populateLimit() time.Duration {
	return 2*time.Minute + time.Duration(o.ops)*time.Millisecond/2
}
func (o options) consumeLimit() time.Duration {
	return time.Minute + time.Duration(o.ops)*100*time.Microsecond
}
func (o options) foldLimit() time.Duration {
	return time.Minute + time.Duration(o.ops)*200*time.Microsecond
}
func (o options) historyTimeLimit() time.Duration {
	return time.Duration(o.historyReqs)*opTimeout/time.Duration(o.historyClients) + time.Minute
}

// asyncWindow bounds the populate phase's unacknowledged publishes.
const asyncWindow = 4096

func benchProjector(ctx context.Context, o options) (rep projReport, err error) {
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
func foldPhases(ctx context.Context, o options, log *slog.Logger, rep *projReport) error {
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

	var consumes, folds []timed
	for i := range o.runs {
		c, err := rawConsume(ctx, o, b, last)
		if err != nil {
			return fmt.Errorf("raw consume: %w", err)
		}
		fmt.Fprintf(os.Stderr, "  run %d  raw ordered consume %d ops in %s: %.0f ops/s [cpu: us %.2f cores, others %.2f]\n",
			i+1, o.ops, c.took.Round(time.Millisecond), c.rate(o.ops), c.cpu.self, c.cpu.others)
		consumes = append(consumes, c)

		f, err := foldRun(ctx, o, b, last, i == 0 && o.foldProfile != "")
		if err != nil {
			return fmt.Errorf("fold: %w", err)
		}
		fmt.Fprintf(os.Stderr, "  run %d  projector fold    %d ops in %s: %.0f ops/s [cpu: us %.2f cores, others %.2f]\n",
			i+1, o.ops, f.took.Round(time.Millisecond), f.rate(o.ops), f.cpu.self, f.cpu.others)
		folds = append(folds, f)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	rep.consume, rep.fold = medianTimed(consumes), medianTimed(folds)
	return nil
}

// populate publishes o.ops operations with PublishAsync, at most
// asyncWindow unacknowledged, and returns the last stream sequence. Any
// failed publish fails the phase.
func populate(ctx context.Context, o options, b *broker.Embedded) (last uint64, bytes int64, took time.Duration, err error) {
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

// rawConsume reads the whole log with an ordered consumer, doing nothing
// but count, and times it until the message at last arrives.
func rawConsume(ctx context.Context, o options, b *broker.Embedded, last uint64) (timed, error) {
	nc, err := b.Connect()
	if err != nil {
		return timed{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return timed{}, err
	}
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
	if bad > 0 || count != int64(o.ops) {
		return timed{}, fmt.Errorf("received %d operations (%d without metadata), want %d", count, bad, o.ops)
	}
	return res, nil
}

// foldRun starts a projector on an empty store (a rebuild) and times it
// until it has committed the last operation.
func foldRun(ctx context.Context, o options, b *broker.Embedded, last uint64, profile bool) (timed, error) {
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

	stop := func() {}
	if profile {
		if stop, err = startCPUProfile(o.foldProfile, "projector fold"); err != nil {
			return timed{}, err
		}
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
	stop()
	if cerr := p.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return timed{}, fmt.Errorf("applied %d of %d: %w", p.Applied(), last, err)
	}
	return res, nil
}

func medianTimed(ts []timed) timed {
	rs := make([]result, len(ts))
	for i, t := range ts {
		rs[i] = result{p50: t.took, cpu: t.cpu}
	}
	m := median(rs)
	return timed{took: m.p50, cpu: m.cpu}
}

// readPhases start the whole gateway, give it a channel with
// o.historyOps operations (appended over HTTP), then measure
// /channel/history with one client and with o.historyClients, and
// /thing/get at a fixed rate under the closed-loop write load.
func readPhases(ctx context.Context, o options, log *slog.Logger, rep *projReport) error {
	t, err := startTarget(ctx, o, syncMode{sync: gateway.Defaults().Sync}, log)
	if err != nil {
		return err
	}
	defer t.close()

	fill := countLoop(ctx, o.concurrency, o.historyOps, t.update)
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

	hist := t.historyOp(rep.histOps, o.historyLimit)
	if rep.histSingle, err = repeat(ctx, o, "history c=1", func() (result, error) {
		return countLoop(ctx, 1, o.historyReqs, hist), nil
	}); err != nil {
		return err
	}
	if rep.histMC, err = repeat(ctx, o, fmt.Sprintf("history c=%d", o.historyClients), func() (result, error) {
		return countLoop(ctx, o.historyClients, o.historyReqs, hist), nil
	}); err != nil {
		return err
	}

	var loads []result
	if rep.get, err = repeat(ctx, o, "thing/get", func() (result, error) {
		var load result
		var wg sync.WaitGroup
		wg.Go(func() { load = closedLoop(ctx, o.concurrency, o.warmup, o.duration, t.update) })
		get := openLoop(ctx, getReaders, o.getRate, o.warmup, o.duration, t.thingGet)
		wg.Wait()
		progress(o, "  write load", len(loads), load)
		loads = append(loads, load)
		get.note = t.settleNote(ctx)
		return get, nil
	}); err != nil {
		return err
	}
	rep.getLoad = median(loads)
	return nil
}

// countLoop issues n operations from `workers` clients, back to back,
// and records them all (no warm-up: the history reads are few).
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

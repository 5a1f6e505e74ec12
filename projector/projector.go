// Package projector folds PUSHGO_OPS into Pebble and answers the read API
// over NATS request-reply. Every replica folds the whole stream into its own
// store; any replica answers any read (they share a queue group), so reads
// scale by adding replicas with no routing or discovery.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/broker/consume"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/streams"
)

// Config configures a Projector.
type Config struct {
	// Dir is the Pebble directory. Required unless InMemory.
	Dir string
	// InMemory keeps the projection in memory: every start is a rebuild.
	InMemory bool
	// Rebuild folds the projection in Dir again from the first retained
	// operation, onto the live entities whose operations have all left
	// the log, carried over from the projection it replaces (openStore).
	Rebuild bool
	// BatchSize is the most operations committed at once (one Pebble
	// batch, with the applied sequence). Default 10,000.
	BatchSize int
	// LocalOps, when set, is the feed of the operations the same
	// process's ingest appends (consume.LocalFeed): once caught up with
	// the log, the fold takes those from it rather than have the broker
	// deliver them again, and reads the rest from the log. What it folds
	// is the log, in order, either way.
	LocalOps *consume.LocalFeed
	// FoldPartitions is the number of goroutines folding operations, each
	// the entities its share of subjects names. Default GOMAXPROCS.
	FoldPartitions int
	// CachedSnapshots bounds the decoded snapshots the fold keeps (shared
	// among its partitions). Default 100,000.
	CachedSnapshots int
	// CachedSnapshotBytes bounds the same snapshots by an estimate of
	// their memory (shared among the partitions). Default
	// store.DefaultCachedSnapshotBytes.
	CachedSnapshotBytes int64
	// BlockCacheBytes sizes the store's block cache (store.Options).
	// Default store.DefaultBlockCacheBytes.
	BlockCacheBytes int64
	// MinFreeBytes is the free space the projection's disk must have for
	// the store to open (store.Options.MinFreeBytes): with less, Start
	// and a rebuild end with store.ErrDiskFull. Default the store's
	// (86 MiB); negative: no check.
	MinFreeBytes int64
	// SelectionCacheBytes bounds the Dynatrace selections' answer cache
	// (store.Options). Default store.DefaultSelectionCacheBytes; negative:
	// no cache.
	SelectionCacheBytes int
	// MaxBatchDelay bounds how long a folded operation waits for its
	// commit while no read waits for it: operations that arrive one by
	// one are committed together, up to this delay, instead of one group
	// each. A read waiting on its read-your-writes barrier (WaitApplied)
	// ends the wait: the open group commits as soon as no other commit is
	// under way. Default 5ms.
	MaxBatchDelay time.Duration
	// CatchUpDelay bounds how long a group stays open, no other
	// committing, while the fold is BatchSize or more operations behind
	// the log (otherwise it commits only full groups then): a log
	// delivered slowly still moves the applied sequence, and a rebuild's
	// progress, a few times a second. Default 250ms.
	CatchUpDelay time.Duration
	// ReadWait bounds how long a read waits for the fold to reach its
	// read-your-writes barrier before answering projection_lagging.
	// Default 2s.
	ReadWait time.Duration
	// MaxConcurrentReads bounds reads served at once: reading the store
	// and encoding the answer (a read waiting for the fold to reach its
	// barrier holds no place). Default 64. A replica holds at most 64
	// times as many reads in flight (waiting for the fold or for a
	// place); beyond that the reads wait in the broker's subscription.
	MaxConcurrentReads int
	// PruneInterval is how often the history and send status of
	// operations older than the log's retention are deleted. Default 1
	// minute.
	PruneInterval time.Duration
	// Serve answers reads; false folds only (a rebuild, a bench).
	Serve  bool
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.BatchSize <= 0 {
		c.BatchSize = 10_000
	}
	if c.FoldPartitions <= 0 {
		c.FoldPartitions = runtime.GOMAXPROCS(0)
	}
	if c.CachedSnapshots <= 0 {
		c.CachedSnapshots = 100_000
	}
	if c.CachedSnapshotBytes <= 0 {
		c.CachedSnapshotBytes = store.DefaultCachedSnapshotBytes
	}
	if c.MaxBatchDelay <= 0 {
		c.MaxBatchDelay = 5 * time.Millisecond
	}
	if c.CatchUpDelay <= 0 {
		c.CatchUpDelay = 250 * time.Millisecond
	}
	if c.ReadWait <= 0 {
		c.ReadWait = 2 * time.Second
	}
	if c.MaxConcurrentReads <= 0 {
		c.MaxConcurrentReads = 64
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dir == "" && !c.InMemory {
		return errors.New("projector: Dir is required unless InMemory")
	}
	return nil
}

const streamName = streams.Ops

// Projector is a running fold and read service. The caller MUST call Close.
type Projector struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	// store is the projection. A rebuild (heal.go) replaces it while the
	// folds are stopped and no read is served; storeMu guards it for the
	// readers that run beside a rebuild (DeadLetters, Store).
	storeMu sync.RWMutex
	store   *store.Store
	// logsCreated is when each folded stream was created, as the broker
	// said when the projection was last opened (readLogs): a
	// projection of a stream created before is rebuilt (heal.go,
	// sameLogs). Read and written by the goroutine that opens the store.
	logsCreated map[string]time.Time
	// logBounds are the folded streams' first and last sequences as
	// readLogs read them (by streamIndex), for primeProgress and for
	// sameLogs (a projection folded past a stream's last sequence is of
	// another log).
	logBounds [2][2]uint64

	applied atomic.Uint64 // last stream sequence committed to the store
	pending atomic.Uint64 // operations in the stream not yet delivered to the fold
	// receiptsPending is the receipts not yet delivered to the receipts
	// fold, as of its last one (readsvc.go: /send_status of a replica
	// far behind is asked of another).
	receiptsPending atomic.Uint64
	groups          atomic.Uint64 // groups committed (partfold.go)
	served          atomic.Uint64 // reads answered
	// servedLocal counts the reads answered through ServeLocal.
	servedLocal atomic.Uint64
	rstats      readStats // what bounded the answers (readsvc.go)

	receiptsApplied atomic.Uint64 // last PUSHGO_RECEIPTS sequence folded
	failed          atomic.Pointer[error]
	// retention is PUSHGO_OPS's MaxAge in milliseconds (0: forever), read
	// at start and with every prune: /send_status's expires_at.
	retention atomic.Int64

	mu     sync.Mutex
	notify chan struct{} // closed and replaced on every commit of either fold
	// waitsEnd is closed when serving stops before a rebuild
	// (stopServing; made anew by startServing): a read waiting for the
	// fold, which has stopped, ends at once instead of at its ReadWait,
	// holding the rebuild (and, on localMu, every read after it). A close
	// serves what it let in (close does not stop serving so).
	waitsEnd chan struct{}
	// awaited is the highest sequence a WaitApplied call has waited for;
	// hurry tells the fold one started (partfold.go cuts its open group
	// while it holds operations up to awaited not yet cut).
	awaited atomic.Uint64
	hurry   chan struct{}
	// vanished tells the fold that a read waited in vain (partfold.go
	// looks whether the operations it waited for left the log).
	vanished chan struct{}
	dealt    atomic.Uint64 // the last sequence dealt to the fold's partitions

	subMu   sync.Mutex           // guards subs, closing and readsNC
	subs    []*nats.Subscription // the read service's (subscribeReads)
	closing bool
	readsNC *nats.Conn // the read service's own connection (readsvc.go)
	reads   chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	wg      sync.WaitGroup // in-flight reads
	// inflight holds a place for each read over NATS in flight (onRead).
	inflight chan struct{}

	// localMu guards serving, which says whether ServeLocal and the read
	// service (onRead) answer: set with the read service's subscription
	// and cleared, under the write lock, before a rebuild touches the
	// store or a close waits for the reads, so no local read is in flight
	// then (a local read holds the read lock while it runs) and no read
	// is counted in wg afterwards.
	localMu sync.RWMutex
	serving bool

	closeOnce sync.Once
	closeErr  error

	opsFold, receiptsFold *consume.Ordered

	heal     healState    // dead letters and rebuilds (heal.go)
	progress foldProgress // a fold far behind the log (progress.go)
}

// Start opens the store (rebuilding a corrupt one), resumes the fold after
// the last applied sequence and, with cfg.Serve, starts answering reads.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Projector, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	p := &Projector{cfg: cfg, log: cfg.Logger, nc: nc, js: js,
		notify: make(chan struct{}), hurry: make(chan struct{}, 1), vanished: make(chan struct{}, 1), reads: make(chan struct{}, cfg.MaxConcurrentReads),
		inflight: make(chan struct{}, cfg.MaxConcurrentReads*inflightPerPlace), done: make(chan struct{}),
		heal: newHealState(), progress: foldProgress{log: cfg.Logger}}
	if err := p.readLogs(ctx); err != nil {
		return nil, err
	}
	if err := p.openStore(ctx, cfg.Rebuild); err != nil {
		return nil, err
	}
	select { // a corrupt file the opening found: rebuilt already
	case <-p.heal.rebuildReq:
	default:
	}
	if p.opsFold, p.receiptsFold, err = p.folds(); err != nil {
		p.store.Close()
		return nil, err
	}
	p.primeProgress()
	fctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.supervise(fctx)
	}()
	if err := p.startServing(); err != nil {
		p.Close()
		return nil, err
	}
	p.log.Info("projector started", "applied", p.Applied(), "serve", cfg.Serve)
	return p, nil
}

// Run waits until ctx ends, then stops the projector (Close) and returns
// nil; or until the projector stops for good (a projection that cannot be
// written nor rebuilt), then closes it and returns why. A broker that is
// briefly away does not end Run: the fold recreates its consumer and
// resumes after the last committed sequence; an entry that cannot be
// folded is set aside (a dead letter); a corrupt projection is rebuilt.
func (p *Projector) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return p.Close()
	case <-p.done:
		err := p.Err()
		if cerr := p.Close(); err == nil {
			err = cerr
		}
		return err
	}
}

// Ready reports nil while both folds (operations and receipts) consume,
// or names the one that does not, or the rebuild under way.
func (p *Projector) Ready() error {
	if err := p.Err(); err != nil {
		return fmt.Errorf("projector: fold stopped: %w", err)
	}
	if err := p.heal.rebuilding.Load(); err != nil {
		return fmt.Errorf("projector: rebuilding the projection from the log: %w", *err)
	}
	if s := p.progress.status(); s != "" {
		return errors.New("projector: " + s)
	}
	if st := p.Store(); st != nil {
		if err := st.DiskRefused(); err != nil {
			return fmt.Errorf("projector: the projection's disk is full; its writes wait in memory until there is room under %s: %w", p.cfg.Dir, err)
		}
	}
	for _, f := range []struct {
		stream string
		loop   *consume.Ordered
	}{{streams.Ops, p.opsFold}, {streams.Receipts, p.receiptsFold}} {
		if !f.loop.Running() {
			return fmt.Errorf("projector: fold of %s not running: %v", f.stream, f.loop.Err())
		}
	}
	return nil
}

// Applied is the last stream sequence folded and committed.
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// ReceiptsApplied is the last PUSHGO_RECEIPTS sequence folded.
func (p *Projector) ReceiptsApplied() uint64 { return p.receiptsApplied.Load() }

// Lag is the number of operations in the stream not yet folded and
// committed, as of the last delivered message: those after it, and those
// the fold holds in a group not yet committed (up to MaxBatchDelay while
// no read waits for them).
func (p *Projector) Lag() uint64 {
	lag := p.pending.Load()
	if dealt, applied := p.dealt.Load(), p.applied.Load(); dealt > applied {
		lag += dealt - applied
	}
	return lag
}

// ServedReads is the number of reads this replica has answered.
func (p *Projector) ServedReads() uint64 { return p.served.Load() }

// Err is the error that stopped the fold, or nil while it runs.
func (p *Projector) Err() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// StoreBackground is the projection store's background work (flushes,
// compactions, the room it takes); the zero value while a rebuild has no
// store open.
func (p *Projector) StoreBackground() store.Background {
	p.storeMu.RLock()
	defer p.storeMu.RUnlock()
	if p.store == nil {
		return store.Background{}
	}
	return p.store.Background()
}

// Store exposes the store to tests and the rebuild comparison. A rebuild
// replaces it.
func (p *Projector) Store() *store.Store {
	p.storeMu.RLock()
	defer p.storeMu.RUnlock()
	return p.store
}

// committed publishes a new applied sequence and wakes waiters.
func (p *Projector) committed(seq uint64) {
	p.applied.Store(seq)
	p.wake()
}

// receiptsCommitted publishes a new receipts applied sequence and wakes
// waiters (/send_status's, waitReceipts).
func (p *Projector) receiptsCommitted(seq uint64) {
	p.receiptsApplied.Store(seq)
	p.wake()
}

// wake wakes every waiter for a commit (they look again at what they wait
// for).
func (p *Projector) wake() {
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// WaitApplied blocks until the fold has committed seq, or ctx ends. While
// it waits, the fold commits what it holds without waiting for more
// (Config.MaxBatchDelay).
func (p *Projector) WaitApplied(ctx context.Context, seq uint64) error {
	return p.waitFor(ctx, &p.applied, seq, func() {
		for a := p.awaited.Load(); a < seq && !p.awaited.CompareAndSwap(a, seq); a = p.awaited.Load() {
		}
		select {
		case p.hurry <- struct{}{}:
		default: // the fold has a call to hurry already
		}
		if p.cfg.LocalOps != nil {
			// seq may be another process's append, which the feed
			// never brings: the loop asks the stream soon.
			p.cfg.LocalOps.Poke()
		}
	})
}

// waitReceipts blocks until the receipts fold has committed seq (a
// PUSHGO_RECEIPTS sequence), or ctx ends, serving stops for a rebuild
// (errServingStopped), or the projector stops for good. The receipts fold
// commits as soon as it has caught up (consume), so it needs no hurry.
func (p *Projector) waitReceipts(ctx context.Context, seq uint64) error {
	return p.waitFor(ctx, &p.receiptsApplied, seq, nil)
}

// waitFor blocks until position (a fold's committed sequence) reaches seq,
// or ctx ends, serving stops (errServingStopped), or the projector stops
// for good. hurry, when not nil, runs once, when the first look finds the
// fold behind.
func (p *Projector) waitFor(ctx context.Context, position *atomic.Uint64, seq uint64, hurry func()) error {
	for {
		p.mu.Lock()
		ch, end := p.notify, p.waitsEnd
		p.mu.Unlock()
		if position.Load() >= seq {
			return nil
		}
		if err := p.Err(); err != nil {
			return err
		}
		if hurry != nil {
			hurry()
			hurry = nil
		}
		select {
		case <-ch:
		case <-end: // nil while not serving: never
			return errServingStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errServingStopped ends a wait for the fold when serving stops for a
// rebuild: the read is answered read_unavailable, which the front asks
// another replica.
var errServingStopped = errors.New("projector: serving stopped for a rebuild; the fold will not reach the read here")

// Close stops serving reads, waits for in-flight ones, stops the fold
// (committing what it holds) and closes the store. Later calls return the
// first call's result.
func (p *Projector) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *Projector) close() error {
	p.subMu.Lock()
	p.closing = true // no rebuild serves again (startServing)
	subs := p.subs
	p.subs = nil
	p.subMu.Unlock()
	// The reads delivered already are served: the store and the fold run
	// until they are (a replica stopped cleanly answers them, rather
	// than 503). Then serving ends, so that no read is added to wg once
	// it is waited for, even if the drain gave up.
	p.drainReads(subs)
	p.localMu.Lock() // waits for the local reads in flight
	p.serving = false
	p.localMu.Unlock()
	p.wg.Wait()
	p.closeReads()
	p.cancel()
	<-p.done
	if p.store == nil { // a rebuild that failed for good
		return nil
	}
	return p.store.Close()
}

// startServing subscribes the read service (with cfg.Serve), unless the
// projector is closing.
func (p *Projector) startServing() error {
	p.subMu.Lock()
	if p.closing || !p.cfg.Serve {
		p.subMu.Unlock()
		return nil
	}
	// Serving before the subscription: a read it delivers at once finds
	// the store served (onRead answers unavailable otherwise).
	p.mu.Lock()
	p.waitsEnd = make(chan struct{})
	p.mu.Unlock()
	p.localMu.Lock()
	p.serving = true
	p.localMu.Unlock()
	subs, err := p.subscribeReads()
	if err == nil {
		p.subs = subs
	}
	p.subMu.Unlock()
	if err != nil {
		// Not under subMu: reads the failed subscription delivered wait
		// for it to answer (replyMaxPayload).
		p.localMu.Lock()
		p.serving = false
		p.localMu.Unlock()
		return fmt.Errorf("projector: subscribe reads: %w", err)
	}
	return nil
}

// stopServing unsubscribes the read service and waits for the reads in
// flight: afterwards no read touches the store until startServing.
func (p *Projector) stopServing() {
	// The reads waiting for the fold end now (read_unavailable): the
	// folds have stopped (a rebuild).
	// Kept closed until startServing makes another, so a wait that
	// begins after this (a read let in just before) ends at once too.
	p.mu.Lock()
	select {
	case <-p.waitsEnd:
	default:
		if p.waitsEnd != nil {
			close(p.waitsEnd)
		}
	}
	p.mu.Unlock()
	p.localMu.Lock() // waits for the local reads in flight
	p.serving = false
	p.localMu.Unlock()
	p.subMu.Lock()
	subs := p.subs
	p.subs = nil
	p.subMu.Unlock()
	p.drainReads(subs)
	p.wg.Wait()
}

// drainReads delivers what subs have buffered, then unsubscribes them,
// and waits (bounded, 5 s for all) until the last read they started has
// returned, so no read starts or runs after it returns: a subscription's
// closed handler runs after its last callback. Without a connection to
// the broker it unsubscribes at once: no answer could leave, and a drain
// would wait out the client's 10-second flush first (a gateway stopping
// while its broker is gone would take that long).
func (p *Projector) drainReads(subs []*nats.Subscription) {
	var closed []chan struct{}
	for _, sub := range subs {
		done := make(chan struct{})
		sub.SetClosedHandler(func(string) { close(done) })
		stop := sub.Drain
		if p.readsNC == nil || !p.readsNC.IsConnected() {
			stop = sub.Unsubscribe
		}
		if stop() == nil { // else closed already
			closed = append(closed, done)
		}
	}
	bound := time.After(5 * time.Second)
	for _, done := range closed {
		select {
		case <-done:
		case <-bound:
			return
		}
	}
}

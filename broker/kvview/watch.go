// Package kvview keeps key-value buckets in memory: one long-lived watch
// per bucket applies every change, in order, to a view (a Map of decoded
// values, or any Applier), so that readers pay no broker round trip. Sync
// makes a view current with the bucket as of the call, which is how a
// reader proves it has seen every write made before some event.
package kvview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
)

// Applier receives a bucket's changes in revision order. Put is a value
// written; Delete a key deleted or purged. Calls come from one goroutine.
type Applier interface {
	Put(key string, value []byte, revision uint64)
	Delete(key string, revision uint64)
}

// Options configure a Watch. The zero value is valid.
type Options struct {
	// Logger receives restarts of the watch. Default: discard.
	Logger *slog.Logger
	// DeletesAreFinal makes a Map keep a deleted key deleted whatever
	// revision is remembered later: for buckets whose keys are random ids
	// never reused, where a late read must never bring a key back.
	DeletesAreFinal bool
	// TombstonesKept is how long a Map keeps a deleted key's tombstone
	// (Map.Delete says why it is dropped then). Default 10 minutes.
	TombstonesKept time.Duration
	// Now is a Map's clock for its tombstones. Default time.Now.
	Now func() time.Time
	// RestartDelay is the first pause before a broken watch is started
	// again (it doubles up to 5s). Default 100ms.
	RestartDelay time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RestartDelay <= 0 {
		o.RestartDelay = 100 * time.Millisecond
	}
	if o.TombstonesKept <= 0 {
		o.TombstonesKept = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Watch applies a bucket's changes to an Applier until Close. If the
// broker ends the watch (the bucket's stream moved or was recreated), it
// starts again after the last applied revision, with back-off. The caller
// MUST call Close.
type Watch struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
	// log reads the bucket's stream as its leader holds it, and subjects
	// is the stream's one subject filter ("$KV.<bucket>.>"; "" if it has
	// another shape): Sync asks it for the first write after the view's.
	log      *leaderread.Stream
	subjects string
	apply    Applier
	opts     Options

	mu      sync.Mutex
	applied uint64        // last revision applied
	notify  chan struct{} // closed and replaced on every applied change
	broken  error         // why the watch is not running, or nil

	cancel context.CancelFunc
	done   chan struct{}
}

// Start watches bucket of js and returns once its current values are
// applied (or ctx ends, which only bounds that initial load).
func Start(ctx context.Context, js jetstream.JetStream, bucket string, a Applier, opts Options) (*Watch, error) {
	opts.defaults()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	stream, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s stream: %w", bucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &Watch{kv: kv, stream: stream, log: leaderread.New(js, stream), apply: a, opts: opts, notify: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	if subj := stream.CachedInfo().Config.Subjects; len(subj) == 1 {
		w.subjects = subj[0]
	}
	first, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", bucket, err)
	}
	loaded := make(chan struct{})
	go w.run(wctx, first, loaded)
	select {
	case <-loaded:
		return w, nil
	case <-ctx.Done():
		w.Close()
		return nil, fmt.Errorf("load %s: %w", bucket, ctx.Err())
	}
}

// run applies updates until ctx ends, restarting the watch when it breaks.
func (w *Watch) run(ctx context.Context, kw jetstream.KeyWatcher, loaded chan struct{}) {
	defer close(w.done)
	delay := w.opts.RestartDelay
	for {
		w.consume(kw, loaded)
		_ = kw.Stop()
		if ctx.Err() != nil {
			return
		}
		w.setBroken(errors.New("watch of " + w.kv.Bucket() + " ended"))
		w.opts.Logger.Warn("kvview: watch ended; starting again", "bucket", w.kv.Bucket(), "after_revision", w.Applied())
		for {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			delay = min(2*delay, 5*time.Second)
			var err error
			if kw, err = w.kv.WatchAll(ctx, jetstream.ResumeFromRevision(w.Applied()+1)); err == nil {
				break
			}
			w.opts.Logger.Warn("kvview: watch failed to start", "bucket", w.kv.Bucket(), "err", err)
		}
		w.setBroken(nil)
		delay = w.opts.RestartDelay
	}
}

// consume applies updates until the watcher's channel closes.
func (w *Watch) consume(kw jetstream.KeyWatcher, loaded chan struct{}) {
	for e := range kw.Updates() {
		if e == nil { // the end of the initial values
			if loaded != nil {
				select {
				case <-loaded:
				default:
					close(loaded)
				}
			}
			continue
		}
		if e.Operation() == jetstream.KeyValuePut {
			w.apply.Put(e.Key(), e.Value(), e.Revision())
		} else {
			w.apply.Delete(e.Key(), e.Revision())
		}
		w.mu.Lock()
		w.applied = max(w.applied, e.Revision())
		close(w.notify)
		w.notify = make(chan struct{})
		w.mu.Unlock()
	}
}

func (w *Watch) setBroken(err error) {
	w.mu.Lock()
	w.broken = err
	w.mu.Unlock()
}

// Err says why the watch is not running now (it is being restarted), or
// nil while it runs.
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.broken
}

// Applied is the last bucket revision applied to the view.
func (w *Watch) Applied() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}

// Sync waits until the view holds every write the bucket had when Sync was
// called: after it, a reader sees whatever was written before, by any
// process.
//
// It asks the broker for the first write after the last one the view
// applied: when there is none (the common case: the bucket changes far
// less often than it is synced), the view is current, at the cost of a
// direct get whose "not found" is the stream leader's (leaderread), which
// the broker answers from its index without a scan. Only when the view is
// behind does Sync read the bucket's last revision (its stream's info) and
// wait for the view to apply it.
func (w *Watch) Sync(ctx context.Context) error {
	if w.subjects != "" {
		_, err := w.log.NextForSubject(ctx, w.subjects, w.Applied()+1)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", w.kv.Bucket(), err)
		}
	}
	rev, err := w.Revision(ctx)
	if err != nil {
		return err
	}
	if err := w.WaitApplied(ctx, rev); err != nil {
		return fmt.Errorf("sync %s: the view has applied revision %d of %d: %w", w.kv.Bucket(), w.Applied(), rev, errors.Join(ErrBehind, err))
	}
	return nil
}

// ErrBehind is in Sync's error when the broker answered and the view did
// not apply the bucket's last revision in time: the view is behind, as
// opposed to the broker not answering.
var ErrBehind = errors.New("the view is behind its bucket")

// Revision is the bucket's last revision now, as the broker says: what a
// view must have applied to hold every write made so far.
func (w *Watch) Revision(ctx context.Context) (uint64, error) {
	info, err := w.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("revision of %s: %w", w.kv.Bucket(), err)
	}
	return info.State.LastSeq, nil
}

// WaitApplied waits until the view has applied revision rev (or ctx ends).
func (w *Watch) WaitApplied(ctx context.Context, rev uint64) error {
	for {
		w.mu.Lock()
		applied, ch := w.applied, w.notify
		w.mu.Unlock()
		if applied >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the watch and waits for it.
func (w *Watch) Close() {
	w.cancel()
	<-w.done
}

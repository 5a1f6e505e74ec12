// Package audience keeps, in memory, who an operation is pushed to.
package audience

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/streams"
)

// Audience keeps every channel's subscriptions in memory, current through
// one long-lived watch of the subscriptions bucket, so the fan-out finds an
// operation's audience with no broker round trip. The caller MUST call Close.
type Audience struct {
	mu      sync.RWMutex
	subs    map[string]map[string]uint64 // channel → device → after_seq
	applied uint64                       // last bucket revision applied
	notify  chan struct{}                // closed and replaced on every update
	stream  jetstream.Stream             // the bucket's stream, for Sync
	log     *slog.Logger
	stop    context.CancelFunc
	done    chan struct{}
	ready   chan struct{}
}

// Open starts the watch and returns once the current subscriptions are
// loaded.
func Open(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Audience, error) {
	stream, err := js.Stream(ctx, "KV_"+streams.SubscriptionsBucket)
	if err != nil {
		return nil, fmt.Errorf("subscriptions stream: %w", err)
	}
	kv, err := js.KeyValue(ctx, streams.SubscriptionsBucket)
	if err != nil {
		return nil, fmt.Errorf("subscriptions bucket: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch subscriptions: %w", err)
	}
	a := &Audience{subs: map[string]map[string]uint64{}, notify: make(chan struct{}), stream: stream, log: log,
		stop: cancel, done: make(chan struct{}), ready: make(chan struct{})}
	go a.watch(w)
	select {
	case <-a.ready:
		return a, nil
	case <-ctx.Done():
		a.Close()
		return nil, ctx.Err()
	}
}

func (a *Audience) watch(w jetstream.KeyWatcher) {
	defer close(a.done)
	defer func() { _ = w.Stop() }()
	loaded := false
	for e := range w.Updates() {
		if e == nil {
			if !loaded {
				loaded = true
				close(a.ready)
			}
			continue
		}
		ch, dev, ok := devices.ParseSubscriptionKey(e.Key())
		a.mu.Lock()
		a.applied = max(a.applied, e.Revision())
		close(a.notify)
		a.notify = make(chan struct{})
		if !ok {
			a.mu.Unlock()
			continue
		}
		if e.Operation() == jetstream.KeyValuePut {
			var s devices.Subscription
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				a.log.Error("audience: skip malformed subscription", "key", e.Key(), "err", err)
			} else {
				if a.subs[ch] == nil {
					a.subs[ch] = map[string]uint64{}
				}
				a.subs[ch][dev] = s.AfterSeq
			}
		} else if m := a.subs[ch]; m != nil {
			delete(m, dev)
			if len(m) == 0 {
				delete(a.subs, ch)
			}
		}
		a.mu.Unlock()
	}
}

// Sync waits until the audience holds every subscription write the bucket
// had when Sync was called. Called after an operation was appended, it makes
// At see every subscription made before that operation, whichever ingest
// replica wrote it.
func (a *Audience) Sync(ctx context.Context) error {
	info, err := a.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("audience sync: %w", err)
	}
	for {
		a.mu.RLock()
		applied, ch := a.applied, a.notify
		a.mu.RUnlock()
		if applied >= info.State.LastSeq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// At lists, in key order, the devices of channelID that the operation at
// stream sequence seq is pushed to: those subscribed before it was
// appended. For a device that subscribed later it is history.
func (a *Audience) At(channelID string, seq uint64) []string {
	a.mu.RLock()
	out := make([]string, 0, len(a.subs[channelID]))
	for dev, after := range a.subs[channelID] {
		if after < seq {
			out = append(out, dev)
		}
	}
	a.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Close stops the watch and waits for it.
func (a *Audience) Close() {
	a.stop()
	<-a.done
}

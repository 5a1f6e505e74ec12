package pusher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/pushgo/gateway/schemas/streams"
)

// The broker pins a partition to whichever replica pulled first, so the
// first replica to start would send every partition while the others
// wait. balance spreads them: each replica keeps a key in PushersBucket
// fresh (that is all the bucket is for: counting the live replicas, N),
// and one that owns more than ceil(P/N) partitions hands one over per
// round, cleanly: it stops pulling that partition, lets what it took end
// and acknowledges it, then unpins the consumer, so a replica that is
// pulling gets the pin and starts where this one stopped, with nothing
// sent twice. Ownership itself stays the broker's pin: a replica that
// dies is replaced after the failover time whatever the bucket says.
func (p *Pusher) balance(ctx context.Context) error {
	kv, err := p.js.KeyValue(ctx, streams.PushersBucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", streams.PushersBucket, err)
	}
	id := nuid.Next()
	refresh := time.NewTicker(streams.PushersTTL / 5)
	defer refresh.Stop()
	next := time.Now().Add(p.cfg.BalanceInterval)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := kv.Put(pctx, id, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil && ctx.Err() == nil {
			p.log.Debug("pusher: presence not refreshed", "err", err)
		}
		cancel()
		if time.Now().After(next) {
			p.rebalance(ctx, kv)
			// Jittered, so replicas started together do not hand over in
			// the same instant.
			next = time.Now().Add(p.cfg.BalanceInterval/2 + rand.N(p.cfg.BalanceInterval))
		}
		select {
		case <-ctx.Done():
			uctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = kv.Delete(uctx, id) // gone now, not after the TTL
			cancel()
			return nil
		case <-refresh.C:
		}
	}
}

// rebalance hands over one partition if this replica owns more than its
// share.
func (p *Pusher) rebalance(ctx context.Context, kv jetstream.KeyValue) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys, err := kv.Keys(lctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return
	}
	replicas := max(1, len(keys))
	share := (p.cfg.Partitions + replicas - 1) / replicas
	owned := p.owned(lctx)
	if len(owned) <= share {
		return
	}
	pt := owned[len(owned)-1]
	p.log.Info("pusher: handing a partition over", "partition", pt.n, "owned", len(owned), "replicas", replicas, "share", share)
	pt.handOver(ctx)
}

// owned lists the partitions the broker has pinned to this replica now.
func (p *Pusher) owned(ctx context.Context) []*partition {
	var out []*partition
	for _, pt := range p.parts {
		if pin, _ := pt.pinned.Load().(string); pin != "" && pt.pinnedTo(ctx, pin) {
			out = append(out, pt)
		}
	}
	return out
}

// Owned lists the partitions this replica sends now, as the broker says.
func (p *Pusher) Owned(ctx context.Context) []int {
	var out []int
	for _, pt := range p.owned(ctx) {
		out = append(out, pt.n)
	}
	return out
}

// handOver hands pt to another replica without sending anything twice:
// it stops taking pt's operations but keeps pulling (so the pin stays
// here while it finishes), waits for what it took to be recorded (at most
// drainTimeout; longer, and it keeps the partition for a later round),
// acknowledges it and waits for the broker to have applied that
// (ackFloorSync; else, too, it keeps the partition), then stops pulling and
// unpins, so the broker pins a replica that is pulling, which resets to
// this floor.
func (pt *partition) handOver(ctx context.Context) {
	p := pt.p
	pt.releasing.Store(true)
	defer func() {
		// Cleared first, then set again if a stop has begun: drain sets
		// draining before releasing, so whichever order the two run in,
		// a stopping partition ends releasing (checked first, a stop
		// between the check and the clear lost its flag).
		pt.releasing.Store(false)
		if p.draining.Load() {
			pt.releasing.Store(true)
		}
	}()
	if !pt.waitSettled(ctx, drainTimeout) {
		return
	}
	if !pt.ackFloorSync(ctx) {
		return // kept for a later round: unpinned now, the next owner could start below the floor
	}
	if ep := pt.cur.Load(); ep != nil {
		ep.cancel() // whatever comes now is the next owner's
	}
	// Not pulling for longer than a pull lasts: another replica's pull is
	// the one the broker pins next.
	pt.loop.Hold(3*time.Second + p.cfg.Failover/2)
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if pin, _ := pt.pinned.Load().(string); !pt.pinnedTo(uctx, pin) {
		return // another replica holds it already: its pin is not this one's to drop
	}
	if err := p.opsStream.UnpinConsumer(uctx, pt.name, PriorityGroup); err != nil {
		p.log.Warn("pusher: unpin failed; the partition moves after the failover time", "partition", pt.n, "err", err)
	}
}

// waitSettled waits until pt.settled, at most bound; it reports whether
// it is.
func (pt *partition) waitSettled(ctx context.Context, bound time.Duration) bool {
	dctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for !pt.settled() {
		select {
		case <-dctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// settled reports whether every operation pt took is recorded and its
// intake is empty.
func (pt *partition) settled() bool {
	if pt.pending.Load() > 0 {
		return false
	}
	ep := pt.cur.Load()
	if ep == nil {
		return true
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.ops) == 0
}

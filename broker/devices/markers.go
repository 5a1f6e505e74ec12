package devices

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
)

// markersKept is how long a deleted key's delete marker stays in its
// bucket before SweepDeleteMarkers purges it (Options.MarkersKept, which
// tests shorten). It outlasts whatever may still act on the marker:
//
//   - the views that watch a bucket (the pusher's devices and audience)
//     apply a deletion within milliseconds of it; a process cut off from
//     the broker for longer than this resumes its watch past the purged
//     marker and keeps the deleted key until its restart, which costs
//     nothing for the keys deleted here (a device the idle sweep took has
//     no route; a removal's record deleted is one already an hour old,
//     covering only operations appended before its unsubscribe). The
//     device channels and provider tokens have no view: every read of
//     them is the bucket leader's;
//   - a compare-and-swap that read the marker (KeyValue.Create over a
//     deleted key writes at the marker's revision) lives within one
//     registry call (Options.Timeout, seconds; a sweep, sweepBound); one
//     that loses to the purge anyway fails as a lost race (cas.Lost), on
//     which every writer of the registry reads again and creates the key
//     from nothing;
//   - no record of the registry needs a marker: a removal's record
//     (Unsubscribe) is a value, kept devices.RemovalKept, and its marker
//     comes only once it is deleted.
//
// Past it a marker is only weight: about 200 bytes of store, an entry of
// every watch's first load and a tombstone in every view of the bucket,
// for good (one device rotating its FCM token 4,000 times left 4,001
// entries for one key).
const markersKept = time.Hour

// purgeBound bounds the purge of one bucket's markers in a
// SweepDeleteMarkers, so a bucket with a backlog (an older version's
// markers, at the first sweep after an upgrade) leaves time for the others;
// what is left goes at the next sweep.
const purgeBound = sweepBound / 4

// purgeTimeout bounds one purge request: the broker answers one in
// milliseconds, and a request it refuses for want of permission (a
// cluster's accounts.conf older than the purge grant) is never answered.
const purgeTimeout = 10 * time.Second

// marker is a delete marker, the latest entry of its key, at its revision.
type marker struct {
	key string
	rev uint64
}

// SweepDeleteMarkers purges the delete markers markersKept old from every
// bucket of the registry that deletes keys: PUSHGO_DEVICES (the idle
// sweep), PUSHGO_PROVIDER_TOKENS (a token released by a rebind or a route
// deleted, or retired), PUSHGO_DEVICE_CHANNELS (every unsubscribe) and
// PUSHGO_SUBSCRIPTIONS (every removal's record once deleted), so that a
// bucket's size tracks its live keys. Markers written by any version are
// purged. It returns how many it purged (a marker written over since its
// listing counts, its purge a no-op); an error of one bucket does not
// stop the others. It reads every bucket's latest entries once (headers
// only): ingest runs it after SweepIdleDevices, every hour. Every replica
// may run it: a marker another purged first is purged again, a no-op.
//
// Each marker's key is purged up to and including the marker's revision
// only, so a key written again after the listing (a token bound again, a
// channel subscribed again) keeps its new value. jetstream's PurgeDeletes
// purges the key's whole subject: with keys that come back, as these do,
// it removed the value written between its listing and its purge.
func (r *Registry) SweepDeleteMarkers(ctx context.Context) (int, error) {
	n := 0
	var errs []error
	for _, b := range []*leaderread.Bucket{r.devices, r.tokens, r.devChans, r.subs} {
		bctx, cancel := context.WithTimeout(ctx, purgeBound)
		k, err := r.purgeMarkers(bctx, b)
		cancel()
		n += k
		if err != nil {
			errs = append(errs, fmt.Errorf("purge the delete markers of %s: %w", b.KV().Bucket(), err))
		}
	}
	return n, errors.Join(errs...)
}

// purgeMarkers purges b's delete markers markersKept old and returns how
// many.
func (r *Registry) purgeMarkers(ctx context.Context, b *leaderread.Bucket) (int, error) {
	kv := b.KV()
	w, err := kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return 0, err
	}
	var old []marker
	err = eachLatest(ctx, w, func(e jetstream.KeyValueEntry) {
		// Judged by the broker's time of the marker against this clock,
		// as PurgeDeletes does.
		if e.Operation() != jetstream.KeyValuePut && time.Since(e.Created()) >= r.markersKept {
			old = append(old, marker{key: e.Key(), rev: e.Revision()})
		}
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	s, err := r.js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return 0, err
	}
	prefix := "$KV." + kv.Bucket() + "."
	n := 0
	for _, m := range old {
		if r.beforeMarkerPurge != nil {
			r.beforeMarkerPurge(kv.Bucket(), m.key)
		}
		// The key's messages below the marker's revision plus one: the
		// marker (and, in a bucket keeping history, the values before it),
		// never a later write.
		pctx, cancel := context.WithTimeout(ctx, purgeTimeout)
		err := s.Purge(pctx, jetstream.WithPurgeSubject(prefix+m.key), jetstream.WithPurgeSequence(m.rev+1))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return n, fmt.Errorf("no answer to a purge in %s (a cluster's accounts.conf without ingest's $JS.API.STREAM.PURGE grant: deploy/nats/accounts.conf): %w", purgeTimeout, err)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

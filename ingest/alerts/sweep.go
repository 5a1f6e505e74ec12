package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/streams"
)

// A key is kept while its Event is open, however long, and for
// Options.Keep (PUSHGO_RETENTION: as long as the log keeps the Event's
// close) after its close; then the sweep removes it. What a key of a
// closed Event is used for until then: nothing the gateway's answers turn
// on. A late resolve of a closed Event finds it closed and is Absent, as
// is one that finds no key; a re-fire opens a new Event either way (its
// first gen, when the key was removed, is the claim's time in ms, not 1:
// never the id of an Event the key opened before); Dynatrace's
// GET /api/v2/events/{correlationId} reads the Event by its id, not by
// the key. An alert group's record is removed when it has no member left
// (at the notification that empties it), and by the sweep when no
// notification wrote it for Options.Keep and no member names an Event
// still open.
//
// A removal is a purge of the key's subject up to the revision the sweep
// read (no marker is left: the broker forgets the subject): a key written
// since (another replica's claim of the next gen) is not touched, and a
// write that expected the removed revision fails as a lost race, reads
// the key again, finds none and claims it anew. The sweep runs on one
// ingest replica at a time (a lease in the bucket, key sweepLease), at
// the start and then every Options.SweepEvery, over every key of the
// bucket: those stored by an earlier version too.

// EventStater reads the state of an Event (an *oplog.Writer).
type EventStater interface {
	EventStatus(ctx context.Context, channelID, eventID string) (oplog.EventStatus, error)
}

// sweepLease is the bucket key of the sweep's lease: no alert key (three
// dot-separated parts) is ever named so.
const sweepLease = "sweep"

// lease is the value of sweepLease.
type lease struct {
	Holder string `json:"holder"`
	Until  int64  `json:"until"` // ms
}

// SweepStats says what a sweep did.
type SweepStats struct {
	Keys, Groups, Markers int // removed
	Kept                  int // read and kept
}

// Run sweeps the bucket (Sweep) at once and then every
// Options.SweepEvery, while this replica holds the sweep's lease, until
// ctx ends. Without an EventStater (Options.Events) or with a negative
// SweepEvery it returns at once.
func (t *Tracker) Run(ctx context.Context) {
	if t.states == nil || t.opts.SweepEvery < 0 {
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	holder := hex.EncodeToString(id[:])
	tick := time.NewTicker(t.opts.SweepEvery)
	defer tick.Stop()
	for {
		ok, err := t.takeLease(ctx, holder)
		switch {
		case err != nil && ctx.Err() == nil:
			t.log.Warn("alerts: the alert keys' sweep lease not read; trying again later", "err", err)
		case ok:
			st, err := t.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				t.log.Warn("alerts: alert keys' sweep not finished; trying again later", "err", err)
			}
			if n := st.Keys + st.Groups + st.Markers; n > 0 {
				t.log.Info("alerts: removed alert keys of closed events", "keys", st.Keys, "groups", st.Groups,
					"markers", st.Markers, "kept", st.Kept)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// takeLease takes (or renews) the sweep's lease for holder, by
// compare-and-swap: ok when holder holds it now.
func (t *Tracker) takeLease(ctx context.Context, holder string) (bool, error) {
	now := t.opts.Now().UnixMilli()
	next, err := json.Marshal(lease{Holder: holder, Until: now + 3*t.opts.SweepEvery.Milliseconds()})
	if err != nil {
		return false, err
	}
	kve, err := t.keys.Latest(ctx, sweepLease)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		_, err = t.kv.Create(ctx, sweepLease, next)
		return err == nil, ignoreLost(err)
	}
	if err != nil {
		return false, err
	}
	var cur lease
	if json.Unmarshal(kve.Value(), &cur) == nil && cur.Holder != holder && cur.Until > now {
		return false, nil
	}
	_, err = t.kv.Update(ctx, sweepLease, next, kve.Revision())
	return err == nil, ignoreLost(err)
}

func ignoreLost(err error) error {
	if err == nil || errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return nil
	}
	return err
}

// Sweep reads every key of the bucket once and removes those that are
// due: the key of an Event closed Options.Keep ago or more (or gone from
// the log and the projection, its claim as old), an alert group's record
// with no member, or unwritten for Options.Keep with none naming an open
// Event, and a deletion's marker (an operator's). A key whose Event's
// state cannot be read is kept, for a later sweep. It needs an
// EventStater (Options.Events).
func (t *Tracker) Sweep(ctx context.Context) (SweepStats, error) {
	var st SweepStats
	if t.states == nil {
		return st, errors.New("alerts: no event states to sweep by")
	}
	w, err := t.kv.WatchAll(ctx)
	if err != nil {
		return st, err
	}
	defer func() { _ = w.Stop() }()
	now := t.opts.Now()
	var firstErr error
	for {
		var kve jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return st, errors.New("alerts: the sweep's watch ended")
			}
			kve = e
		}
		if kve == nil { // every key read
			return st, firstErr
		}
		removed, err := t.sweepOne(ctx, kve, now, &st)
		var refused purgeError
		if errors.As(err, &refused) {
			// Refused or unanswered: every other would be too (a broker
			// whose accounts.conf predates the permission).
			return st, err
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if !removed && err == nil {
			st.Kept++
		}
	}
}

// sweepOne removes kve's key when it is due.
func (t *Tracker) sweepOne(ctx context.Context, kve jetstream.KeyValueEntry, now time.Time, st *SweepStats) (bool, error) {
	bk := kve.Key()
	if kve.Operation() != jetstream.KeyValuePut {
		if err := t.purge(ctx, bk, kve.Revision()); err != nil {
			return false, err
		}
		st.Markers++
		return true, nil
	}
	parts := strings.SplitN(bk, ".", 3)
	if len(parts) != 3 {
		return false, nil // the lease
	}
	channelID, source := parts[0], parts[1]
	keep := t.opts.Keep
	if strings.HasSuffix(source, groupSuffix) {
		var rec groupRecord
		if err := json.Unmarshal(kve.Value(), &rec); err != nil {
			t.log.Warn("alerts: an undecodable group record kept", "key", bk, "err", err)
			return false, nil
		}
		if len(rec.Members) > 0 {
			if now.Sub(kve.Created()) < keep {
				return false, nil
			}
			for _, m := range rec.Members {
				due, err := t.due(ctx, channelID, m.Event, now, kve.Created())
				if err != nil || !due {
					return false, err
				}
			}
		}
		if err := t.purge(ctx, bk, kve.Revision()); err != nil {
			return false, err
		}
		t.forgetGroup(bk)
		st.Groups++
		return true, nil
	}
	var e entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		t.log.Warn("alerts: an undecodable alert key kept", "key", bk, "err", err)
		return false, nil
	}
	// Its Event was created at the claim or later, and closed later
	// still: a claim younger than Keep names an Event closed less long.
	if now.UnixMilli()-e.ClaimedAt < keep.Milliseconds() {
		return false, nil
	}
	due, err := t.due(ctx, channelID, e.EventID, now, time.UnixMilli(e.ClaimedAt))
	if err != nil || !due {
		return false, err
	}
	if err := t.purge(ctx, bk, kve.Revision()); err != nil {
		return false, err
	}
	t.mu.Lock()
	if c, ok := t.cache[bk]; ok && c.rev <= kve.Revision() {
		delete(t.cache, bk)
	}
	t.mu.Unlock()
	st.Keys++
	return true, nil
}

// due reports whether an Event's key may go: the Event was closed
// Options.Keep ago or more (or aged out of the log closed), or is in
// neither the log nor the projection though named since named (ms) more
// than the claim grace ago (a create that never came, or aged out). An
// open Event's never is.
func (t *Tracker) due(ctx context.Context, channelID, eventID string, now, named time.Time) (bool, error) {
	if eventID == "" {
		return true, nil
	}
	s, err := t.states.EventStatus(ctx, channelID, eventID)
	switch {
	case err != nil:
		return false, err
	case !s.Exists:
		return now.Sub(named) >= t.opts.ClaimGrace, nil
	case !s.Closed:
		return false, nil
	case s.ClosedAt.IsZero():
		return true, nil
	}
	return now.Sub(s.ClosedAt) >= t.opts.Keep, nil
}

// purge removes bucket key bk's messages up to revision rev, leaving no
// marker: a later write of the key (a higher revision) stays.
func (t *Tracker) purge(ctx context.Context, bk string, rev uint64) error {
	err := t.stream.Purge(ctx, jetstream.WithPurgeSubject(keySubjects+bk), jetstream.WithPurgeSequence(rev+1))
	if err != nil {
		return purgeError{err}
	}
	return nil
}

// purgeError is a purge the broker refused or did not answer: the ingest
// role's permission to purge PUSHGO_ALERT_KEYS's subjects
// ($JS.API.STREAM.PURGE.KV_PUSHGO_ALERT_KEYS) is missing from a cluster's
// accounts.conf older than the sweep.
type purgeError struct{ err error }

func (e purgeError) Error() string {
	return "purge (the ingest role needs $JS.API.STREAM.PURGE.KV_" + streams.AlertKeysBucket + ": see deploy/nats/accounts.conf): " + e.err.Error()
}

func (e purgeError) Unwrap() error { return e.err }

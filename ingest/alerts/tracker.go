// Package alerts maps the alert keys of monitoring tools (a Dynatrace
// problem's eventType+title+entity, an Alertmanager fingerprint, a PagerDuty
// dedup_key) to the Event that currently represents each, and turns a
// tool's "firing", "acknowledged" and "resolved" into ordinary event
// operations appended through the same writer as /event/*.
//
// A key lives in the PUSHGO_ALERT_KEYS bucket as <channel>.<source>.<hash>
// → {event_id, op_id, gen, acked, since}. The entry is written only when a key
// opens a new Event (its first report, or the first after its Event
// closed) and when its Event is acknowledged, never on a refresh, so the
// hot path of a tool re-sending open alerts is one append (or none when
// nothing changed). The entry is written before the
// Event's create and names the create's op_id, so a crash between the two
// is repaired by the next report: the update finds no event and the create
// is appended with the recorded op_id, whose derived event id is the one
// the entry names. Two replicas opening one key race on the entry's
// revision; the loser re-reads it and updates the winner's Event.
//
// The same bucket keeps each alert group's record (groups.go): which keys
// a tool's notifications of the group named lately, so that an alert that
// leaves its group without its resolve has its Event closed.
//
// A key is kept while its Event is open and for Options.Keep after its
// close; a sweep (sweep.go) removes it then, and a group's record once it
// has no member.
package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/pushgo/gateway/broker/cas"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/broker/storage"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Appender appends validated operations (an *oplog.Writer).
type Appender interface {
	Append(ctx context.Context, v *ops.Validated) (oplog.Result, *apierr.Error)
}

// AsidePublisher publishes a message to another stream than the log and
// waits for its PubAck (an *oplog.Writer's PublishAside). When the
// Appender is one, a key's claim goes through it, pipelined with the
// appends, instead of through nats.go's key-value API.
type AsidePublisher interface {
	PublishAside(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error)
}

// Key names one alert of one tool in one channel.
type Key struct {
	ChannelID string
	// Source is the tool: "dynatrace", "alertmanager", "pagerduty". Keys of
	// different sources never meet.
	Source string
	// Value is the tool's own identity of the alert (fingerprint,
	// dedup_key, ...), any string.
	Value string
}

// hash is the key's stable digest: bucket keys and op_ids must be short
// and of a restricted alphabet, tool keys are neither.
func (k Key) hash() string {
	sum := sha256.Sum256([]byte(k.Source + "\x00" + k.Value))
	return hex.EncodeToString(sum[:15])
}

func (k Key) bucketKey() string { return k.ChannelID + "." + k.Source + "." + k.hash() }

// opID is the op_id of the create of the key's gen-th Event.
func (k Key) opID(gen uint64) string {
	return k.Source + ":" + k.hash() + ":" + strconv.FormatUint(gen, 10)
}

// entry is the bucket value of a key.
type entry struct {
	EventID string `json:"event_id"`
	OpID    string `json:"op_id"`
	Gen     uint64 `json:"gen"`
	// ClaimedAt (ms) tells a create still on its way (a young claim) from
	// one that will never come or has aged out of the log (an old one).
	ClaimedAt int64 `json:"claimed_at"`
	// Acked: the Event was acknowledged (Tracker.Acknowledge). A report
	// with WhenAcknowledged set then leaves it acknowledged. A new Event
	// (the next gen) starts without it.
	Acked bool `json:"acked,omitzero"`
	// Since (ms) is when the occurrence the Event reports began
	// (Report.Since); 0 when the source does not say (or the entry is
	// older than the field).
	Since int64 `json:"since,omitzero"`
	rev   uint64
}

// Outcome says what a report did.
type Outcome struct {
	EventID string
	// Created: a new Event was opened. Updated: the open Event was updated
	// (or refreshed). Unchanged: the open Event already said this; nothing
	// was appended. Absent: the key had no open Event; nothing was appended
	// (acknowledge or resolve of an unknown key).
	Created, Updated, Unchanged, Absent bool
	// Seq is the stream sequence of the appended (or current) operation.
	Seq uint64
}

// Options configure a Tracker.
type Options struct {
	// CachedKeys bounds the in-memory key cache. Default 100,000.
	CachedKeys int
	// ClaimGrace is how long after a key's claim its Event's create may
	// still be on its way (another request's append in flight). Within it
	// an acknowledge or resolve that finds no Event answers "retry" rather
	// than "nothing to do", which would lose it. Default 15s (three append
	// timeouts).
	ClaimGrace time.Duration
	// AbsentAfter is how long an alert must have gone unnamed by its
	// group's notifications before a complete notification that leaves it
	// out closes its Event (SettleGroup): the two servers of a
	// high-availability pair notify one group a peer timeout apart (15 s
	// by default), and the later may not hold an alert the earlier named.
	// Default 1 minute; negative: at once.
	AbsentAfter time.Duration
	// CachedGroupMembers bounds the group records kept in memory, by their
	// members (a member counts one more per 128 bytes of its name, a
	// record at least one; one larger than the bound is still kept,
	// alone). Default 200,000 (some 30 MB).
	CachedGroupMembers int
	// Keep is how long the key of a closed Event is kept after its close
	// (and an alert group's record after its last notification, once no
	// member names an open Event) before the sweep removes it (Run,
	// sweep.go). The gateway passes PUSHGO_RETENTION. Default 30 days.
	Keep time.Duration
	// SweepEvery is how often Run sweeps the bucket. Default Keep/10, at
	// most an hour and at least a second; negative: Run never sweeps.
	SweepEvery time.Duration
	// Events reads the state of an Event for the sweep. Default the
	// Appender, when it is an EventStater (an *oplog.Writer); none: Run
	// never sweeps.
	Events EventStater
	// Now is the clock of claims and group records. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Tracker opens, refreshes and closes the Events of alert keys. It is safe
// for concurrent use.
type Tracker struct {
	kv jetstream.KeyValue
	// keys reads the bucket as its leader holds it where a replica behind
	// would lose a report (onOpen).
	keys *leaderread.Bucket
	app  Appender
	pub  AsidePublisher // nil: claims through kv
	// stream is the bucket's stream, which the sweep purges keys of.
	stream jetstream.Stream
	states EventStater // nil: no sweep
	log    *slog.Logger
	max    int
	opts   Options

	mu     sync.Mutex
	cache  map[string]entry
	groups map[string]groupRecord // group records (SettleGroup)
	// groupWeight is the groups' members (groupWeight each).
	groupWeight int

	hooks testHooks
}

// testHooks run, when set (by tests only, before the Tracker is used), at
// the points a race between replicas turns on.
type testHooks struct {
	betweenAckWrites func() // between an acknowledge's update and its record
	beforeUpdate     func() // between Open's read of the key and its update
}

// New returns a Tracker over the alert key bucket (which streams.Ensure
// created).
func New(ctx context.Context, js jetstream.JetStream, app Appender, opts Options) (*Tracker, error) {
	keys, err := leaderread.OpenBucket(ctx, js, streams.AlertKeysBucket)
	if err != nil {
		return nil, err
	}
	kv := keys.KV()
	if opts.CachedKeys <= 0 {
		opts.CachedKeys = 100_000
	}
	if opts.ClaimGrace <= 0 {
		opts.ClaimGrace = 15 * time.Second
	}
	switch {
	case opts.AbsentAfter == 0:
		opts.AbsentAfter = time.Minute
	case opts.AbsentAfter < 0:
		opts.AbsentAfter = 0
	}
	if opts.CachedGroupMembers <= 0 {
		opts.CachedGroupMembers = 200_000
	}
	if opts.Keep <= 0 {
		opts.Keep = 30 * 24 * time.Hour
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = min(max(opts.Keep/10, time.Second), time.Hour)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{kv: kv, keys: keys, app: app, log: opts.Logger, max: opts.CachedKeys, opts: opts, cache: map[string]entry{},
		groups: map[string]groupRecord{}}
	t.pub, _ = app.(AsidePublisher)
	t.states = opts.Events
	if t.states == nil {
		t.states, _ = app.(EventStater)
	}
	if t.stream, err = js.Stream(ctx, "KV_"+streams.AlertKeysBucket); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", streams.AlertKeysBucket, err)
	}
	return t, nil
}

// Report is one "firing" report of a key.
type Report struct {
	Key Key
	// Event holds what the Event says: title, status, message, severity,
	// event_time, and optionally thing_id, description, tags, images,
	// attrs, started_at (used on create only). ChannelID, OpID, EventID
	// and Password are set by the Tracker.
	Event ops.EventRequest
	// ContentHash identifies what the report says (see
	// ops.Validated.ContentHash): a report equal to the open Event's latest
	// is not appended, unless Deadline is set.
	ContentHash string
	// Deadline, when set, is the Event's new deadline (ms): the gateway
	// closes it with status timed_out when it passes. A report with a
	// deadline is always appended (as a background refresh when unchanged)
	// because it moves the deadline.
	Deadline *int64
	// LinkVerified: Event.ThingID was just read as an active Thing (see
	// ops.Validated.LinkVerified).
	LinkVerified bool
	// WhenAcknowledged, when set, is what the report says to an Event that
	// was acknowledged (Tracker.Acknowledge) and is still open: it is
	// appended as a background update (ops.EventPayload.Refresh), so the
	// Event stays acknowledged and no device is alerted again, as
	// PagerDuty's acknowledged incident takes new triggers into its log
	// without notifying. It carries the acknowledged status and message;
	// WhenAcknowledgedHash is its ContentHash (an identical repeat appends
	// nothing). A closed Event is not held: the report opens a new one.
	// Such a report reads the key on the bucket's leader, not from this
	// process's memory: the acknowledge may have gone through another
	// replica.
	WhenAcknowledged     *ops.EventRequest
	WhenAcknowledgedHash string
	// Since (ms), when not zero, is when this occurrence of the alert
	// began (Alertmanager's startsAt, the same at every resend while it
	// fires). A report of a later occurrence than the open Event's is a
	// new incident whose previous one's resolve never came (cut by the
	// sender's max_alerts, or a receiver that sends no resolves): the open
	// Event is closed with Superseded and a new one opened, which alerts
	// again (the content of the two may be equal, which as an update
	// would append nothing).
	Since int64
	// Superseded is the close appended to the open Event of an earlier
	// occurrence (required with Since).
	Superseded *ops.EventRequest
	// quiet: append as a background update (Open's held report).
	quiet bool
}

// held is r as an acknowledged Event takes it: WhenAcknowledged, appended
// as a background update.
func (r Report) held() Report {
	return Report{Key: r.Key, Event: *r.WhenAcknowledged, ContentHash: r.WhenAcknowledgedHash, LinkVerified: r.LinkVerified, quiet: true}
}

// sameOccurrenceSlack is how much later a report's Since may be than its
// open Event's and still be the same occurrence: the two servers of a
// high-availability pair (Prometheus, Grafana) each evaluate the rule and
// date the alert's start by their own evaluation, up to an evaluation
// interval apart. A re-firing that began within it of the previous start
// is taken as the same occurrence.
const sameOccurrenceSlack = time.Minute

// laterOccurrence reports whether since (ms; 0: unknown) begins an
// occurrence after the one e's Event reports: later than its Since by
// more than sameOccurrenceSlack, or, for an entry written before Since
// was kept, later than the entry's claim (which came after its
// occurrence began) by as much (the sender's clock is not ours).
func (e entry) laterOccurrence(since int64) bool {
	if since <= 0 {
		return false
	}
	if e.Since > 0 {
		return since > e.Since+sameOccurrenceSlack.Milliseconds()
	}
	return e.ClaimedAt > 0 && since > e.ClaimedAt+sameOccurrenceSlack.Milliseconds()
}

// attempts bounds the open/update/create loop: each turn is a lost race
// with another replica on the same key, which resolves in one or two (Open's
// first turn may also be a claim of a key that exists, not yet read).
const attempts = 7

// Open opens an Event for r.Key, or updates the open one.
func (t *Tracker) Open(ctx context.Context, r Report) (Outcome, *apierr.Error) {
	for i := range attempts {
		// The first turn reads only this process's memory: a key it has not
		// seen is most often a new alert (an outage's storm of them), so it
		// is claimed at once, and the bucket is read only when the claim
		// loses (the key exists: opened by another replica, or before a
		// restart). That saves a new alert a broker round trip.
		read := cacheOnly
		switch {
		case r.WhenAcknowledged != nil && i == 0:
			t.forget(r.Key)
			read = fromLeader
		case i > 0:
			// A turn after a lost race reads what won it, on the leader:
			// a follower (a node restarted a moment before answers from
			// 90% caught up) may not hold the winner's claim yet, or hold
			// the previous Event's entry, and every turn that read it
			// lost again until the last answered 503.
			read = fromLeader
		}
		e, ok, err := t.lookup(ctx, r.Key, read)
		if err != nil {
			return Outcome{}, t.unavailable("read", r.Key, err)
		}
		if !ok {
			gen := t.firstGen()
			e = entry{Gen: gen, OpID: r.Key.opID(gen), Since: r.Since}
			e.EventID = ids.DeriveEntityID(r.Key.ChannelID, string(ops.EventCreate), e.OpID)
			// Validated before the claim: a report refused (too large,
			// invalid) leaves no key behind to hold off its resolve.
			v, aerr := t.createOp(r, e)
			if aerr != nil {
				return Outcome{}, aerr
			}
			if err := t.claim(ctx, r.Key, &e, 0); err != nil {
				if cas.Lost(err) {
					continue // another report opened it first
				}
				return Outcome{}, t.unavailable("claim", r.Key, err)
			}
			out, aerr, retry := t.appendCreate(ctx, v)
			if retry {
				continue
			}
			return out, aerr
		}
		if r.Superseded != nil && e.laterOccurrence(r.Since) {
			// A later occurrence: its predecessor is closed (already
			// closed through another replica: nothing to do), then the
			// next gen is opened as after any close.
			_, aerr := t.closeEvent(ctx, r.Key, e, *r.Superseded)
			switch {
			case aerr != nil && aerr.Code == apierr.EventNotFound && t.young(e):
				// Its create is on its way (another request's): closing
				// nothing now would leave it open for good once it lands.
				return Outcome{}, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "the alert's event is being created; retry", RetryAfter: 1}
			case aerr != nil && aerr.Code != apierr.EventClosed && aerr.Code != apierr.EventNotFound:
				return Outcome{}, aerr
			}
			out, aerr, retry := t.openNext(ctx, r, e)
			if retry {
				continue
			}
			return out, aerr
		}
		u := r
		if e.Acked && r.WhenAcknowledged != nil {
			u = r.held()
		}
		if t.hooks.beforeUpdate != nil {
			t.hooks.beforeUpdate()
		}
		out, aerr := t.update(ctx, u, e)
		if aerr == nil {
			if r.WhenAcknowledged != nil && !u.quiet && out.Updated {
				return t.holdIfAcked(ctx, r, e, out)
			}
			return out, nil
		}
		switch {
		case aerr.Code == apierr.EventNotFound && t.young(e):
			// The entry was written and its create not (yet) appended:
			// another request's create in flight, or a process that died
			// in between. Appending it (idempotent by op_id) settles both.
			v, aerr := t.createOp(r, e)
			if aerr != nil {
				return Outcome{}, aerr
			}
			out, aerr, retry := t.appendCreate(ctx, v)
			if retry {
				continue
			}
			return out, aerr
		case aerr.Code == apierr.EventNotFound, aerr.Code == apierr.EventClosed:
			// Closed, or an old claim whose Event is not in the log (aged
			// out with the retention, or never created).
			out, aerr, retry := t.openNext(ctx, r, e)
			if retry {
				continue
			}
			return out, aerr
		}
		return Outcome{}, aerr
	}
	return Outcome{}, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "too many concurrent reports of this alert; retry", RetryAfter: 1}
}

// holdIfAcked puts right a report with WhenAcknowledged that read its key
// before an acknowledge recorded itself and was appended after the
// acknowledge's own check (out), as news naming the Event firing: read
// again on the leader, a key that now says acknowledged gets the held
// report appended after it (a background update), so the Event ends
// acknowledged. The devices were told of the report already; that is not
// undone. Its outcome is the held update's, or out when there is nothing
// to put right. When the key cannot be read or the held report not
// appended, the answer is "retry": the sender's retry reads the key as
// acknowledged and is held (answered success, nobody would put it right).
func (t *Tracker) holdIfAcked(ctx context.Context, r Report, e entry, out Outcome) (Outcome, *apierr.Error) {
	cur, ok, err := t.lookup(ctx, r.Key, fromLeader)
	if err != nil {
		return Outcome{}, t.unavailable("read", r.Key, err)
	}
	if !ok || !cur.Acked || cur.EventID != e.EventID {
		return out, nil
	}
	held, aerr := t.update(ctx, r.held(), cur)
	switch {
	case aerr != nil && aerr.Code == apierr.EventClosed:
		return out, nil // resolved meanwhile: nothing to keep acknowledged
	case aerr != nil:
		t.log.Warn("alerts: a report appended after an acknowledge not held yet", "channel_id", r.Key.ChannelID,
			"source", r.Key.Source, "code", aerr.Code)
		return Outcome{}, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "the alert was acknowledged meanwhile; retry", RetryAfter: 1}
	}
	return held, nil
}

// firstGen is the gen of a key's first Event: the time in ms. A key is
// removed once its Event has been closed for Options.Keep (sweep.go), and
// its next report starts over from firstGen: a counter from 1 would give
// the new Event the id of the key's first one, which the projection and
// the apps may still hold.
func (t *Tracker) firstGen() uint64 {
	return uint64(max(t.opts.Now().UnixMilli(), 1))
}

// openNext opens r's Event as the key's next gen after e's (closed or
// gone): a new Event under a new id, so an old incident's snapshot is
// never reopened. retry reports a lost race (the entry moved on).
func (t *Tracker) openNext(ctx context.Context, r Report, e entry) (Outcome, *apierr.Error, bool) {
	next := entry{Gen: e.Gen + 1, OpID: r.Key.opID(e.Gen + 1), Since: r.Since}
	next.EventID = ids.DeriveEntityID(r.Key.ChannelID, string(ops.EventCreate), next.OpID)
	v, aerr := t.createOp(r, next)
	if aerr != nil {
		return Outcome{}, aerr, false
	}
	if err := t.claim(ctx, r.Key, &next, e.rev); err != nil {
		t.forget(r.Key)
		if cas.Lost(err) {
			return Outcome{}, nil, true
		}
		return Outcome{}, t.unavailable("claim", r.Key, err), false
	}
	return t.appendCreate(ctx, v)
}

// createOp is the create of e's Event for r, validated.
func (t *Tracker) createOp(r Report, e entry) (*ops.Validated, *apierr.Error) {
	req := r.Event
	req.ChannelID, req.OpID, req.EventID, req.Password = &r.Key.ChannelID, &e.OpID, nil, nil
	req.EndedAt = nil
	v, aerr := ops.ValidateIntegrationEvent(ops.EventCreate, &req)
	if aerr != nil {
		return nil, aerr
	}
	v.ContentHash, v.LinkVerified = r.ContentHash, r.LinkVerified
	v.Payload.(*ops.EventPayload).Deadline = r.Deadline
	return v, nil
}

// appendCreate appends v, the create of an Event (createOp). retry
// reports a lost race: the Event exists already (another replica created
// it), so the caller should go round again and update it.
func (t *Tracker) appendCreate(ctx context.Context, v *ops.Validated) (Outcome, *apierr.Error, bool) {
	res, aerr := t.app.Append(ctx, v)
	switch {
	case aerr != nil && aerr.Code == apierr.OpIDConflict:
		return Outcome{}, nil, true
	case aerr != nil:
		return Outcome{}, aerr, false
	case res.Replayed:
		// This very create was appended before (a retried report); what it
		// says may since have changed: update it.
		return Outcome{}, nil, true
	}
	return Outcome{EventID: res.EntityID, Created: true, Seq: res.Seq}, nil, false
}

// update appends r as an update of e's Event.
func (t *Tracker) update(ctx context.Context, r Report, e entry) (Outcome, *apierr.Error) {
	req := r.Event
	req.ChannelID, req.EventID, req.OpID, req.Password = &r.Key.ChannelID, &e.EventID, nil, nil
	req.StartedAt, req.EndedAt = nil, nil
	v, aerr := ops.ValidateIntegrationEvent(ops.EventUpdate, &req)
	if aerr != nil {
		return Outcome{}, aerr
	}
	v.ContentHash, v.LinkVerified = r.ContentHash, r.LinkVerified
	v.RefreshIfUnchanged = r.Deadline != nil
	p := v.Payload.(*ops.EventPayload)
	p.Deadline, p.Refresh = r.Deadline, r.quiet
	res, aerr := t.app.Append(ctx, v)
	if aerr != nil {
		return Outcome{}, aerr
	}
	return Outcome{EventID: e.EventID, Updated: !res.Unchanged, Unchanged: res.Unchanged, Seq: res.Seq}, nil
}

// Acknowledge appends req as an update of the key's open Event
// (PagerDuty's acknowledge) and records in the key's entry that the Event
// was acknowledged, for the reports with WhenAcknowledged that follow. A
// key with no open Event is Absent: nothing is appended. When the record
// fails after the append, the error asks for a retry, which appends
// nothing (the same content) and records again.
//
// The update comes first and the record after it, so a trigger is held
// only once the acknowledge is in the log: a failed acknowledge leaves
// triggers alerting, never silenced. A trigger appended between the two
// (it read no record) names the Event firing after its acknowledge: once
// recorded, the acknowledge is appended again as a background update
// unless it is still the Event's latest content, so the Event ends
// acknowledged. (A trigger that read the key before the record and lands
// after that check is put right by Open, which reads the key again.)
func (t *Tracker) Acknowledge(ctx context.Context, k Key, req ops.EventRequest, contentHash string) (Outcome, *apierr.Error) {
	return t.onOpen(ctx, k, func(e entry) (Outcome, *apierr.Error) {
		if !e.Acked {
			// Read from this process's memory, the entry may be from before
			// an acknowledge through another replica: whether this one is a
			// re-sent one is the leader's to say.
			cur, ok, err := t.lookup(ctx, k, fromLeader)
			if err != nil {
				return Outcome{}, t.unavailable("read", k, err)
			}
			if ok && cur.EventID == e.EventID {
				e = cur
			}
		}
		// Acknowledged already (a re-sent acknowledge, after a held
		// report changed the Event's latest content): no alert again.
		ack := Report{Key: k, Event: req, ContentHash: contentHash, quiet: e.Acked}
		out, aerr := t.update(ctx, ack, e)
		if aerr != nil {
			return out, aerr
		}
		if t.hooks.betweenAckWrites != nil {
			t.hooks.betweenAckWrites()
		}
		if err := t.markAcked(ctx, k, e); err != nil {
			return Outcome{}, t.unavailable("acknowledge", k, err)
		}
		ack.quiet = true
		if _, aerr := t.update(ctx, ack, e); aerr != nil && aerr.Code != apierr.EventClosed {
			return Outcome{}, aerr
		}
		return out, nil
	})
}

// EventOf returns the id of the Event key k names now (ok false: none),
// read as Acknowledge and Close find it: for a caller that must read the
// Event before reporting on it (a report that leaves a field as it is,
// which the operation itself cannot leave out).
func (t *Tracker) EventOf(ctx context.Context, k Key) (eventID string, ok bool, err error) {
	e, ok, err := t.lookup(ctx, k, absentOnLeader)
	if err != nil || !ok {
		return "", false, err
	}
	return e.EventID, true, nil
}

// markAcked sets Acked in the key's entry, which names e's Event, by
// compare-and-swap on its revision. The entry may have been read from
// this process's memory, its revision behind another replica's write: it
// is then read again on the leader, and left as it is when it names
// another Event (the key moved on to its next gen meanwhile).
func (t *Tracker) markAcked(ctx context.Context, k Key, e entry) error {
	for range attempts {
		if e.Acked {
			return nil
		}
		e.Acked = true
		err := t.rewrite(ctx, k, &e)
		if err == nil || !cas.Lost(err) {
			return err
		}
		t.forget(k)
		cur, ok, err := t.lookup(ctx, k, fromLeader)
		if err != nil {
			return err
		}
		if !ok || cur.EventID != e.EventID {
			return nil
		}
		e = cur
	}
	return errors.New("the key's entry kept changing")
}

// rewrite writes e as the key's entry by compare-and-swap on e.rev (0: a
// create), sets e.rev to the new revision and remembers it.
func (t *Tracker) rewrite(ctx context.Context, k Key, e *entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	bk := k.bucketKey()
	rev, err := t.writeKey(ctx, bk, b, e.rev)
	if err != nil {
		return err
	}
	e.rev = rev
	t.remember(bk, *e)
	return nil
}

// Close closes the key's open Event with req (resolved). A key with no
// open Event is Absent: nothing is appended, so a repeated or unknown
// resolve is accepted and changes nothing. So is the resolve of an
// occurrence that ended (req.EndedAt) before the open Event's began
// (Report.Since): its Event was closed when the open one superseded it.
func (t *Tracker) Close(ctx context.Context, k Key, req ops.EventRequest) (Outcome, *apierr.Error) {
	return t.onOpen(ctx, k, func(e entry) (Outcome, *apierr.Error) {
		if e.Since > 0 && req.EndedAt != nil && int64(*req.EndedAt) < e.Since {
			return Outcome{Absent: true}, nil
		}
		return t.closeEvent(ctx, k, e, req)
	})
}

// CloseEnded is Close for a source whose reports say when an occurrence
// ended (req.EndedAt) but carry no start of their own that Report.Since
// could keep (Dynatrace's startTime may be the sender's "now" at every
// report): an open Event claimed after that end by more than
// sameOccurrenceSlack reports a later occurrence than the one that ended,
// so a stale end (re-sent after the problem came back) leaves it open and
// is Absent.
func (t *Tracker) CloseEnded(ctx context.Context, k Key, req ops.EventRequest) (Outcome, *apierr.Error) {
	return t.onOpen(ctx, k, func(e entry) (Outcome, *apierr.Error) {
		if req.EndedAt != nil && e.ClaimedAt > int64(*req.EndedAt)+sameOccurrenceSlack.Milliseconds() {
			return Outcome{Absent: true}, nil
		}
		return t.closeEvent(ctx, k, e, req)
	})
}

// closeEvent appends req as the close of e's Event.
func (t *Tracker) closeEvent(ctx context.Context, k Key, e entry, req ops.EventRequest) (Outcome, *apierr.Error) {
	req.ChannelID, req.EventID, req.OpID, req.Password = &k.ChannelID, &e.EventID, nil, nil
	req.StartedAt = nil
	v, aerr := ops.ValidateIntegrationEvent(ops.EventClose, &req)
	if aerr != nil {
		return Outcome{}, aerr
	}
	res, aerr := t.app.Append(ctx, v)
	if aerr != nil {
		return Outcome{}, aerr
	}
	return Outcome{EventID: e.EventID, Updated: true, Seq: res.Seq}, nil
}

// onOpen applies fn to the key's Event. An Event that is closed or missing
// is Absent, once the bucket's leader (not a cached entry that another
// replica may have superseded, nor a replica behind the write that
// claimed the key through another server) confirms the key names it.
func (t *Tracker) onOpen(ctx context.Context, k Key, fn func(entry) (Outcome, *apierr.Error)) (Outcome, *apierr.Error) {
	for fresh := false; ; fresh = true {
		if fresh {
			t.forget(k)
		}
		read := absentOnLeader
		if fresh {
			read = fromLeader
		}
		e, ok, err := t.lookup(ctx, k, read)
		if err != nil {
			return Outcome{}, t.unavailable("read", k, err)
		}
		if !ok {
			return Outcome{Absent: true}, nil
		}
		out, aerr := fn(e)
		if aerr == nil {
			return out, nil
		}
		if aerr.Code != apierr.EventClosed && aerr.Code != apierr.EventNotFound {
			return Outcome{}, aerr
		}
		if fresh {
			if aerr.Code == apierr.EventNotFound && t.young(e) {
				// The Event's create is on its way: answer "retry", not
				// "nothing to do", or this acknowledge/resolve is lost.
				return Outcome{}, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "the alert's event is being created; retry", RetryAfter: 1}
			}
			return Outcome{Absent: true}, nil
		}
	}
}

// young reports whether e was claimed within the claim grace.
func (t *Tracker) young(e entry) bool {
	return t.opts.Now().UnixMilli()-e.ClaimedAt < t.opts.ClaimGrace.Milliseconds()
}

// keyRead is where lookup reads a key its cache does not hold.
type keyRead int

const (
	// cacheOnly: nowhere (ok false: not in this process's memory).
	cacheOnly keyRead = iota
	// absentOnLeader: a direct get, which any replica of the bucket
	// answers, possibly behind its leader, but whose "absent" is the
	// leader's answer.
	absentOnLeader
	// fromLeader: the entry the leader holds.
	fromLeader
)

// lookup returns the key's entry, from the cache or else the bucket, as
// read says. A cached entry may name an Event that has since closed and
// been replaced through another replica; the append then answers
// event_closed and Open claims the next generation, which fails on the
// stale revision and re-reads.
func (t *Tracker) lookup(ctx context.Context, k Key, read keyRead) (entry, bool, error) {
	bk := k.bucketKey()
	var e entry
	if read != fromLeader {
		// A leader's read never answers from the cache: a concurrent
		// request may have put an older entry there since it was forgotten.
		t.mu.Lock()
		cached, ok := t.cache[bk]
		t.mu.Unlock()
		if ok || read == cacheOnly {
			return cached, ok, nil
		}
	}
	rev, ok, err := t.readKey(ctx, bk, read, &e)
	if !ok || err != nil {
		return entry{}, false, err
	}
	e.rev = rev
	t.remember(bk, e)
	return e, true, nil
}

// readKey decodes bucket key bk into v and returns its revision: read on
// the leader when read is fromLeader, else by a direct get (ok false: no
// such key).
func (t *Tracker) readKey(ctx context.Context, bk string, read keyRead, v any) (rev uint64, ok bool, err error) {
	var kve jetstream.KeyValueEntry
	if read == fromLeader {
		kve, err = t.keys.Latest(ctx, bk)
	} else {
		kve, err = t.keys.Get(ctx, bk)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if err := json.Unmarshal(kve.Value(), v); err != nil {
		return 0, false, fmt.Errorf("decode alert bucket key %s: %w", bk, err)
	}
	return kve.Revision(), true, nil
}

// claim writes e as the key's entry: a create when rev is 0, else a
// compare-and-swap on rev.
func (t *Tracker) claim(ctx context.Context, k Key, e *entry, rev uint64) error {
	e.ClaimedAt, e.rev = t.opts.Now().UnixMilli(), rev
	return t.rewrite(ctx, k, e)
}

// writeKey writes b as bucket key bk by compare-and-swap on its revision
// rev (0: a create) and returns the new revision: through t.pub,
// pipelined with the appends, when there is one, else through nats.go's
// key-value API.
func (t *Tracker) writeKey(ctx context.Context, bk string, b []byte, rev uint64) (uint64, error) {
	if t.pub == nil {
		if rev == 0 {
			return t.kv.Create(ctx, bk, b)
		}
		return t.kv.Update(ctx, bk, b, rev)
	}
	n, err := t.put(ctx, bk, b, rev)
	if rev == 0 && cas.Lost(err) {
		// Through the pipeline, a lost create means the key has an entry,
		// or only the marker a deletion left (an operator's): nats.go's
		// Create writes over the marker, and answers ErrKeyExists for an
		// entry.
		return t.kv.Create(ctx, bk, b)
	}
	return n, err
}

// keySubjects is the subject prefix of the bucket's keys, as the
// key-value API writes them.
const keySubjects = "$KV." + streams.AlertKeysBucket + "."

// put writes b as bucket key bk if the key's revision is still rev (0:
// the key has never been written), as the key-value API's Update does,
// through t.pub; it returns the new revision.
func (t *Tracker) put(ctx context.Context, bk string, b []byte, rev uint64) (uint64, error) {
	m := nats.NewMsg(keySubjects + bk)
	m.Data = b
	m.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(rev, 10)}
	ack, err := t.pub.PublishAside(ctx, m)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

func (t *Tracker) remember(bk string, e entry) {
	t.mu.Lock()
	if _, ok := t.cache[bk]; !ok && len(t.cache) >= t.max {
		for old := range t.cache { // random eviction: map order is random
			delete(t.cache, old)
			break
		}
	}
	if old, ok := t.cache[bk]; !ok || old.rev <= e.rev {
		t.cache[bk] = e
	}
	t.mu.Unlock()
}

func (t *Tracker) forget(k Key) {
	t.mu.Lock()
	delete(t.cache, k.bucketKey())
	t.mu.Unlock()
}

func (t *Tracker) unavailable(step string, k Key, err error) *apierr.Error {
	t.log.Warn("alerts: broker did not answer", "step", step, "channel_id", k.ChannelID, "source", k.Source, "err", err)
	if full, ok := t.app.(interface{ DiskFull() *apierr.Error }); ok && !storage.Full(err) {
		// The disk under the embedded broker's store is full (an
		// *oplog.Writer measures it): the broker answers no write then.
		if aerr := full.DiskFull(); aerr != nil {
			return aerr
		}
	}
	return storage.Or(err, &apierr.Error{Code: apierr.AppendUnavailable, Detail: apierr.Lookup(apierr.AppendUnavailable).Message, RetryAfter: 1})
}

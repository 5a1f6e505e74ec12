package alerts

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
)

// An alert group's record keeps which of a tool's alert keys its
// notifications named lately, so that an alert that leaves its group
// without its resolve reaching the gateway has its Event closed, not left
// open for good. Alertmanager (and Grafana) send a group's every alert in
// each notification, and forget a resolved alert once one notification
// carried it, even one that max_alerts cut it out of; a receiver without
// send_resolved never sends it at all; a silenced or inhibited alert is
// left out. The record lives in the alert key bucket beside the keys, as
// <channel>.<source>_group.<group key hash> →
// {"members": {value: {"seen": ms, "severity": s, "event": id}}}.

// groupSuffix makes a group's record key out of its tool's key source.
const groupSuffix = "_group"

// maxGroupRecordBytes bounds a group's record (about 116 bytes a member
// of 16-character fingerprints: some 6,800 members), under the broker's
// 1 MiB message. Members past it, the least recently named first, are not
// kept: their Events close only by their resolve, as before records.
const maxGroupRecordBytes = 768 << 10

// Group is one notification of an alert group.
type Group struct {
	// Key names the group: ChannelID, Source the source of its alerts' keys
	// (the record is kept apart from them), Value the tool's group key.
	Key Key
	// Members holds the alerts the notification named, in its order (of
	// one value named twice, the last says whether it fires).
	Members []Member
	// Complete: the notification named every alert of the group
	// (Alertmanager's truncatedAlerts is 0). Only a complete notification
	// closes the Events of the members it leaves out.
	Complete bool
	// Gone is the close appended to the Event of a member that left the
	// group; its Severity is set to the member's.
	Gone ops.EventRequest
}

// Member is one alert of a notification: the value of its key and, when
// it fires, the Event the caller's report left it naming (required: a
// member recorded without one is never closed) and that Event's severity.
// A resolved one was closed by the caller, with its own resolve.
type Member struct {
	Value    string
	Resolved bool
	// Stale marks a resolve that applied to nothing (Outcome.Absent: of an
	// occurrence already closed or superseded, a lagging peer's): the
	// member is named, and the record keeps what it held of it.
	Stale    bool
	EventID  string
	Severity string
}

// GoneOutcome is what a group's notification did to a member it left out.
type GoneOutcome struct {
	Value string
	Outcome
}

// groupMember is a member as its record keeps it.
type groupMember struct {
	// Seen (ms, the gateway's clock) is when a notification last named it.
	Seen     int64  `json:"seen"`
	Severity string `json:"severity,omitzero"`
	// Event is the Event it named then: a gone member's close closes that
	// one only, not a later occurrence's opened meanwhile.
	Event string `json:"event,omitzero"`
}

// groupRecord is the bucket value of a group.
type groupRecord struct {
	Members map[string]groupMember `json:"members"`
	rev     uint64
}

// next is the record after g at now: the firing members named now, the
// members g left out still kept, and those it drops as gone (sorted): left
// out of a complete notification and last named at or before cutoff. The
// cutoff spares an alert that one server of a high-availability pair
// named and the other, a few seconds behind, did not yet.
func (r groupRecord) next(g Group, now, cutoff int64) (next map[string]groupMember, gone []string) {
	next = make(map[string]groupMember, len(g.Members)+len(r.Members))
	named := make(map[string]bool, len(g.Members))
	for _, m := range g.Members {
		named[m.Value] = true
		switch {
		case m.Resolved && m.Stale:
			// A lagging peer's resolve of an occurrence another
			// notification superseded: dropped, the record lost the
			// alert's open Event, and nothing closed it if its own
			// resolve never came.
			if old, ok := r.Members[m.Value]; ok {
				next[m.Value] = old
			}
		case m.Resolved:
			delete(next, m.Value)
		default:
			next[m.Value] = groupMember{Seen: now, Severity: m.Severity, Event: m.EventID}
		}
	}
	for v, m := range r.Members {
		if named[v] {
			continue
		}
		if g.Complete && m.Seen <= cutoff {
			gone = append(gone, v)
			continue
		}
		next[v] = m
	}
	slices.Sort(gone)
	return bounded(next), gone
}

// memberBytes is a member's encoding beside its value's, at most: seen,
// severity and event id with their names.
const memberBytes = 100

// quotedLen is at least the length of s encoded as a JSON string: a
// control character takes up to 6 bytes (\u0001), a quote or backslash 2.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20:
			n += 6
		case c == '"' || c == '\\':
			n += 2
		default:
			n++
		}
	}
	return n
}

// bounded keeps members within maxGroupRecordBytes, the most recently
// named first.
func bounded(ms map[string]groupMember) map[string]groupMember {
	size := 0
	for v := range ms {
		size += quotedLen(v) + memberBytes
	}
	if size <= maxGroupRecordBytes {
		return ms
	}
	vs := slices.SortedFunc(maps.Keys(ms), func(a, b string) int {
		if c := cmp.Compare(ms[b].Seen, ms[a].Seen); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	kept, size := make(map[string]groupMember, len(vs)), 0
	for _, v := range vs {
		if size += quotedLen(v) + memberBytes; size > maxGroupRecordBytes {
			break
		}
		kept[v] = ms[v]
	}
	return kept
}

// SettleGroup records what g named in its group's record, and closes (with
// g.Gone) the Events of the members a complete notification no longer
// names and that no notification named within Options.AbsentAfter. It
// returns one outcome a member closed (Absent when the Event it named was
// closed already, or the key names another one now), in value order.
//
// Which members are gone is decided on the record as the bucket's leader
// holds it, never on this process's memory, which another replica's
// notification may have overtaken (a member named again since). The
// closes come before the record's write: a failure answers "retry" with
// the record still naming them, so the sender's retry closes them. The
// record is written at every notification, by compare-and-swap on its
// revision: one written meanwhile through another replica is read again
// on the leader and settled anew.
func (t *Tracker) SettleGroup(ctx context.Context, g Group) ([]GoneOutcome, *apierr.Error) {
	gk := Key{ChannelID: g.Key.ChannelID, Source: g.Key.Source + groupSuffix, Value: g.Key.Value}
	bk := gk.bucketKey()
	now := t.opts.Now().UnixMilli()
	cutoff := now - t.opts.AbsentAfter.Milliseconds()
	var out []GoneOutcome
	settled := func() ([]GoneOutcome, *apierr.Error) {
		slices.SortFunc(out, func(a, b GoneOutcome) int { return cmp.Compare(a.Value, b.Value) })
		return out, nil
	}
	closed := map[[2]string]bool{} // value and Event
	read := absentOnLeader
	for range attempts {
		rec, err := t.groupRecord(ctx, bk, read)
		if err != nil {
			return nil, t.unavailable("read group", gk, err)
		}
		next, gone := rec.next(g, now, cutoff)
		if len(gone) > 0 && read != fromLeader {
			read = fromLeader
			continue
		}
		for _, v := range gone {
			m := rec.Members[v]
			if closed[[2]string{v, m.Event}] {
				continue
			}
			req := g.Gone
			if m.Severity != "" {
				req.Severity = &m.Severity
			}
			o, aerr := t.closeNamed(ctx, Key{ChannelID: g.Key.ChannelID, Source: g.Key.Source, Value: v}, m.Event, req)
			if aerr != nil {
				return nil, aerr
			}
			closed[[2]string{v, m.Event}] = true
			out = append(out, GoneOutcome{Value: v, Outcome: o})
		}
		if len(next) == 0 {
			// No member left: the record goes, as if never written.
			gone, err := t.dropGroupRecord(ctx, bk, rec.rev)
			if err != nil {
				return nil, t.unavailable("remove group", gk, err)
			}
			if gone {
				return settled()
			}
			read = fromLeader // written meanwhile: settled anew
			continue
		}
		err = t.writeGroup(ctx, bk, groupRecord{Members: next, rev: rec.rev})
		if err == nil {
			return settled()
		}
		t.forgetGroup(bk)
		if !cas.Lost(err) {
			return nil, t.unavailable("write group", gk, err)
		}
		read = fromLeader
	}
	return nil, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "too many concurrent notifications of this alert group; retry", RetryAfter: 1}
}

// closeNamed closes the key's open Event with req, as Close does, if it is
// eventID; another (or none named) is Absent.
func (t *Tracker) closeNamed(ctx context.Context, k Key, eventID string, req ops.EventRequest) (Outcome, *apierr.Error) {
	if eventID == "" {
		return Outcome{Absent: true}, nil
	}
	return t.onOpen(ctx, k, func(e entry) (Outcome, *apierr.Error) {
		if e.EventID != eventID {
			// Cached, the entry may be behind: closeEvent of a closed
			// Event answers event_closed, and onOpen reads the leader.
			return Outcome{}, &apierr.Error{Code: apierr.EventClosed}
		}
		return t.closeEvent(ctx, k, e, req)
	})
}

// groupRecord returns the record of bucket key bk, from this process's
// memory or else the bucket, as read says (a record never written is
// empty, revision 0).
func (t *Tracker) groupRecord(ctx context.Context, bk string, read keyRead) (groupRecord, error) {
	if read != fromLeader {
		t.mu.Lock()
		rec, ok := t.groups[bk]
		t.mu.Unlock()
		if ok {
			return rec, nil
		}
	}
	var rec groupRecord
	rev, ok, err := t.readKey(ctx, bk, read, &rec)
	if !ok || err != nil {
		return groupRecord{}, err
	}
	rec.rev = rev
	t.rememberGroup(bk, rec)
	return rec, nil
}

// writeGroup writes rec as bucket key bk by compare-and-swap on rec.rev
// (0: a record never written) and remembers it.
func (t *Tracker) writeGroup(ctx context.Context, bk string, rec groupRecord) error {
	b, err := json.Marshal(rec, json.Deterministic(true))
	if err != nil {
		return err
	}
	rev, err := t.writeKey(ctx, bk, b, rec.rev)
	if err != nil {
		return err
	}
	rec.rev = rev
	t.rememberGroup(bk, rec)
	return nil
}

// dropGroupRecord removes bucket key bk's record at revision rev (0: none
// was read), as a compare-and-swap: gone reports that the leader holds no
// record now; false, that one was written since rev (by another
// replica's notification), which the caller settles anew. The removal is
// a key-value purge, a write like the record's own (no other permission
// of the broker's): it leaves a marker, which the sweep then removes; a
// record written later writes over it.
func (t *Tracker) dropGroupRecord(ctx context.Context, bk string, rev uint64) (gone bool, err error) {
	t.forgetGroup(bk)
	if rev != 0 {
		err := t.kv.Purge(ctx, bk, jetstream.LastRevision(rev))
		if cas.Lost(err) {
			return false, nil
		}
		return err == nil, err
	}
	var rec groupRecord
	_, ok, err := t.readKey(ctx, bk, fromLeader, &rec)
	return !ok && err == nil, err
}

// rememberGroup keeps rec in memory, unless a later revision is there,
// within Options.CachedGroupMembers (records are evicted at random).
func (t *Tracker) rememberGroup(bk string, rec groupRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.groups[bk]; ok {
		if old.rev > rec.rev {
			return
		}
		t.dropGroup(bk, old)
	}
	for old, r := range t.groups { // random eviction: map order is random
		if t.groupWeight+groupWeight(rec) <= t.opts.CachedGroupMembers {
			break
		}
		t.dropGroup(old, r)
	}
	t.groups[bk] = rec
	t.groupWeight += groupWeight(rec)
}

func (t *Tracker) forgetGroup(bk string) {
	t.mu.Lock()
	if rec, ok := t.groups[bk]; ok {
		t.dropGroup(bk, rec)
	}
	t.mu.Unlock()
}

// dropGroup removes bk's record rec from memory; t.mu is held.
func (t *Tracker) dropGroup(bk string, rec groupRecord) {
	delete(t.groups, bk)
	t.groupWeight -= groupWeight(rec)
}

// groupWeight is what a record counts against CachedGroupMembers: a member
// each, and one more per 128 bytes of its name. A fingerprint may be 1 KiB
// (MaxFingerprint), eight times the memory a short one takes, so a bound
// by count alone held some 230 MB instead of the 30 MB it was sized for.
func groupWeight(rec groupRecord) int {
	n := 0
	for name := range rec.Members {
		n += 1 + len(name)/128
	}
	return max(1, n)
}

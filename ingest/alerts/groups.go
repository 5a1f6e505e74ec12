package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
// {"members": {value: {"seen": ms, "severity": s}}}.

// groupSuffix makes a group's record key out of its tool's key source.
const groupSuffix = "_group"

// maxGroupRecordBytes bounds a group's record (about 60 bytes a member of
// 16-character fingerprints: some 8,000 members), well under the broker's
// 1 MiB message. Members past it, the least recently named first, are not
// kept: their Events close only by their resolve, as before records.
const maxGroupRecordBytes = 512 << 10

// Group is one notification of an alert group.
type Group struct {
	// Key names the group: ChannelID, Source the source of its alerts' keys
	// (the record is kept apart from them), Value the tool's group key.
	Key Key
	// Firing holds the alerts the notification named firing.
	Firing []Member
	// Resolved holds the values of the alerts it named resolved (closed by
	// the caller, with their own resolve).
	Resolved []string
	// Complete: the notification named every alert of the group
	// (Alertmanager's truncatedAlerts is 0). Only a complete notification
	// closes the Events of the members it leaves out.
	Complete bool
	// Gone is the close appended to the Event of a member that left the
	// group; its Severity is set to the member's.
	Gone ops.EventRequest
}

// Member is one alert of a group: the value of its key, and the severity
// of its Event.
type Member struct {
	Value, Severity string
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
	next = make(map[string]groupMember, len(g.Firing)+len(r.Members))
	for _, m := range g.Firing {
		next[m.Value] = groupMember{Seen: now, Severity: m.Severity}
	}
	resolved := make(map[string]bool, len(g.Resolved))
	for _, v := range g.Resolved {
		resolved[v] = true
		delete(next, v) // a firing-then-resolved pair ends resolved
	}
	for v, m := range r.Members {
		if _, named := next[v]; named || resolved[v] {
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

// bounded keeps members within maxGroupRecordBytes, the most recently
// named first.
func bounded(ms map[string]groupMember) map[string]groupMember {
	size := 0
	for v := range ms {
		size += len(v) + 48
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
		if size += len(v) + 48; size > maxGroupRecordBytes {
			break
		}
		kept[v] = ms[v]
	}
	return kept
}

// stale reports whether writing next over r is worth a broker write: the
// members differ, or one named now was last written as seen before
// refresh (so its Seen in the bucket is at most AbsentAfter/2 behind).
func (r groupRecord) stale(next map[string]groupMember, refresh int64) bool {
	if len(next) != len(r.Members) {
		return true
	}
	for v, m := range next {
		old, ok := r.Members[v]
		if !ok || old.Severity != m.Severity || (m.Seen != old.Seen && old.Seen < refresh) {
			return true
		}
	}
	return false
}

// SettleGroup records what g named in its group's record, and closes (with
// g.Gone) the Events of the members a complete notification no longer
// names and that no notification named within Options.AbsentAfter. It
// returns one outcome a member closed (Absent when its Event was closed
// already), in value order. The closes come before the record's write: a
// failure answers "retry" with the record still naming them, so the
// sender's retry closes them. A record written meanwhile through another
// replica (compare-and-swap on its revision) is read again on the leader
// and settled anew.
func (t *Tracker) SettleGroup(ctx context.Context, g Group) ([]GoneOutcome, *apierr.Error) {
	gk := Key{ChannelID: g.Key.ChannelID, Source: g.Key.Source + groupSuffix, Value: g.Key.Value}
	bk := gk.bucketKey()
	now := t.opts.Now().UnixMilli()
	cutoff := now - t.opts.AbsentAfter.Milliseconds()
	refresh := now - t.opts.AbsentAfter.Milliseconds()/2
	var out []GoneOutcome
	settled := func() ([]GoneOutcome, *apierr.Error) {
		slices.SortFunc(out, func(a, b GoneOutcome) int { return cmp.Compare(a.Value, b.Value) })
		return out, nil
	}
	closed := map[string]bool{}
	read := absentOnLeader
	for range attempts {
		rec, err := t.groupRecord(ctx, bk, read)
		if err != nil {
			return nil, t.unavailable("read group", gk, err)
		}
		next, gone := rec.next(g, now, cutoff)
		for _, v := range gone {
			if closed[v] {
				continue
			}
			req := g.Gone
			if sev := rec.Members[v].Severity; sev != "" {
				req.Severity = &sev
			}
			o, aerr := t.Close(ctx, Key{ChannelID: g.Key.ChannelID, Source: g.Key.Source, Value: v}, req)
			if aerr != nil {
				return nil, aerr
			}
			closed[v] = true
			out = append(out, GoneOutcome{Value: v, Outcome: o})
		}
		if !rec.stale(next, refresh) {
			return settled()
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
	var kve jetstream.KeyValueEntry
	var err error
	if read == fromLeader {
		kve, err = t.keys.Latest(ctx, bk)
	} else {
		kve, err = t.keys.Get(ctx, bk)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return groupRecord{}, nil
	}
	if err != nil {
		return groupRecord{}, err
	}
	var rec groupRecord
	if err := json.Unmarshal(kve.Value(), &rec); err != nil {
		return groupRecord{}, fmt.Errorf("decode alert group %s: %w", bk, err)
	}
	rec.rev = kve.Revision()
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
	var rev uint64
	switch {
	case t.pub != nil:
		rev, err = t.put(ctx, bk, b, rec.rev)
		if rec.rev == 0 && cas.Lost(err) {
			// Only the marker an operator's deletion left, or a record:
			// nats.go's Create writes over the one and refuses the other.
			rev, err = t.kv.Create(ctx, bk, b)
		}
	case rec.rev == 0:
		rev, err = t.kv.Create(ctx, bk, b)
	default:
		rev, err = t.kv.Update(ctx, bk, b, rec.rev)
	}
	if err != nil {
		return err
	}
	rec.rev = rev
	t.rememberGroup(bk, rec)
	return nil
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

// groupWeight is what a record counts against CachedGroupMembers.
func groupWeight(rec groupRecord) int { return max(1, len(rec.Members)) }

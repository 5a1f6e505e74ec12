// Package inbox serves the device inboxes of PUSHGO_INBOX
// (streams.InboxStream): the full item of every push, on its device's
// subject, from before or beside its send until the app acks it. Pull is
// non-destructive; the device acks what it has, and the legacy pull takes
// what it returns.
package inbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/devices"
	"github.com/pushgo/gateway/schemas/streams"
)

// Inbox reads and acks device inboxes. It is safe for concurrent use.
//
// A device's items are read with batched direct gets of its subject. A
// replica behind the stream's leader may answer them, so an item asked for
// by its delivery id (a wake-up's fetch, an ack) and not found is looked
// for again on the leader: a device fetches its item the moment the
// wake-up push arrives, and acks each push as it arrives, before a
// follower may have applied the pusher's write.
//
// An acked or taken item's messages are deleted: a deleted message leaves
// nothing on its subject, and the broker's memory holds one entry per
// device with items, not one per item.
//
// A read for given delivery ids (an ack, a wake-up's fetch, a pull after a
// cursor) starts at its earliest operation's time, less opClockSlack: an
// item is stored after its operation, so the device's older items, its
// backlog while it was offline, are not read again by each ack.
type Inbox struct {
	items *leaderread.Stream
	ops   *leaderread.Stream
	// msgsRead counts the inbox messages the reads went through (for the
	// tests: a page's read must not grow with the backlog).
	msgsRead atomic.Uint64
}

// opClockSlack covers the clocks of the servers that lead PUSHGO_OPS and
// PUSHGO_INBOX, which stamp an operation and its items.
var opClockSlack = time.Minute

// Open binds the inbox stream, which streams.Ensure created.
func Open(ctx context.Context, js jetstream.JetStream) (*Inbox, error) {
	s, err := leaderread.Open(ctx, js, streams.Inbox)
	if err != nil {
		return nil, err
	}
	o, err := leaderread.Open(ctx, js, streams.Ops)
	if err != nil {
		return nil, err
	}
	return &Inbox{items: s, ops: o}, nil
}

// since is where a read for the operations seqs starts: the earliest's
// time less opClockSlack, or the zero time (everything) when it is not in
// the log any more or cannot be read.
func (in *Inbox) since(ctx context.Context, seqs []uint64) time.Time {
	if len(seqs) == 0 {
		return time.Time{}
	}
	m, err := in.ops.Msg(ctx, slices.Min(seqs))
	if err != nil || m.Time.IsZero() {
		return time.Time{}
	}
	return m.Time.Add(-opClockSlack)
}

// Page is the data of /v2/messages/pull.
type Page struct {
	Items   []jsontext.Value `json:"items"`
	HasMore bool             `json:"has_more"`
}

// stored is one item of a device's inbox.
type stored struct {
	// seq is the item's operation sequence: with the device, what its
	// delivery id names.
	seq uint64
	// msgs are the stream sequences of its messages: more than one when
	// the pusher stored it again (a retry of its push, later than the
	// stream's duplicate window).
	msgs []uint64
	// data is the latest message's item, when the read kept it.
	data []byte
}

// read returns deviceKey's items stored since then (the zero time: all)
// in operation order, each once, and the last stream sequence it read (0:
// none). keep says which items' data to keep (nil: none). With onLeader
// it reads the stream's leader, from stream sequence from when not 0.
// stop, when not nil, ends the read early once it says so after a
// message (of item seq).
func (in *Inbox) read(ctx context.Context, deviceKey string, keep func(seq uint64) bool, since time.Time, onLeader bool, from uint64,
	stop func(seq uint64, m *jetstream.RawStreamMsg) bool) ([]stored, uint64, error) {
	var out []stored
	var last uint64
	at := map[uint64]int{}
	each := func(m *jetstream.RawStreamMsg) error {
		in.msgsRead.Add(1)
		last = m.Sequence
		seq, err := strconv.ParseUint(m.Header.Get(streams.HeaderInboxSeq), 10, 64)
		if err != nil {
			return nil // not an item: the pusher writes none so
		}
		i, ok := at[seq]
		if !ok {
			i = len(out)
			at[seq] = i
			out = append(out, stored{seq: seq})
		}
		out[i].msgs = append(out[i].msgs, m.Sequence)
		if keep != nil && keep(seq) {
			out[i].data = m.Data
		}
		if stop != nil && stop(seq, m) {
			return errReadEnough
		}
		return nil
	}
	subject := streams.InboxSubject(deviceKey)
	var err error
	if onLeader {
		err = in.items.SubjectOnLeader(ctx, subject, from, since, each)
	} else {
		err = in.items.Subject(ctx, subject, since, each)
	}
	if err != nil && !errors.Is(err, errReadEnough) {
		return nil, 0, fmt.Errorf("inbox of %s: %w", devices.KeyRef(deviceKey), err)
	}
	slices.SortFunc(out, func(a, b stored) int { return cmp.Compare(a.seq, b.seq) })
	return out, last, nil
}

// errReadEnough ends a read whose stop said so.
var errReadEnough = errors.New("read enough")

// copiesWindow is how long after an item's message a copy of it may be
// stored (the pusher publishes an item again for up to 2 minutes when the
// broker did not store it; the answer of the first may have been lost):
// an ack reads that far past the last item it names, and removes every
// copy stored within it. A copy stored later (a push retried after a
// longer back-off) is left, and comes again at the next pull, where the
// app, which keeps deliveries by delivery id, acks it again.
var copiesWindow = 5 * time.Minute // a variable for the tests only

// copiesScan bounds, by count, the messages a read goes through past the
// last item it needs, as copiesWindow does by time: a backlog stored in a
// burst (thousands of items within the window) was read whole by every
// page and every ack. A copy further on comes again at the next pull.
var copiesScan = 1000 // a variable for the tests only

// find returns deviceKey's items of the operation sequences seqs, with
// their data, in operation order; what a replica did not have is looked
// for on the leader.
func (in *Inbox) find(ctx context.Context, deviceKey string, seqs []uint64) ([]stored, error) {
	return in.findFrom(ctx, deviceKey, seqs, in.since(ctx, seqs))
}

// findFrom is find, reading from since (the zero time: all).
func (in *Inbox) findFrom(ctx context.Context, deviceKey string, seqs []uint64, since time.Time) ([]stored, error) {
	want := map[uint64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	// The read ends copiesWindow after the last item named, once it has
	// met them all: acking a backlog oldest first (200 ids a call) read
	// the whole rest of it each time, so its cost grew with the square of
	// the backlog.
	keep := func(seq uint64) bool { return want[seq] }
	total := len(want) // want loses what the replica had, before the leader's read
	met := map[uint64]bool{}
	var lastMet time.Time
	past := 0 // messages since the last item named
	stop := func(seq uint64, m *jetstream.RawStreamMsg) bool {
		past++
		if want[seq] {
			met[seq], past = true, 0
			if !m.Time.IsZero() && m.Time.After(lastMet) {
				lastMet = m.Time
			}
		}
		// Never on a time unknown: a message without one reads on.
		return len(met) == total && (past > copiesScan || !lastMet.IsZero() && m.Time.Sub(lastMet) > copiesWindow)
	}
	all, last, err := in.read(ctx, deviceKey, keep, since, false, 0, stop)
	if err != nil {
		return nil, err
	}
	var found []stored
	for _, it := range all {
		if want[it.seq] {
			found = append(found, it)
			delete(want, it.seq)
		}
	}
	if len(want) == 0 || !in.items.Replicated(ctx) {
		return found, nil
	}
	// What the replica did not have comes after what it had.
	var from uint64
	if last > 0 {
		from = last + 1
	}
	all, _, err = in.read(ctx, deviceKey, keep, since, true, from, stop)
	if err != nil {
		return nil, err
	}
	for _, it := range all {
		if want[it.seq] {
			found = append(found, it)
			delete(want, it.seq)
		}
	}
	slices.SortFunc(found, func(a, b stored) int { return cmp.Compare(a.seq, b.seq) })
	return found, nil
}

// seqsOf returns the operation sequences of the delivery ids that name
// deviceKey; the others name no item of its inbox.
func seqsOf(deviceKey string, ids ...string) []uint64 {
	var out []uint64
	for _, id := range ids {
		if seq, dev, ok := delivery.ParseID(id); ok && dev == deviceKey {
			out = append(out, seq)
		}
	}
	return out
}

// Pull returns up to limit items of deviceKey's inbox in delivery order,
// after the delivery id after ("" from the start).
func (in *Inbox) Pull(ctx context.Context, deviceKey, after string, limit int) (Page, error) {
	a := seqsOf(deviceKey, after)
	var from uint64
	if len(a) == 1 {
		from = a[0] + 1
	}
	stop, truncated := pageRead(limit, from)
	all, _, err := in.read(ctx, deviceKey, firstItems(limit, from), in.since(ctx, a), false, 0, stop)
	if err != nil {
		return Page{}, err
	}
	if len(a) == 1 {
		all = all[countBelow(all, a[0]+1):]
	}
	if !in.items.Replicated(ctx) {
		items, _, more, err := in.load(ctx, deviceKey, all, limit)
		// A read cut short has more after what it read, whatever load
		// passed (acked meanwhile).
		return Page{Items: items, HasMore: more || *truncated}, err
	}
	// Through a replica: the page's items as the leader holds them, until
	// it is full or the read's items are all passed (a page short of what
	// an ack removed is filled from the items after it).
	page := Page{Items: []jsontext.Value{}}
	for len(all) > 0 && len(page.Items) < limit {
		n := min(limit-len(page.Items), len(all))
		data, err := in.held(ctx, deviceKey, all[:n])
		if err != nil {
			return Page{}, err
		}
		page.Items = append(page.Items, data...)
		all = all[n:]
	}
	page.HasMore = len(all) > 0 || *truncated
	return page, nil
}

// pageRead is the stop of a page's read of limit items from operation
// sequence from on: once it has met limit+1 items (the page and one to say
// there are more) and read copiesWindow, or copiesScan messages, past the
// last of them (an item stored again late belongs where its sequence puts
// it, maybe in the page). truncated reports whether it stopped the read. Without it
// every page read the device's whole inbox: an app draining a backlog
// page by page read it again at each page, a cost that grew with the
// square of the backlog.
func pageRead(limit int, from uint64) (stop func(seq uint64, m *jetstream.RawStreamMsg) bool, truncated *bool) {
	need := limit + 1
	met := map[uint64]bool{}
	var fullAt time.Time
	past := 0 // messages since the page was met
	truncated = new(bool)
	stop = func(seq uint64, m *jetstream.RawStreamMsg) bool {
		if len(met) == need {
			past++
		} else if seq >= from && !met[seq] {
			met[seq] = true
			if len(met) == need {
				fullAt = m.Time
			}
		}
		// Never on a time unknown: a message without one reads on.
		if len(met) == need && (past > copiesScan || !fullAt.IsZero() && m.Time.Sub(fullAt) > copiesWindow) {
			*truncated = true
		}
		return *truncated
	}
	return stop, truncated
}

// held returns the data of those of items the stream's leader still
// holds, each its latest message's as the leader has it. The device's
// items were read through a replica, which applies an ack's deletes
// after the leader answered them: the app pulls again right after its
// acks, maybe through another ingest, and without this its pull answered
// items it had acked (measured on a 3-node cluster: about 4 in 10 pulls
// through a follower's server, right after an ack through the leader's).
// Only for a replicated stream: on one replica the read was the leader's.
func (in *Inbox) held(ctx context.Context, deviceKey string, items []stored) ([]jsontext.Value, error) {
	var seqs []uint64
	for _, it := range items {
		seqs = append(seqs, it.msgs...)
	}
	msgs, err := in.items.OnLeader(ctx, seqs)
	if err != nil {
		return nil, fmt.Errorf("inbox of %s: %w", devices.KeyRef(deviceKey), err)
	}
	var data []jsontext.Value
	for _, it := range items {
		ofItem := msgs[:len(it.msgs)]
		msgs = msgs[len(it.msgs):]
		for i := len(ofItem) - 1; i >= 0; i-- {
			if ofItem[i] != nil {
				data = append(data, jsontext.Value(ofItem[i].Data))
				break
			}
		}
	}
	return data, nil
}

// firstItems is read's keep of a page of limit items from operation
// sequence from on: the data of the first limit items it meets at or
// after from. The stream holds a device's items in operation order but
// for one stored again late (the pusher's republish), so these are the
// page's items, and load fetches the data of any other it answers: one
// round trip a page instead of one an item.
func firstItems(limit int, from uint64) func(seq uint64) bool {
	kept := map[uint64]bool{}
	return func(seq uint64) bool {
		switch {
		case seq < from:
			return false
		case kept[seq]:
			return true
		case len(kept) >= limit:
			return false
		}
		kept[seq] = true
		return true
	}
}

// load returns the data of the first limit of items, each its latest
// message's (the data read kept, else fetched), the items loaded, and
// whether any are left after them. An item whose message has gone (acked
// meanwhile) is passed.
func (in *Inbox) load(ctx context.Context, deviceKey string, items []stored, limit int) ([]jsontext.Value, []stored, bool, error) {
	data, loaded := []jsontext.Value{}, []stored{}
	for i, it := range items {
		if len(data) == limit {
			return data, loaded, i < len(items), nil
		}
		if it.data != nil {
			data, loaded = append(data, jsontext.Value(it.data)), append(loaded, it)
			continue
		}
		m, err := in.items.Msg(ctx, it.msgs[len(it.msgs)-1])
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, false, fmt.Errorf("inbox %s: %w", delivery.LogID(it.seq, deviceKey), err)
		}
		data, loaded = append(data, jsontext.Value(m.Data)), append(loaded, it)
	}
	return data, loaded, false, nil
}

// countBelow is how many of items (in operation order) are of sequences
// below seq.
func countBelow(items []stored, seq uint64) int {
	n, _ := slices.BinarySearchFunc(items, seq, func(it stored, s uint64) int { return cmp.Compare(it.seq, s) })
	return n
}

// fetch finds the items of seqs (a delivery id's) in deviceKey's inbox,
// read from shortly before their operation's time and, when none is
// there, again from the start: the servers' clocks may differ by more than
// opClockSlack. A wake-up's fetch of an item not there is rare, and so is
// a single ack's (the apps ack each direct push once), so those read
// twice; a batch ack does not.
func (in *Inbox) fetch(ctx context.Context, deviceKey string, seqs []uint64) ([]stored, error) {
	found, err := in.find(ctx, deviceKey, seqs)
	if err == nil && len(found) == 0 {
		found, err = in.findFrom(ctx, deviceKey, seqs, time.Time{})
	}
	return found, err
}

// Get returns the item of deviceKey's inbox with delivery id deliveryID
// (the one a wake-up push named), nil when there is none: never delivered
// there, another device's, or acked already. Non-destructive.
func (in *Inbox) Get(ctx context.Context, deviceKey, deliveryID string) (jsontext.Value, error) {
	seqs := seqsOf(deviceKey, deliveryID)
	if len(seqs) == 0 {
		return nil, nil
	}
	found, err := in.fetch(ctx, deviceKey, seqs)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	if !in.items.Replicated(ctx) {
		return jsontext.Value(found[0].data), nil
	}
	data, err := in.held(ctx, deviceKey, found[:1])
	if err != nil || len(data) == 0 {
		return nil, err
	}
	return data[0], nil
}

// Take is the legacy pull (PushGo's /messages/pull): it returns the item
// with delivery id deliveryID, or with deliveryID "" up to limit items in
// delivery order, and removes what it returns, as PushGo's pull deletes the
// rows it answers (src/storage/database/sqlite/access/provider.rs,
// pull_provider_item and pull_provider_items). Items are removed only
// after all were read: an error while reading removes nothing (nil items),
// an error while removing returns the items with it (they stay in the
// inbox and come again with the next pull: at least once).
func (in *Inbox) Take(ctx context.Context, deviceKey, deliveryID string, limit int) ([]jsontext.Value, error) {
	var items []jsontext.Value
	var taken []stored
	if deliveryID != "" {
		seqs := seqsOf(deviceKey, deliveryID)
		if len(seqs) == 0 {
			return []jsontext.Value{}, nil
		}
		found, err := in.fetch(ctx, deviceKey, seqs)
		if err != nil {
			return nil, err
		}
		items, taken = []jsontext.Value{}, found
		for _, it := range found {
			items = append(items, jsontext.Value(it.data))
		}
	} else {
		stop, _ := pageRead(limit, 0)
		all, _, err := in.read(ctx, deviceKey, firstItems(limit, 0), time.Time{}, false, 0, stop)
		if err != nil {
			return nil, err
		}
		if items, taken, _, err = in.load(ctx, deviceKey, all, limit); err != nil {
			return nil, err
		}
	}
	// What another take removed meanwhile (its data was read before) is
	// that take's: answered once, by it.
	answered := items[:0]
	for i, it := range taken {
		removed, err := in.remove(ctx, it)
		if err != nil {
			return append(answered, items[i:]...), fmt.Errorf("take %s: %w", delivery.LogID(it.seq, deviceKey), err)
		}
		if removed {
			answered = append(answered, items[i])
		}
	}
	return answered, nil
}

// Ack removes the items with the given delivery ids from deviceKey's inbox
// and reports how many were there.
func (in *Inbox) Ack(ctx context.Context, deviceKey string, ids []string) (int, error) {
	seqs := seqsOf(deviceKey, ids...)
	if len(seqs) == 0 {
		return 0, nil
	}
	find := in.find
	if len(ids) == 1 {
		// The apps ack each direct push alone (the legacy /messages/ack):
		// an ack the servers' clocks made miss left the push in the inbox,
		// and the app's next full sync filed it again. A batch ack (of
		// pulled items, read a moment before) reads once.
		find = in.fetch
	}
	found, err := find(ctx, deviceKey, seqs)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, it := range found {
		ok, err := in.remove(ctx, it)
		if err != nil {
			return removed, fmt.Errorf("ack %s: %w", delivery.LogID(it.seq, deviceKey), err)
		}
		if ok {
			removed++
		}
	}
	return removed, nil
}

// remove deletes the messages of it and reports whether it deleted any:
// a message the broker no longer holds was removed by another ack or
// pull meanwhile.
func (in *Inbox) remove(ctx context.Context, it stored) (bool, error) {
	removed := false
	for _, seq := range it.msgs {
		err := in.items.Direct().DeleteMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			// nats.go wraps every refusal so; a message that is gone
			// was removed by another ack, anything else is an error.
			// Gone as the leader holds the stream: a follower may not
			// have applied the other ack's delete yet.
			if held, gerr := in.items.OnLeader(ctx, []uint64{seq}); gerr == nil && held[0] == nil {
				continue
			}
			return removed, err
		}
		if err != nil {
			return removed, err
		}
		removed = true
	}
	return removed, nil
}

// Item decodes one stored item (for tests and tools).
func Item(v jsontext.Value) (delivery.InboxItem, error) {
	var it delivery.InboxItem
	return it, json.Unmarshal(v, &it)
}

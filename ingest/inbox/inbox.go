// Package inbox serves the device inboxes of PUSHGO_INBOX: the full items
// of notifications too large for a push (the device got a wake-up push with
// their delivery_id). Pull is non-destructive; the device acks what it has.
package inbox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// Inbox reads and acks device inboxes. It is safe for concurrent use.
//
// An item is read by direct get and "not there" is the bucket leader's
// answer (leaderread.Bucket.Get): a device fetches its item the moment the
// wake-up push arrives, and a follower that has not yet applied the
// pusher's write would answer that it has none.
//
// An acked or taken item's messages are purged from the bucket's stream,
// not through the key-value API, whose purge leaves a marker on the key's
// subject until the retention passes. The broker keeps every subject that
// has a message in its memory (and in the stream's index it writes out):
// with one key per push, that memory grew with every push of the
// retention (about 150 bytes each; 100 pushes a second for 7 days is 60
// million subjects). Purged from the stream, an acked item leaves nothing.
type Inbox struct {
	kv     jetstream.KeyValue
	items  *leaderread.Bucket
	stream jetstream.Stream
}

// Open binds the inbox bucket, which streams.Ensure created.
func Open(ctx context.Context, js jetstream.JetStream) (*Inbox, error) {
	b, err := leaderread.OpenBucket(ctx, js, streams.InboxBucket)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, "KV_"+streams.InboxBucket)
	if err != nil {
		return nil, fmt.Errorf("open stream of %s: %w", streams.InboxBucket, err)
	}
	return &Inbox{kv: b.KV(), items: b, stream: s}, nil
}

// Page is the data of /v2/messages/pull.
type Page struct {
	Items   []jsontext.Value `json:"items"`
	HasMore bool             `json:"has_more"`
}

// Pull returns up to limit items of deviceKey's inbox in delivery order,
// after the delivery id after ("" from the start).
func (in *Inbox) Pull(ctx context.Context, deviceKey, after string, limit int) (Page, error) {
	keys, err := in.keys(ctx, deviceKey)
	if err != nil {
		return Page{}, err
	}
	start := 0
	if after != "" {
		if seq, dev, ok := delivery.ParseID(after); ok && dev == deviceKey {
			ak := delivery.InboxKey(deviceKey, seq)
			start = sort.SearchStrings(keys, ak)
			if start < len(keys) && keys[start] == ak {
				start++
			}
		}
	}
	page := Page{Items: []jsontext.Value{}}
	for _, k := range keys[start:] {
		if len(page.Items) == limit {
			page.HasMore = true
			break
		}
		e, err := in.items.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // acked meanwhile
		}
		if err != nil {
			return Page{}, fmt.Errorf("inbox %s: %w", k, err)
		}
		page.Items = append(page.Items, jsontext.Value(e.Value()))
	}
	return page, nil
}

// Get returns the item of deviceKey's inbox with delivery id deliveryID
// (the one a wake-up push named), nil when there is none: never delivered
// there, another device's, or acked already. Non-destructive.
func (in *Inbox) Get(ctx context.Context, deviceKey, deliveryID string) (jsontext.Value, error) {
	seq, dev, ok := delivery.ParseID(deliveryID)
	if !ok || dev != deviceKey {
		return nil, nil
	}
	k := delivery.InboxKey(deviceKey, seq)
	e, err := in.items.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inbox %s: %w", k, err)
	}
	return jsontext.Value(e.Value()), nil
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
	var keys []string
	if deliveryID != "" {
		seq, dev, ok := delivery.ParseID(deliveryID)
		if !ok || dev != deviceKey {
			return []jsontext.Value{}, nil
		}
		keys = []string{delivery.InboxKey(deviceKey, seq)}
	} else {
		var err error
		if keys, err = in.keys(ctx, deviceKey); err != nil {
			return nil, err
		}
	}
	items, taken := []jsontext.Value{}, []jetstream.KeyValueEntry{}
	for _, k := range keys {
		if len(items) == limit {
			break
		}
		e, err := in.items.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // acked meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("inbox %s: %w", k, err)
		}
		items, taken = append(items, jsontext.Value(e.Value())), append(taken, e)
	}
	for _, e := range taken {
		if err := in.remove(ctx, e); err != nil {
			return items, fmt.Errorf("take %s: %w", e.Key(), err)
		}
	}
	return items, nil
}

// Ack removes the items with the given delivery ids from deviceKey's inbox
// and reports how many were there.
func (in *Inbox) Ack(ctx context.Context, deviceKey string, ids []string) (int, error) {
	removed := 0
	for _, id := range ids {
		seq, dev, ok := delivery.ParseID(id)
		if !ok || dev != deviceKey {
			continue
		}
		k := delivery.InboxKey(deviceKey, seq)
		e, err := in.items.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return removed, fmt.Errorf("inbox %s: %w", k, err)
		}
		if err := in.remove(ctx, e); err != nil {
			return removed, fmt.Errorf("ack %s: %w", k, err)
		}
		removed++
	}
	return removed, nil
}

// remove removes every message of e's key from the bucket's stream (see
// Inbox), with a purge of the stream, not of the key: the key-value purge
// leaves its marker. A revision stored since the read (a retry of the
// push) is the same delivery, which the device has: it goes too.
func (in *Inbox) remove(ctx context.Context, e jetstream.KeyValueEntry) error {
	return in.stream.Purge(ctx, jetstream.WithPurgeSubject(inboxSubjects+e.Key()))
}

// inboxSubjects is the subject prefix of the bucket's keys.
const inboxSubjects = "$KV." + streams.InboxBucket + "."

func (in *Inbox) keys(ctx context.Context, deviceKey string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kl, err := in.kv.ListKeysFiltered(ctx, deviceKey+".*")
	if err != nil {
		return nil, fmt.Errorf("list inbox of %s: %w", deviceKey, err)
	}
	defer func() { _ = kl.Stop() }()
	var keys []string
	for k := range kl.Keys() {
		if strings.HasPrefix(k, deviceKey+".") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // zero-padded sequences: key order is delivery order
	return keys, nil
}

// Item decodes one stored item (for tests and tools).
func Item(v jsontext.Value) (delivery.InboxItem, error) {
	var it delivery.InboxItem
	return it, json.Unmarshal(v, &it)
}

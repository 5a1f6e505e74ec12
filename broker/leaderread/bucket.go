package leaderread

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket reads one key-value bucket (a stream KV_<bucket> whose subject of
// key k is $KV.<bucket>.k) under the package's contract. It is safe for
// concurrent use.
type Bucket struct {
	kv     jetstream.KeyValue
	stream *Stream
	prefix string
}

// OpenBucket opens bucket name of js.
func OpenBucket(ctx context.Context, js jetstream.JetStream, name string) (*Bucket, error) {
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	return NewBucket(ctx, js, kv)
}

// NewBucket reads kv, opened from js.
func NewBucket(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (*Bucket, error) {
	s, err := Open(ctx, js, "KV_"+kv.Bucket())
	if err != nil {
		return nil, err
	}
	return &Bucket{kv: kv, stream: s, prefix: "$KV." + kv.Bucket() + "."}, nil
}

// KV is the bucket handle, for writes.
func (b *Bucket) KV() jetstream.KeyValue { return b.kv }

// Get is KeyValue.Get (a direct get) whose jetstream.ErrKeyNotFound
// (missing or deleted) is the leader's answer. A found entry may be older
// than the leader's (see the package's contract).
func (b *Bucket) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) && b.stream.Replicated(ctx) {
		return b.Latest(ctx, key)
	}
	return e, err
}

// Latest is key's entry as the leader holds it: every write acknowledged
// before the call is in it. jetstream.ErrKeyNotFound when the key is
// missing or deleted, as KeyValue.Get.
func (b *Bucket) Latest(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if !b.stream.Replicated(ctx) {
		return b.kv.Get(ctx, key)
	}
	m, err := b.stream.leader(ctx, msgGetRequest{LastFor: b.prefix + key})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, jetstream.ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	// A deletion or purge is a marker message, as KeyValue.Get reads it.
	if op := m.Header.Get(kvOperation); op == "DEL" || op == "PURGE" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return nil, jetstream.ErrKeyNotFound
	}
	return &entry{bucket: b.kv.Bucket(), key: key, value: m.Data, revision: m.Sequence, created: m.Time}, nil
}

// kvOperation is the header that marks a key-value deletion ("DEL") or
// purge ("PURGE"); a put has none.
const kvOperation = "KV-Operation"

// entry is a put read from the leader.
type entry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.revision }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return 0 }
func (e *entry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

package kvview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/devices"
)

// Decoder turns a bucket value into T. revision is the value's bucket
// revision, for types that carry it.
type Decoder[T any] func(key string, value []byte, revision uint64) (T, error)

// Map is an in-memory copy of a bucket's decoded values, kept current by
// one Watch, with a fallback to the bucket for keys the watch has not
// brought yet. Values are ordered by revision: an older write never
// replaces a newer one, and a deletion stays as a tombstone so a read that
// raced with it cannot bring the key back (for Options.TombstonesKept).
// The caller MUST call Close.
type Map[T any] struct {
	kv     jetstream.KeyValue
	reads  *leaderread.Bucket
	decode Decoder[T]
	log    *slog.Logger
	watch  *Watch
	final  bool // Options.DeletesAreFinal
	kept   time.Duration
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]slot[T]
	// tombs are the tombstones in the order they were laid, from
	// tombs[head] on, for their removal after kept (prune).
	tombs []tombstone
	head  int
}

type tombstone struct {
	key string
	rev uint64
	at  time.Time
}

type slot[T any] struct {
	val     T
	rev     uint64
	deleted bool
}

// NewMap returns an empty map that no watch feeds: the revision-ordered
// store alone, for tests of what is built on it. Lookup, Bucket, Watch and
// Close need OpenMap.
func NewMap[T any](decode Decoder[T], opts Options) *Map[T] {
	opts.defaults()
	return &Map[T]{decode: decode, log: opts.Logger, final: opts.DeletesAreFinal, kept: opts.TombstonesKept, now: opts.Now,
		entries: map[string]slot[T]{}}
}

// OpenMap loads bucket into memory and keeps it current until Close.
// Values that do not decode are logged and skipped.
func OpenMap[T any](ctx context.Context, js jetstream.JetStream, bucket string, decode Decoder[T], opts Options) (*Map[T], error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	m := NewMap(decode, opts)
	m.kv = kv
	if m.reads, err = leaderread.NewBucket(ctx, js, kv); err != nil {
		return nil, err
	}
	if m.watch, err = Start(ctx, js, bucket, m, opts); err != nil {
		return nil, err
	}
	return m, nil
}

// Put applies a watched write (Applier).
func (m *Map[T]) Put(key string, value []byte, revision uint64) {
	v, err := m.decode(key, value, revision)
	if err != nil {
		m.log.Error("kvview: skip malformed value", "key", devices.KeyRef(key), "err", err)
		return
	}
	m.Remember(key, v, revision)
}

// Delete applies a watched deletion (Applier). The key's tombstone is
// dropped after Options.TombstonesKept: it guards against a read that
// raced with the deletion (a Lookup's bucket read, which its caller's
// timeout bounds, remembered after the deletion was applied), and one
// kept for every key ever deleted grew without end: a revoked integration
// token each, about 200 bytes in every process, laid again at each start
// by the bucket's delete markers. A key whose tombstone is gone is one the
// view has not heard of: Lookup asks the bucket, which answers not found.
func (m *Map[T]) Delete(key string, revision uint64) {
	m.mu.Lock()
	now := m.now()
	if old, ok := m.entries[key]; !ok || old.rev < revision || m.final {
		rev := max(old.rev, revision)
		m.entries[key] = slot[T]{rev: rev, deleted: true}
		m.tombs = append(m.tombs, tombstone{key: key, rev: rev, at: now})
	}
	m.prune(now)
	m.mu.Unlock()
}

// prune drops the tombstones laid kept or longer before now, oldest
// first, unless their key was written again. m.mu is held.
func (m *Map[T]) prune(now time.Time) {
	for m.head < len(m.tombs) && now.Sub(m.tombs[m.head].at) >= m.kept {
		t := m.tombs[m.head]
		m.tombs[m.head] = tombstone{}
		m.head++
		if s, ok := m.entries[t.key]; ok && s.deleted && s.rev == t.rev {
			delete(m.entries, t.key)
		}
	}
	// The queue's space goes back once most of it is spent, so a burst of
	// deletions holds none of it afterwards.
	switch {
	case m.head == len(m.tombs) && cap(m.tombs) <= 1024:
		m.tombs, m.head = m.tombs[:0], 0
	case m.head >= 1024 && m.head*2 >= len(m.tombs):
		m.tombs, m.head = slices.Clone(m.tombs[m.head:]), 0
	}
}

// Tombstones is how many deleted keys the view remembers.
func (m *Map[T]) Tombstones() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, s := range m.entries {
		if s.deleted {
			n++
		}
	}
	return n
}

// Remember stores v as key's value at revision unless the view holds that
// revision or a newer one: a writer calls it with what it just wrote, so
// its next read need not wait for the watch.
func (m *Map[T]) Remember(key string, v T, revision uint64) {
	m.mu.Lock()
	if old, ok := m.entries[key]; !ok || (old.rev < revision && !(old.deleted && m.final)) {
		m.entries[key] = slot[T]{val: v, rev: revision}
	}
	if m.head < len(m.tombs) {
		m.prune(m.now())
	}
	m.mu.Unlock()
}

// Get returns key's value from the view. known is false when the view has
// never heard of key (Lookup then asks the bucket); ok is false for an
// unknown or deleted key.
func (m *Map[T]) Get(key string) (v T, ok, known bool) {
	m.mu.RLock()
	s, known := m.entries[key]
	m.mu.RUnlock()
	return s.val, known && !s.deleted, known
}

// Lookup returns key's value from the view or, when the view has never
// heard of it, from the bucket: a key written a moment ago by another
// process may not have reached this watch yet. The bucket's answer is its
// leader's (leaderread.Bucket.Latest), never a lagging follower's: a
// follower behind a deletion whose tombstone the view has dropped
// (Options.TombstonesKept) would bring the key back, a revoked token
// accepted again until the process restarts. A deleted key the view
// still holds answers not found without a bucket read.
func (m *Map[T]) Lookup(ctx context.Context, key string) (T, bool, error) {
	if v, ok, known := m.Get(key); known {
		return v, ok, nil
	}
	return m.LookupLeader(ctx, key)
}

// LookupLeader returns key's value as the bucket's leader holds it, never
// the view's: for a reader that knows its view may be behind (its watch
// stalled without breaking). The answer is remembered in the view unless
// the view holds a deletion or a later revision, and the view's value is
// returned (a deletion may have landed while it read).
func (m *Map[T]) LookupLeader(ctx context.Context, key string) (T, bool, error) {
	var zero T
	e, err := m.reads.Latest(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("get %s %s: %w", m.kv.Bucket(), devices.KeyRef(key), err)
	}
	v, err := m.decode(key, e.Value(), e.Revision())
	if err != nil {
		return zero, false, fmt.Errorf("decode %s %s: %w", m.kv.Bucket(), devices.KeyRef(key), err)
	}
	m.Remember(key, v, e.Revision())
	// Read the view again: a deletion may have landed while we read.
	v, ok, _ := m.Get(key)
	return v, ok, nil
}

// Count is how many live (not deleted) values of the view match, for
// caps such as tokens per channel. It reads the view only: Sync the
// watch first to count what other processes wrote.
func (m *Map[T]) Count(match func(T) bool) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, s := range m.entries {
		if !s.deleted && match(s.val) {
			n++
		}
	}
	return n
}

// Bucket is the underlying bucket, for writes.
func (m *Map[T]) Bucket() jetstream.KeyValue { return m.kv }

// Reads reads the bucket under leaderread's contract, for Update.
func (m *Map[T]) Reads() *leaderread.Bucket { return m.reads }

// Watch is the watch that keeps the map current (Sync, Err).
func (m *Map[T]) Watch() *Watch { return m.watch }

// Close stops the watch.
func (m *Map[T]) Close() { m.watch.Close() }

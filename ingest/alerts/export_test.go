package alerts

import (
	"context"

	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// ClaimOnly writes a key's first entry without appending its create: the
// state a process leaves when it dies between the two.
func (t *Tracker) ClaimOnly(ctx context.Context, k Key) (string, error) {
	e := entry{Gen: 1, OpID: k.opID(1)}
	e.EventID = ids.DeriveEntityID(k.ChannelID, string(ops.EventCreate), e.OpID)
	return e.EventID, t.claim(ctx, k, &e, 0)
}

// SetBetweenAckWrites runs f between each acknowledge's update and its
// record in the key's entry, until the test ends.
func (t *Tracker) SetBetweenAckWrites(tb interface{ Cleanup(func()) }, f func()) {
	t.hooks.betweenAckWrites = f
	tb.Cleanup(func() { t.hooks.betweenAckWrites = nil })
}

// SetBeforeUpdate runs f between each Open's read of its key and its
// update, until the test ends.
func (t *Tracker) SetBeforeUpdate(tb interface{ Cleanup(func()) }, f func()) {
	t.hooks.beforeUpdate = f
	tb.Cleanup(func() { t.hooks.beforeUpdate = nil })
}

// GroupsInMemory is how many group records the tracker keeps in memory,
// and their weight against Options.CachedGroupMembers.
func (t *Tracker) GroupsInMemory() (records, weight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.groups), t.groupWeight
}

// BucketKey is k's key in the alert key bucket.
func (k Key) BucketKey() string { return k.bucketKey() }

// GroupBucketKey is the bucket key of the record of group k (Group.Key).
func GroupBucketKey(k Key) string {
	return Key{ChannelID: k.ChannelID, Source: k.Source + groupSuffix, Value: k.Value}.bucketKey()
}

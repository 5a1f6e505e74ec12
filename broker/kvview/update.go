package kvview

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/cas"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/devices"
)

// ErrNotFound is returned by Update when the key does not exist.
var ErrNotFound = errors.New("key not found")

// UpdateOptions bound Update's retries. The zero value takes the defaults.
type UpdateOptions struct {
	// Attempts is the most compare-and-swap tries. Default 10.
	Attempts int
	// Step is the back-off unit between lost tries (cas.Backoff).
	// Default 1ms.
	Step time.Duration
}

// Update reads key, lets change edit the value, and writes it back by
// compare-and-swap on the revision it read, reading and changing again
// after a lost race, with jittered back-off. change reports whether it
// changed anything: false writes nothing. It returns the revision written
// (0 when nothing was). A missing key is ErrNotFound (the bucket leader's
// answer); a race lost Attempts times is cas.ErrExhausted. The first read
// may come from any replica (a stale one loses the compare-and-swap); the
// reads after a lost race come from the leader, so a lagging follower
// cannot make every attempt lose.
func Update(ctx context.Context, b *leaderread.Bucket, key string, change func(value []byte, revision uint64) (next []byte, write bool, err error), o UpdateOptions) (uint64, error) {
	if o.Attempts <= 0 {
		o.Attempts = 10
	}
	if o.Step <= 0 {
		o.Step = time.Millisecond
	}
	kv := b.KV()
	var written uint64
	err := cas.Retry(ctx, o.Attempts, o.Step, func(attempt int) error {
		get := b.Get
		if attempt > 0 {
			get = b.Latest
		}
		e, err := get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("get %s %s: %w", kv.Bucket(), devices.KeyRef(key), err)
		}
		next, write, err := change(e.Value(), e.Revision())
		if err != nil || !write {
			return err
		}
		written, err = kv.Update(ctx, key, next, e.Revision())
		return err
	})
	return written, err
}

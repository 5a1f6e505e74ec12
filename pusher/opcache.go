package pusher

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/ops"
)

// opCache holds recently expanded operations by sequence: the tasks of one
// operation fanned out to 10,000 devices all need its payload, and reading
// it from the log once is enough; and the partitions that share its
// audience share its notification templates, built once per process, not
// once per partition (at 10 devices an operation, eight partitions built
// the same template for a device or two each).
type opCache struct {
	// stream reads the log by sequence: a sequence learned from a
	// consumer or a task is in the log even when the follower a direct get
	// reaches has not stored it yet, so "not found" is the leader's word
	// (leaderread.Stream.Msg), never a lagging follower's.
	stream   *leaderread.Stream
	mu       sync.Mutex
	m        map[uint64]*cachedOp
	max      int
	maxBytes int64
	bytes    int64 // the operations' weights (opWeight)
}

// cachedOp is one operation of the cache.
type cachedOp struct {
	env    *ops.Envelope
	tmpl   templates
	weight int64
}

// opCacheBytes bounds the operations cached by an estimate of their
// memory (opWeight), beside their count: an operation's content may reach
// ops.MaxContentBytes (512 KiB, an integration's), and 4,096 of those held
// by count alone took 1.97 GiB of every pusher (a reviewer's measure).
const opCacheBytes = 64 << 20

// opWeight is what an operation counts for in the cache: its payload,
// and room for the envelope and its templates (an APNs body of up to
// 4 KiB per provider).
func opWeight(env *ops.Envelope) int64 { return int64(len(env.Payload)) + 10<<10 }

func newOpCache(s *leaderread.Stream, max int) *opCache {
	return &opCache{stream: s, m: make(map[uint64]*cachedOp), max: max, maxBytes: opCacheBytes}
}

// put caches env as the operation at seq, evicting others at random while
// the cache is past its count or its bytes with it.
func (c *opCache) put(seq uint64, env *ops.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[seq]; ok {
		return // the same operation: keep its templates
	}
	w := opWeight(env)
	if len(c.m) >= c.max || c.bytes+w > c.maxBytes {
		for k, co := range c.m { // random eviction: map order is random
			delete(c.m, k)
			c.bytes -= co.weight
			if len(c.m) < c.max && c.bytes+w <= c.maxBytes {
				break
			}
		}
	}
	c.m[seq] = &cachedOp{env: env, weight: w}
	c.bytes += w
}

// peek returns the operation at seq if it is cached.
func (c *opCache) peek(seq uint64) (*ops.Envelope, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if co, ok := c.m[seq]; ok {
		return co.env, true
	}
	return nil, false
}

// templates returns the templates of the operation at seq, shared while
// it is cached (a fresh set once it is not: built again, never wrong).
func (c *opCache) templates(seq uint64) *templates {
	c.mu.Lock()
	defer c.mu.Unlock()
	if co, ok := c.m[seq]; ok {
		return &co.tmpl
	}
	return &templates{}
}

// errUnreadableOp is get's error for an operation that is in the log but
// is not an envelope (a poisoned entry): reading it again will not help.
var errUnreadableOp = errors.New("the operation in the log is not an envelope")

// get returns the operation at seq, nil if it is no longer in the log (the
// stream's leader has no message there).
func (c *opCache) get(ctx context.Context, seq uint64) (*ops.Envelope, error) {
	if env, ok := c.peek(seq); ok {
		return env, nil
	}
	m, err := c.stream.Msg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	env := &ops.Envelope{}
	if err := json.Unmarshal(m.Data, env); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreadableOp, err)
	}
	c.put(seq, env)
	return env, nil
}

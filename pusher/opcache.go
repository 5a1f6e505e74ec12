package pusher

import (
	"context"
	"errors"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/ops"
)

// opCache holds recently expanded operations by sequence: the tasks of one
// operation fanned out to 10,000 devices all need its payload, and reading
// it from the log once is enough.
type opCache struct {
	// stream reads the log by sequence: a sequence learned from a
	// consumer or a task is in the log even when the follower a direct get
	// reaches has not stored it yet, so "not found" is the leader's word
	// (leaderread.Stream.Msg), never a lagging follower's.
	stream *leaderread.Stream
	mu     sync.Mutex
	m      map[uint64]*ops.Envelope
	max    int
}

func newOpCache(s *leaderread.Stream, max int) *opCache {
	return &opCache{stream: s, m: make(map[uint64]*ops.Envelope), max: max}
}

func (c *opCache) put(seq uint64, env *ops.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[seq]; !ok && len(c.m) >= c.max {
		for k := range c.m { // random eviction
			delete(c.m, k)
			break
		}
	}
	c.m[seq] = env
}

// peek returns the operation at seq if it is cached.
func (c *opCache) peek(seq uint64) (*ops.Envelope, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	env, ok := c.m[seq]
	return env, ok
}

// get returns the operation at seq, nil if it is no longer in the log (the
// stream's leader has no message there).
func (c *opCache) get(ctx context.Context, seq uint64) (*ops.Envelope, error) {
	c.mu.Lock()
	env, ok := c.m[seq]
	c.mu.Unlock()
	if ok {
		return env, nil
	}
	m, err := c.stream.Msg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	env = &ops.Envelope{}
	if err := json.Unmarshal(m.Data, env); err != nil {
		return nil, err
	}
	c.put(seq, env)
	return env, nil
}

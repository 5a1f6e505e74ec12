package pusher

import (
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestPartitionsShareTemplates: the partitions that share an operation's
// audience share its APNs template while the operation is cached, so it is
// built once per process, not once per partition; an evicted operation
// gets a fresh set, built again.
func TestPartitionsShareTemplates(t *testing.T) {
	p := &Pusher{ops: newOpCache(nil, 2)}
	env := &ops.Envelope{V: ops.EnvelopeVersion, Op: ops.MessageCreate, ChannelID: ids.NewChannelID(), OpID: "op-1",
		EntityID: "0123456789abcdef0123456789abcdef", AcceptedAt: time.Now().UnixMilli(),
		Payload: []byte(`{"title":"disk full","body":"on db-1","severity":"high","occurred_at":1}`)}
	const seq = 7
	env2, err := p.ops.decode(seq, mustEnvelopeJSON(t, env))
	if err != nil {
		t.Fatal(err)
	}
	// Two partitions' operations, as expand makes them.
	a, b := p.ops.templates(seq), p.ops.templates(seq)
	if a != b {
		t.Fatal("two partitions of one cached operation got different templates")
	}
	now := time.Now()
	ta := a.get(p, env2, seq, payload.APNs, now)
	tb := b.get(p, env2, seq, payload.APNs, now.Add(time.Millisecond))
	if ta == nil || ta != tb {
		t.Fatalf("templates %p and %p: want one, built once", ta, tb)
	}
	// Later operations evict it (the cache holds two); then it gets a
	// fresh set.
	for s := uint64(8); ; s++ {
		if _, cached := p.ops.peek(seq); !cached {
			break
		}
		if s == 200 {
			t.Fatal("the operation was never evicted from a cache of two")
		}
		if _, err := p.ops.decode(s, mustEnvelopeJSON(t, env)); err != nil {
			t.Fatal(err)
		}
	}
	if p.ops.templates(seq) == a {
		t.Fatal("an evicted operation still shares the templates it had")
	}
}

func mustEnvelopeJSON(t *testing.T, env *ops.Envelope) []byte {
	t.Helper()
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpCacheBoundedByBytes: the cache holds operations within its bytes
// as well as its count: 4,096 integration operations of 512 KiB held by
// count alone took 2 GiB of every pusher.
func TestOpCacheBoundedByBytes(t *testing.T) {
	c := newOpCache(nil, 4096)
	c.maxBytes = 8 << 20
	big := &ops.Envelope{V: ops.EnvelopeVersion, Op: ops.EventCreate, Payload: make([]byte, 512<<10)}
	for seq := range uint64(100) {
		c.put(seq, big)
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d operations of 512 KiB the cache counts %d bytes, past its %d", seq+1, c.bytes, c.maxBytes)
		}
	}
	if n := len(c.m); n == 0 || n > 16 {
		t.Fatalf("the cache holds %d operations of 512 KiB within 8 MiB", n)
	}
	var sum int64
	for _, co := range c.m {
		sum += co.weight
	}
	if sum != c.bytes {
		t.Fatalf("the cache counts %d bytes, its operations weigh %d", c.bytes, sum)
	}
}

package readfwd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/schemas/reads"
)

// replies receives the projectors' answers on one wildcard inbox
// subscription, one token per request. Unlike nats.go's request mux, which
// keeps the first message of a reply and drops the rest, it joins an answer
// sent in chunks (reads.ChunkHeader): an answer larger than the broker's
// max_payload comes whole.
type replies struct {
	nc     *nats.Conn
	prefix string // the inbox subject before the token, ending in "."
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	waiting map[string]*answer
}

// answer is one request's reply as it arrives.
type answer struct {
	done  chan struct{} // closed once data or err is set
	parts [][]byte
	n     int // chunks announced; 0 before the first
	data  []byte
	err   error
}

// errNoResponders: no projector is subscribed to the read subject.
var errNoResponders = errors.New("no projector subscribed")

// errChunkLost: a chunk of an answer did not arrive in order (a slow
// consumer dropped it, or the projector stopped mid-answer); asking again
// can succeed.
var errChunkLost = errors.New("a chunk of the answer was lost")

func newReplies(nc *nats.Conn) (*replies, error) {
	r := &replies{nc: nc, prefix: nc.NewInbox() + ".", waiting: map[string]*answer{}}
	sub, err := nc.Subscribe(r.prefix+"*", r.on)
	if err != nil {
		return nil, fmt.Errorf("subscribe read replies: %w", err)
	}
	// The callback only files each message under its token, and a chunked
	// answer is held whole anyway: the default pending bound (64 MiB) would
	// only drop the chunks of an answer larger than it, every time.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("read replies pending limits: %w", err)
	}
	r.sub = sub
	return r, nil
}

// close stops receiving; requests still waiting end with their context.
func (r *replies) close() error { return r.sub.Unsubscribe() }

// request publishes data to subject with a reply token and waits for the
// whole answer.
func (r *replies) request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	a := &answer{done: make(chan struct{})}
	r.mu.Lock()
	r.next++
	token := strconv.FormatUint(r.next, 36)
	r.waiting[token] = a
	r.mu.Unlock()
	if err := r.nc.PublishRequest(subject, r.prefix+token, data); err != nil {
		r.forget(token)
		return nil, err
	}
	select {
	case <-a.done:
		return a.data, a.err
	case <-ctx.Done():
		r.forget(token)
		return nil, ctx.Err()
	}
}

func (r *replies) forget(token string) {
	r.mu.Lock()
	delete(r.waiting, token)
	r.mu.Unlock()
}

// on takes one message of an answer. A message without a chunk header is
// the whole answer; chunks must come in order (one projector publishes
// them on one connection, which NATS delivers in order), else the answer
// fails with errChunkLost. An answer nobody waits for any more is dropped.
func (r *replies) on(m *nats.Msg) {
	token := strings.TrimPrefix(m.Subject, r.prefix)
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.waiting[token]
	if a == nil {
		return
	}
	finish := func(data []byte, err error) {
		a.data, a.err = data, err
		delete(r.waiting, token)
		close(a.done)
	}
	h := m.Header.Get(reads.ChunkHeader)
	switch {
	case h == "" && len(m.Data) == 0 && m.Header.Get("Status") == "503":
		finish(nil, errNoResponders)
	case h == "" && a.n == 0:
		finish(m.Data, nil)
	default:
		i, n, ok := reads.ParseChunk(h)
		if !ok || i != len(a.parts)+1 || (a.n != 0 && n != a.n) {
			finish(nil, fmt.Errorf("%w: got %q after %d of %d", errChunkLost, h, len(a.parts), a.n))
			return
		}
		a.n = n
		a.parts = append(a.parts, m.Data)
		if i == n {
			finish(bytes.Join(a.parts, nil), nil)
		}
	}
}

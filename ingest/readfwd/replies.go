package readfwd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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

// answer is one ask's reply as it arrives.
type answer struct {
	first chan *answer // the request's: takes the first of its asks' answers to end
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
// whole answer. An ask without an answer after hedgeAfter is followed by
// another, under a new token, up to maxAsks, and the first answer to end
// is taken: the broker hands each ask to a replica of the queue group at
// random, and a replica that hangs (a stopped process, a stalled VM) keeps
// its subscription until the server's pings find it. One ask alone waited
// for its whole deadline and failed 503 read_unavailable, half of all reads
// with two replicas, while the other answered in milliseconds. A replica
// that is only slow is not cut: its answer is taken if it comes first.
func (r *replies) request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	first := make(chan *answer, maxAsks) // never blocks an ask's end
	var tokens []string
	defer func() {
		for _, token := range tokens {
			r.forget(token)
		}
	}()
	ask := func() error {
		a := &answer{first: first}
		r.mu.Lock()
		r.next++
		token := strconv.FormatUint(r.next, 36)
		r.waiting[token] = a
		r.mu.Unlock()
		tokens = append(tokens, token)
		return r.nc.PublishRequest(subject, r.prefix+token, data)
	}
	if err := ask(); err != nil {
		return nil, err
	}
	hedge := time.NewTimer(hedgeAfter)
	defer hedge.Stop()
	for {
		select {
		case a := <-first:
			return a.data, a.err
		case <-hedge.C:
			if len(tokens) < maxAsks && ask() == nil {
				hedge.Reset(hedgeAfter)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// hedgeAfter is how long an ask goes without an answer before another is
// sent, and maxAsks how many a read sends at most. A replica that is alive
// answers within the projector's read wait (2 s, projector.Config.ReadWait:
// how long it waits for the fold to reach a read's barrier before it says
// it is catching up) and milliseconds more, so an ask unanswered after
// hedgeAfter is one a replica will not answer: a second ask never doubles
// the work of a replica that is only slow (at a second, a loaded replica
// got up to four asks per read, which loaded it more). With the read's
// 5 s budget that is two asks: with two replicas, one hung, a read fails
// one time in four instead of one in two, for the 20 s until the server
// drops the hung one (broker.ClientPingInterval).
const (
	hedgeAfter = 2500 * time.Millisecond
	maxAsks    = 2
)

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
		a.first <- a // room for every ask's: never blocks
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

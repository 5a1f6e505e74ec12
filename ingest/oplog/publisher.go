package oplog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher appends messages to the stream and waits for their PubAcks:
// what jetstream.PublishMsg does, pipelined on one reply subscription for
// the whole writer. Each publish is written to the connection's buffer
// and the caller waits only for its own PubAck, so the appends of every
// request in flight share the connection's flushes and the broker's
// round trips; a PubAck is matched to its publish by the token ending its
// reply subject and read without reflection (parsePubAck). Why not
// jetstream.PublishMsg: a request-reply per publish (a context, a
// response-mux entry) and a PubAck decoded with encoding/json cost about
// as much CPU as the rest of the append.
type publisher struct {
	nc     *nats.Conn
	prefix string // the reply subjects' prefix, "<inbox>."
	sub    *nats.Subscription

	// appended, when set, is told of every message the broker stored,
	// in the order of its PubAcks (Options.Appended).
	appended func(seq uint64, subject string, data []byte)

	mu      sync.Mutex
	closed  bool
	next    uint64
	waiting map[uint64]waiter
	// sweeping: the sweeper's ticker runs. It stops once no publish
	// waits, so an idle gateway is not woken twenty times a second, and
	// a wait with a deadline starts it again (wake).
	sweeping bool

	wake  chan struct{} // a wait with a deadline, the sweeper stopped (capacity one)
	stop  chan struct{} // closed by close: ends the sweeper
	swept chan struct{} // closed when the sweeper has ended
}

// waiter is a publish waiting for its PubAck, until deadline (zero:
// none): the sweeper ends a wait that outlives it.
type waiter struct {
	ch       chan answer
	m        *nats.Msg
	deadline time.Time
	// aside: m goes to another stream than the log (publishAside), so its
	// PubAck is not told to appended.
	aside bool
}

// answer is the broker's answer to a publish, and the PubAck in it when it
// has the usual shape (scanPubAck), read once, by reply.
type answer struct {
	msg *nats.Msg
	ack *jetstream.PubAck
	// err ends a wait with no answer from the broker: nats.ErrTimeout
	// from the sweeper (the deadline passed first), errClosed from close.
	err error
}

// sweepEvery is how often the sweeper looks for waits past their
// deadline: a publish bounded by a deadline ends at most this much after
// it, without a timer of its own.
const sweepEvery = 50 * time.Millisecond

// errClosed is the error of a publish after close: nothing is published,
// since its acknowledgement could not be received.
var errClosed = errors.New("oplog: writer closed")

// Publish retries after "no responders" (the stream's leader moving) as
// jetstream.PublishMsg does.
const (
	noRespondersRetries = 2
	noRespondersWait    = 250 * time.Millisecond
)

func newPublisher(nc *nats.Conn, appended func(seq uint64, subject string, data []byte)) (*publisher, error) {
	p := &publisher{nc: nc, prefix: nc.NewInbox() + ".", appended: appended, waiting: make(map[uint64]waiter),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), swept: make(chan struct{})}
	sub, err := nc.Subscribe(p.prefix+"*", p.reply)
	if err != nil {
		return nil, fmt.Errorf("subscribe to publish acks: %w", err)
	}
	p.sub = sub
	go p.sweep()
	return p, nil
}

// close stops taking acks and ends the sweeper: a publish still waiting
// ends at once with errClosed (what the broker did with it is unknown: a
// retry with the same op_id finds out), and a later one is refused
// (errClosed) without publishing.
func (p *publisher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.sub.Unsubscribe()
	close(p.stop)
	<-p.swept
	p.endWaits(errClosed, func(waiter) bool { return true })
}

// sweep ends, every sweepEvery while publishes wait, the waits whose
// deadline has passed. It is the publisher's one goroutine, ended by
// close.
func (p *publisher) sweep() {
	defer close(p.swept)
	t := time.NewTicker(sweepEvery)
	t.Stop() // started by the first wait with a deadline (request)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
			t.Reset(sweepEvery)
		case now := <-t.C:
			p.endWaits(nats.ErrTimeout, func(w waiter) bool { return !w.deadline.IsZero() && !now.Before(w.deadline) })
			p.mu.Lock()
			idle := len(p.waiting) == 0
			p.sweeping = !idle
			p.mu.Unlock()
			if idle {
				t.Stop()
			}
		}
	}
}

// endWaits answers err to the waits due reports, which then hear nothing
// more (reply finds them gone).
func (p *publisher) endWaits(err error, due func(waiter) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, w := range p.waiting {
		if due(w) {
			delete(p.waiting, id)
			w.ch <- answer{err: err} // buffered: never blocks
		}
	}
}

// reply hands a PubAck (or the broker's "no responders") to the publish
// waiting for it. It runs on the subscription's goroutine, so appended
// hears of the stored messages in the order of their PubAcks: the
// broker's order. A duplicate stored nothing (the message stored is the
// first one); an answer of another shape is left to the waiter, and
// appended does not hear of it (its listener reads it from the stream).
func (p *publisher) reply(m *nats.Msg) {
	if len(m.Subject) <= len(p.prefix) {
		return
	}
	id, err := strconv.ParseUint(m.Subject[len(p.prefix):], 36, 64)
	if err != nil {
		return
	}
	p.mu.Lock()
	w, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if !ok {
		return
	}
	ack, _ := scanPubAck(m.Data)
	if p.appended != nil && !w.aside && ack != nil && !ack.Duplicate && ack.Sequence > 0 {
		p.appended(ack.Sequence, w.m.Subject, w.m.Data)
	}
	w.ch <- answer{msg: m, ack: ack} // buffered: never blocks
}

// publish appends m and returns its PubAck: the broker stored m (or found
// its Nats-Msg-Id in the duplicate window: Duplicate), or refused it (a
// *jetstream.APIError: an expectation not met, the store full...).
// m.Reply is overwritten.
func (p *publisher) publish(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	return p.send(ctx, m, false)
}

// publishAside is publish for a message to another stream than the log (a
// key-value bucket's subject): the same pipeline, but its PubAck, a
// sequence of that other stream, is not told to appended.
func (p *publisher) publishAside(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	return p.send(ctx, m, true)
}

func (p *publisher) send(ctx context.Context, m *nats.Msg, aside bool) (*jetstream.PubAck, error) {
	for attempt := 0; ; attempt++ {
		resp, err := p.request(ctx, m, aside)
		if err != nil {
			return nil, err
		}
		if resp.ack != nil {
			return resp.ack, nil
		}
		if len(resp.msg.Data) == 0 && resp.msg.Header.Get("Status") == "503" {
			// No responders: the stream has no leader for now.
			if attempt == noRespondersRetries {
				return nil, jetstream.ErrNoStreamResponse
			}
			select {
			case <-time.After(noRespondersWait):
				continue
			case <-ctx.Done():
				return nil, jetstream.ErrNoStreamResponse
			}
		}
		return parsePubAck(resp.msg.Data)
	}
}

// request publishes m with a reply subject of its own and waits for the
// one answer, until ctx is done or its deadline passes (waitFor: an
// append's context starts no timer for it).
func (p *publisher) request(ctx context.Context, m *nats.Msg, aside bool) (answer, error) {
	// An append that waited out its time before publishing (behind its
	// entity's lock, while the broker was slow) is answered 503 anyway:
	// published now, it would land after that answer, unasked.
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return answer{}, nats.ErrTimeout
		}
		return answer{}, err
	}
	done, deadline := waitFor(ctx)
	ch := make(chan answer, 1)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return answer{}, errClosed
	}
	p.next++
	id := p.next
	p.waiting[id] = waiter{ch: ch, m: m, deadline: deadline, aside: aside}
	if !deadline.IsZero() && !p.sweeping {
		p.sweeping = true
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
	m.Reply = p.prefix + strconv.FormatUint(id, 36)
	if err := p.nc.PublishMsg(m); err != nil {
		p.forget(id)
		return answer{}, err
	}
	select {
	case resp := <-ch:
		if resp.err != nil {
			return answer{}, resp.err
		}
		return resp, nil
	case <-done:
		p.forget(id)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return answer{}, nats.ErrTimeout
		}
		return answer{}, ctx.Err()
	}
}

func (p *publisher) forget(id uint64) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

// pubAckResponse is the broker's answer to a publish, for the answers
// parsePubAck does not read itself (an error, an unusual shape).
type pubAckResponse struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	jetstream.PubAck
}

// parsePubAck reads the broker's answer to a publish. The usual answer,
// {"stream":"PUSHGO_OPS","seq":42} (with "duplicate":true, or a
// "domain"), is read by scanning its members; any other shape (an
// "error", nested values, escapes) is decoded with the json package. The
// result is what jetstream.PublishMsg returns: the PubAck, the broker's
// *jetstream.APIError, or jetstream.ErrInvalidJSAck.
func parsePubAck(b []byte) (*jetstream.PubAck, error) {
	if ack, ok := scanPubAck(b); ok {
		return ack, nil
	}
	var r pubAckResponse
	if err := json.Unmarshal(b, &r, json.RejectUnknownMembers(false)); err != nil {
		return nil, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return nil, fmt.Errorf("nats: %w", r.Error)
	}
	if r.Stream == "" {
		return nil, jetstream.ErrInvalidJSAck
	}
	ack := r.PubAck
	return &ack, nil
}

// scanPubAck reads a flat object of string, number and boolean members
// without escapes, keeping PubAck's (stream, seq, duplicate, domain,
// val); ok is false for anything else, and for anything the json package
// would refuse or read otherwise (a member twice, a type that is not the
// field's, a number that is not a plain unsigned integer, an "error"):
// the caller decodes it fully (FuzzPubAck holds the two to agreeing).
func scanPubAck(b []byte) (ack *jetstream.PubAck, ok bool) {
	var a jetstream.PubAck
	var seen [8][]byte
	n := 0
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	for {
		key, j, ok := scanString(b, i)
		if !ok || n == len(seen) {
			return nil, false
		}
		for _, k := range seen[:n] {
			if string(k) == string(key) {
				return nil, false
			}
		}
		seen[n] = key
		n++
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			s, j, ok := scanString(b, i)
			if !ok {
				return nil, false
			}
			switch string(key) {
			case "stream":
				a.Stream = string(s)
			case "domain":
				a.Domain = string(s)
			case "val":
				a.Value = string(s)
			case "seq", "duplicate", "error":
				return nil, false
			}
			i = j
		case c == 't' || c == 'f':
			v, j, ok := scanBool(b, i)
			if !ok {
				return nil, false
			}
			switch string(key) {
			case "duplicate":
				a.Duplicate = v
			case "stream", "domain", "val", "seq", "error":
				return nil, false
			}
			i = j
		case c >= '0' && c <= '9':
			v, j, ok := scanUint(b, i)
			if !ok {
				return nil, false
			}
			switch string(key) {
			case "seq":
				a.Sequence = v
			case "stream", "domain", "val", "duplicate", "error":
				return nil, false
			}
			i = j
		default: // an object, an array, null, a negative number
			return nil, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == '}' {
			if skipSpace(b, i+1) != len(b) || a.Stream == "" {
				return nil, false
			}
			return &a, true
		}
		if b[i] != ',' {
			return nil, false
		}
		i = skipSpace(b, i+1)
	}
}

// scanUint reads the unsigned integer starting at b[i] (a digit): no
// leading zero, fraction or exponent, at most 19 digits (below 2^63, so
// no overflow).
func scanUint(b []byte, i int) (uint64, int, bool) {
	var v uint64
	j := i
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		v = v*10 + uint64(b[j]-'0')
	}
	if j-i > 19 || (b[i] == '0' && j-i > 1) {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	return v, j, true
}

// scanString reads the string starting at b[i] ('"'), which must hold no
// escape and no control character; it returns its bytes and the index
// after its closing quote.
func scanString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func scanBool(b []byte, i int) (bool, int, bool) {
	switch {
	case len(b)-i >= 4 && string(b[i:i+4]) == "true":
		return true, i + 4, true
	case len(b)-i >= 5 && string(b[i:i+5]) == "false":
		return false, i + 5, true
	}
	return false, 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

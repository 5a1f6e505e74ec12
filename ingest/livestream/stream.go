package livestream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Stream is one client's stream of a channel's operations: every one with
// a sequence above the resume point, in log order, each once, first from
// the log, then from the feed. Next and Close are called by one goroutine.
type Stream struct {
	f       *Follower
	channel string
	client  string // the client address's key (limits.Client), "" when none
	filter  string
	// last is the sequence of the last operation given (or the resume
	// point): nothing at or below it is given again.
	last    uint64
	state   state
	mark    uint64 // the feed's mark at registration
	confirm bool   // bridging: the replica had nothing more; ask the leader
	pending []*Op  // read, not yet given
	sub     *sub
	timer   *time.Timer
	closed  bool
	// gapFirst, when not 0, is the log's first retained sequence at a
	// resume from before it (Gap).
	gapFirst uint64
}

type state int

const (
	// fromLog: reading the channel's operations from the log, off the
	// feed, until the end of the log.
	fromLog state = iota
	// bridging: registered with the feed at mark; reading from the log
	// what lies between the last given and the mark.
	bridging
	// live: giving what the feed hands over.
	live
)

// Next returns the next operation. When none comes within idle (idle > 0)
// it returns nil and a nil error: time for a keep-alive. It returns an
// error when ctx ends, the log cannot be read (the broker is away) or the
// follower was ended (ErrClosed: the process is stopping); the client
// resumes from the last sequence it got.
func (s *Stream) Next(ctx context.Context, idle time.Duration) (*Op, error) {
	for {
		if s.f.ended.Load() {
			return nil, ErrClosed
		}
		for len(s.pending) > 0 {
			op := s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
			if op.Seq > s.last {
				s.last = op.Seq
				if op.expired(time.Now().UnixMilli()) {
					continue
				}
				return op, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch s.state {
		case fromLog:
			batch, end, err := s.f.readBatch(ctx, s.filter, s.last+1)
			if err != nil {
				return nil, err
			}
			s.pending = batch
			if end {
				if s.mark, err = s.f.register(ctx, s); err != nil {
					return nil, err
				}
				s.state, s.confirm = bridging, true
			}
		case bridging:
			if s.last >= s.mark {
				s.state = live
				continue
			}
			if !s.confirm {
				batch, end, err := s.f.readBatch(ctx, s.filter, s.last+1)
				if err != nil {
					return nil, err
				}
				s.pending, s.confirm = batch, end || len(batch) == 0
				continue
			}
			// The replica that answered the direct get may lag the
			// leader (a cluster): what lies between the last given and
			// the mark is asked of the leader, which has it all.
			op, err := s.f.readLeader(ctx, s.filter, s.last+1)
			if err != nil {
				return nil, err
			}
			if op != nil && op.Seq <= s.mark {
				s.pending = append(s.pending, op)
				s.confirm = false
				continue
			}
			s.state = live
		case live:
			op, err := s.nextLive(ctx, idle)
			if op != nil && err == nil && op.expired(time.Now().UnixMilli()) {
				continue
			}
			if op != nil || err != nil {
				return op, err
			}
			if s.state == live {
				return nil, nil // idle
			}
		}
	}
}

// nextLive waits for the feed. It returns nil, nil when idle passed, or
// when the feed took the stream off (s.state is then fromLog).
func (s *Stream) nextLive(ctx context.Context, idle time.Duration) (*Op, error) {
	var tick <-chan time.Time
	if idle > 0 {
		if s.timer == nil {
			s.timer = time.NewTimer(idle)
		} else {
			s.timer.Reset(idle)
		}
		tick = s.timer.C
	}
	for {
		select {
		case op, ok := <-s.sub.ch:
			if !ok { // fell behind, or the feed ended: read on from the log
				s.f.mu.Lock()
				s.sub = nil
				s.f.mu.Unlock()
				s.state = fromLog
				return nil, nil
			}
			if op.Seq > s.last {
				s.last = op.Seq
				return op, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick:
			return nil, nil
		}
	}
}

// Buffered reports whether Next has an operation at hand to give (read,
// not yet given), so a writer can flush when it has none. What Next would
// leave out (a message whose ttl has passed, an operation given already)
// is dropped here: counting it made the writer hold back the operation it
// had just written until the next one, or the keep-alive 15 s later.
func (s *Stream) Buffered() bool {
	now := time.Now().UnixMilli()
	for {
		for len(s.pending) > 0 {
			op := s.pending[0]
			if op.Seq > s.last && !op.expired(now) {
				return true
			}
			if op.Seq > s.last {
				s.last = op.Seq // left out, as Next leaves it
			}
			s.pending[0] = nil
			s.pending = s.pending[1:]
		}
		if s.state != live || s.sub == nil || len(s.sub.ch) == 0 {
			return false
		}
		op, ok := <-s.sub.ch // one is buffered: no wait
		if !ok {
			return false
		}
		s.pending = append(s.pending, op)
	}
}

// Last is the sequence of the last operation given, or the resume point.
func (s *Stream) Last() uint64 { return s.last }

// Close ends the stream. Later calls do nothing.
func (s *Stream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.f.release(s)
}

// readBatch reads the next operations matching filter from sequence from
// on with one direct get (any replica answers). end reports that the
// replica has no more.
func (f *Follower) readBatch(ctx context.Context, filter string, from uint64) (batch []*Op, end bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	inbox, replies, done, err := f.replies.open()
	if err != nil {
		return nil, false, fmt.Errorf("livestream: read %s: %w", filter, err)
	}
	defer done()
	req := fmt.Appendf(nil, `{"seq":%d,"next_by_subj":%q,"batch":%d,"max_bytes":%d}`, from, filter, batchSize, batchBytes)
	if err := f.nc.PublishRequest(f.directGet, inbox, req); err != nil {
		return nil, false, fmt.Errorf("livestream: read %s: %w", filter, err)
	}
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, false, fmt.Errorf("livestream: read %s from %d: %w", filter, from, ctx.Err())
		}
		if st := m.Header.Get("Status"); st != "" {
			switch st {
			case "204": // end of batch
				return batch, m.Header.Get("Nats-Num-Pending") == "0", nil
			case "404": // nothing from there on
				return batch, true, nil
			default:
				return nil, false, fmt.Errorf("livestream: read %s from %d: status %s %s", filter, from, st, m.Header.Get("Description"))
			}
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("livestream: read %s from %d: sequence %q", filter, from, m.Header.Get("Nats-Sequence"))
		}
		batch = append(batch, newOp(seq, m.Header, m.Data))
	}
}

// readLeader reads the first operation matching filter from sequence from
// on from the stream's leader (nil when there is none).
func (f *Follower) readLeader(ctx context.Context, filter string, from uint64) (*Op, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req := fmt.Appendf(nil, `{"seq":%d,"next_by_subj":%q}`, from, filter)
	m, err := f.nc.RequestWithContext(ctx, f.msgGet, req)
	if err != nil {
		return nil, fmt.Errorf("livestream: read %s from %d: %w", filter, from, err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq    uint64 `json:"seq"`
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("livestream: read %s from %d: %w", filter, from, err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return nil, nil
	case resp.Error != nil:
		return nil, fmt.Errorf("livestream: read %s from %d: %d %s", filter, from, resp.Error.Code, resp.Error.Description)
	case resp.Message == nil:
		return nil, fmt.Errorf("livestream: read %s from %d: empty answer", filter, from)
	}
	var h nats.Header
	if len(resp.Message.Header) > 0 {
		if h, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("livestream: read %s from %d: %w", filter, from, err)
		}
	}
	return newOp(resp.Message.Seq, h, resp.Message.Data), nil
}

func newOp(seq uint64, h nats.Header, data []byte) *Op {
	return opOf(seq, ops.Name(h.Get(streams.HeaderOp)), data)
}

// replyMux routes the replies of a Follower's direct gets: one
// subscription on a wildcard inbox, each request on a subject of its own
// under it with a channel that holds a whole batch (a subscription per
// request would cost a SUB and an UNSUB, and nats.go gives a synchronous
// one a 64K-message channel).
type replyMux struct {
	nc      *nats.Conn
	mu      sync.Mutex
	sub     *nats.Subscription
	prefix  string
	n       uint64
	waiting map[string]chan *nats.Msg
	closed  bool
}

// open returns a new reply subject and the channel its replies come on;
// done forgets it.
func (r *replyMux) open() (subject string, replies <-chan *nats.Msg, done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "", nil, nil, errors.New("closed")
	}
	if r.sub == nil {
		r.prefix = r.nc.NewInbox() + "."
		if r.sub, err = r.nc.Subscribe(r.prefix+"*", r.route); err != nil {
			return "", nil, nil, err
		}
		r.waiting = map[string]chan *nats.Msg{}
	}
	r.n++
	subject = r.prefix + strconv.FormatUint(r.n, 36)
	ch := make(chan *nats.Msg, batchSize+2) // the batch, its end, a no-responders status
	r.waiting[subject] = ch
	return subject, ch, func() {
		r.mu.Lock()
		delete(r.waiting, subject)
		r.mu.Unlock()
	}, nil
}

// route hands one reply to its request; one nobody waits for any more
// (timed out) is dropped.
func (r *replyMux) route(m *nats.Msg) {
	r.mu.Lock()
	ch := r.waiting[m.Subject]
	r.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m:
	default: // more than a batch: the request fails on its timeout
	}
}

func (r *replyMux) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
}

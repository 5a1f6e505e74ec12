package consume

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LocalFeed carries the messages a process appends to a stream, once the
// broker has acknowledged them, to an Ordered loop over that stream in the
// same process (OrderedConfig.Local), so that the broker need not deliver
// them to it again. On one node every write was handed back by the broker
// to the projector's fold; that delivery (the consumer's pull, the
// broker's copy out, the client's parse and the message's headers) was
// about a tenth of the write path's CPU.
//
// A PubAck names the sequence at which the broker stored exactly the
// subject and data published, so a message offered here is the log's
// message at that sequence. The loop takes them in sequence order; one
// it does not hold (another process's append, a publish whose PubAck was
// lost, an offer dropped because the feed was full) it reads from the
// stream, and a long run of them from an ordered consumer: what the loop
// hands its handler is always the log, in order, whatever the feed holds.
//
// A LocalFeed is safe for concurrent use. Offers never block.
type LocalFeed struct {
	mu    sync.Mutex
	held  map[uint64]localMsg
	max   int
	floor uint64 // the loop has passed it: offers at or below are dropped
	wake  chan struct{}
	poke  chan struct{} // Poke: a reader waits; look at the stream's end soon
}

// NewLocalFeed returns a feed that holds at most max messages not yet
// taken (default 8192 when max <= 0); offers beyond it are dropped, and
// the loop reads those from the broker.
func NewLocalFeed(max int) *LocalFeed {
	if max <= 0 {
		max = 8192
	}
	return &LocalFeed{held: make(map[uint64]localMsg), max: max, wake: make(chan struct{}, 1), poke: make(chan struct{}, 1)}
}

// Poke tells the loop that a reader waits for a sequence it may not have
// seen: one another process appended, which no offer brings. A loop on
// the feed with nothing to take asks the stream for its end less and less
// often while the stream has nothing new (feedPoll up to feedPollIdle, so
// an idle process does not ask the broker twenty times a second); a poke
// has it ask again within feedPoll, and hand over an append the feed does
// not hold within about two (the second look confirms no offer brings
// it). Poke never blocks.
func (f *LocalFeed) Poke() {
	select {
	case f.poke <- struct{}{}:
	default:
	}
}

// Offer hands the loop the message the broker acknowledged at seq. The
// caller MUST NOT change data afterwards.
func (f *LocalFeed) Offer(seq uint64, subject string, data []byte) {
	f.mu.Lock()
	if seq > f.floor && len(f.held) < f.max {
		f.held[seq] = localMsg{seq: seq, subject: subject, data: data}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take removes and returns the message at seq, if held, and moves the
// floor past it (or up to it, when the loop waits for it).
func (f *LocalFeed) take(seq uint64) (localMsg, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.held[seq]
	if !ok {
		f.floor = max(f.floor, seq-1)
		return m, false
	}
	f.floor = max(f.floor, seq)
	delete(f.held, seq)
	m.pending = uint64(len(f.held))
	return m, true
}

// passed moves the floor to seq, a message the loop had from the broker,
// and reports whether the feed holds the one after it.
func (f *LocalFeed) passed(seq uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.floor = max(f.floor, seq)
	delete(f.held, seq)
	_, next := f.held[seq+1]
	return next
}

// lowest is the lowest sequence held above the floor (0: none held).
func (f *LocalFeed) lowest() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lo uint64
	for s := range f.held {
		if s <= f.floor {
			delete(f.held, s) // passed while it waited
			continue
		}
		if lo == 0 || s < lo {
			lo = s
		}
	}
	return lo
}

// localMsg is a message from the feed, or one read from the stream to
// fill a gap in it, as the loop's handler sees it: a jetstream.Msg with
// its sequence, subject and data. There is nothing to acknowledge (the
// Ordered loop's consumer keeps no state on the server).
type localMsg struct {
	seq     uint64
	subject string
	data    []byte
	header  nats.Header
	pending uint64
}

var _ jetstream.Msg = (*localMsg)(nil)

func (m *localMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}, NumDelivered: 1, NumPending: m.pending}, nil
}
func (m *localMsg) Data() []byte                       { return m.data }
func (m *localMsg) Headers() nats.Header               { return m.header }
func (m *localMsg) Subject() string                    { return m.subject }
func (m *localMsg) Reply() string                      { return "" }
func (m *localMsg) Ack() error                         { return nil }
func (m *localMsg) DoubleAck(context.Context) error    { return nil }
func (m *localMsg) Nak() error                         { return nil }
func (m *localMsg) NakWithDelay(time.Duration) error   { return nil }
func (m *localMsg) InProgress() error                  { return nil }
func (m *localMsg) Term() error                        { return nil }
func (m *localMsg) TermWithReason(reason string) error { return nil }

package consume_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/consume"
)

// TestOrderedWithLocalFeedHandsTheLogInOrder: a loop with a local feed
// hands its handler exactly the log, in order, with each message's own
// subject and data, whatever the feed holds: appends offered in PubAck
// order, appends offered out of order (writers racing), appends never
// offered (another process's, a PubAck lost, an offer dropped by a full
// feed), messages in the log before the loop started, and handler
// restarts (ErrRestart) at random points. The seed is logged
// (CONSUME_FEED_SEED replays it).
func TestOrderedWithLocalFeedHandsTheLogInOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CONSUME_FEED_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 7))
	var rngMu sync.Mutex
	chance := func(p float64) bool { rngMu.Lock(); defer rngMu.Unlock(); return rng.Float64() < p }
	var calm atomic.Bool // no restarts, no lost offers

	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	publish(t, b.JS, 0, 50) // before the loop: caught up through a consumer
	feed := consume.NewLocalFeed(128)

	h := &inOrder{restart: func() bool { return !calm.Load() && chance(0.002) }}
	o, err := consume.NewOrdered(b.JS, consume.OrderedConfig{Stream: "S", Local: feed, RetryDelay: time.Millisecond, MaxFailures: 1000,
		FeedBackoff: time.Millisecond, // back to the feed at once: every path, often
		After:       h.After, Handle: h.Handle})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, o)

	// Writers: one offers each append in PubAck order (as ingest does),
	// two race and offer out of order, one never offers (another
	// process); any offer may be lost.
	const perWriter = 400
	ctx := context.Background()
	var writers sync.WaitGroup
	var pubErr error
	var pubMu sync.Mutex
	// paced: each append is handled before the next is written.
	write := func(name string, offer bool, pause time.Duration, paced bool) {
		for i := range perWriter {
			subject, data := "s."+name, []byte(fmt.Sprintf("%s-%d", name, i))
			ack, err := b.JS.Publish(ctx, subject, data)
			if err != nil {
				pubMu.Lock()
				pubErr = errors.Join(pubErr, err)
				pubMu.Unlock()
				return
			}
			if offer && (calm.Load() || !chance(0.01)) {
				feed.Offer(ack.Sequence, subject, data)
			}
			if pause > 0 && chance(0.05) {
				time.Sleep(pause)
			}
			for deadline := time.Now().Add(20 * time.Second); paced && h.After() < ack.Sequence; {
				if time.Now().After(deadline) {
					pubMu.Lock()
					pubErr = errors.Join(pubErr, fmt.Errorf("seq %d not handled within 20s", ack.Sequence))
					pubMu.Unlock()
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	writers.Go(func() { write("ordered", true, 2*time.Millisecond, false) })
	writers.Go(func() { write("racing-a", true, time.Millisecond, false) })
	writers.Go(func() { write("racing-b", true, 0, false) })
	writers.Go(func() { write("foreign", false, 3*time.Millisecond, false) })
	writers.Wait()
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	mixed := uint64(50 + 4*perWriter)
	waitFor(t, "every message handled", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.after == mixed })
	// Then one writer offering in PubAck order, alone, with no restart
	// and no offer lost, as on one node in the steady state; each append
	// handled before the next, so the loop is never more than the feed's
	// 128 behind it. Unpaced, a loop starved of CPU (the machine busy with
	// other tests) fell further behind and rightly read the dropped ones
	// from the log, which left the share checked below to the scheduler.
	calm.Store(true)
	write("alone", true, 0, true)
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	total := mixed + perWriter
	waitFor(t, "every message handled", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.after == total })
	h.stopInOrder(t, stop)
	h.mu.Lock()
	defer h.mu.Unlock()
	// What was handled, in the end, is the log: each sequence's last
	// handling (a restart hands some again) has the log's subject and data.
	last := map[uint64]jetstream.Msg{}
	for _, m := range h.got {
		md, _ := m.Metadata()
		last[md.Sequence.Stream] = m
	}
	// And the feed was used: a message from it has no reply subject (there
	// is nothing to acknowledge), one the broker delivered has. Most of the
	// lone writer's come from it (all, usually; a loop that falls more
	// than the feed's 128 behind reads the dropped ones from the log).
	fromFeed := [2]int{}
	for seq, m := range last {
		if m.Reply() == "" {
			fromFeed[min(int(seq/(mixed+1)), 1)]++
		}
	}
	t.Logf("from the feed: %d of %d with racing and foreign writers, %d of %d from the lone writer", fromFeed[0], mixed, fromFeed[1], perWriter)
	if fromFeed[1] < perWriter/2 {
		t.Errorf("%d of the lone writer's %d messages from the feed: the loop hardly used it", fromFeed[1], perWriter)
	}
	s, err := b.JS.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= total; seq++ {
		m, ok := last[seq]
		if !ok {
			t.Fatalf("seq %d never handled", seq)
		}
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject() != raw.Subject || string(m.Data()) != string(raw.Data) {
			t.Fatalf("seq %d handled as %s %q, the log has %s %q", seq, m.Subject(), m.Data(), raw.Subject, raw.Data)
		}
	}
}

// TestOrderedFeedBacksOffWhenOthersAppend: when another process appends
// between this process's appends (several all-in-one gateways on one
// broker), each of its appends is a sequence the feed does not hold; the
// loop then stays on the broker's consumer for longer and longer instead
// of creating and deleting a consumer for each, and still hands the
// handler the log in order.
func TestOrderedFeedBacksOffWhenOthersAppend(t *testing.T) {
	b, feed, h, stop := runOnFeed(t)
	ctx := context.Background()
	apiCalls := func() uint64 {
		info, err := b.JS.AccountInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.API.Total
	}
	before := apiCalls()
	const pairs = 300
	for i := range pairs {
		ack, err := b.JS.Publish(ctx, "s.local", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		feed.Offer(ack.Sequence, "s.local", []byte(strconv.Itoa(i)))
		if _, err := b.JS.Publish(ctx, "s.other", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, "every message handled", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.after == 2*pairs })
	calls := apiCalls() - before // publishes are not API calls
	h.stopInOrder(t, stop)
	// Without the back-off: a consumer created, looked up and deleted for
	// each of the other process's 300 appends, 900 calls and more.
	t.Logf("%d JetStream API calls for %d interleaved appends", calls, 2*pairs)
	if calls > 150 {
		t.Errorf("%d JetStream API calls for %d interleaved appends: the loop did not back off", calls, 2*pairs)
	}
}

// TestFeedPollSchedule: a loop on its feed asks the stream for its end
// every FeedPoll while the answer has news, and twice as long after each
// answer without, up to FeedPollIdle, so an idle gateway asks its broker
// about once a second instead of twenty times.
func TestFeedPollSchedule(t *testing.T) {
	every := consume.FeedPoll
	var idle []time.Duration
	for range 8 {
		every = consume.NextPoll(every, false)
		idle = append(idle, every)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		consume.FeedPollIdle, consume.FeedPollIdle, consume.FeedPollIdle, consume.FeedPollIdle}
	if fmt.Sprint(idle) != fmt.Sprint(want) {
		t.Errorf("intervals while the stream has nothing new: %v, want %v", idle, want)
	}
	if got := consume.NextPoll(consume.FeedPollIdle, true); got != consume.FeedPoll {
		t.Errorf("interval after an answer with news: %v, want %v (the next poll confirms it)", got, consume.FeedPoll)
	}
}

// TestPokeBringsAnotherProcessesAppend: a loop on its feed that has
// stopped asking the stream (its polls spaced an hour apart here) hands
// its handler another process's append, which no offer brings, as soon
// as a reader pokes the feed (a read waiting for that sequence): without
// the poke it would wait for the hour.
func TestPokeBringsAnotherProcessesAppend(t *testing.T) {
	var polls atomic.Int64
	restore := consume.SetPollAfter(func(every time.Duration, news bool) time.Duration {
		polls.Add(1)
		if news {
			return consume.FeedPoll
		}
		return time.Hour
	})
	t.Cleanup(restore)
	b, feed, h, stop := runOnFeed(t)
	ctx := context.Background()
	// An append offered, as the ingest of the same process does, then
	// the loop's first poll of an idle stream: the next is an hour away.
	ack, err := b.JS.Publish(ctx, "s.local", []byte("mine"))
	if err != nil {
		t.Fatal(err)
	}
	feed.Offer(ack.Sequence, "s.local", []byte("mine"))
	waitFor(t, "the offered append handled", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.after == 1 })
	waitFor(t, "a poll of the idle stream", func() bool { return polls.Load() >= 1 })

	if _, err := b.JS.Publish(ctx, "s.other", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	feed.Poke()
	waitFor(t, "another process's append handled after a poke", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.after == 2 })
	h.stopInOrder(t, stop)
}

// runOnFeed starts a broker with stream S and an Ordered loop over it
// with a local feed, handing its messages to an inOrder handler.
func runOnFeed(t *testing.T) (*brokertest.Broker, *consume.LocalFeed, *inOrder, func() error) {
	t.Helper()
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	feed := consume.NewLocalFeed(0)
	h := &inOrder{}
	o, err := consume.NewOrdered(b.JS, consume.OrderedConfig{Stream: "S", Local: feed, After: h.After, Handle: h.Handle})
	if err != nil {
		t.Fatal(err)
	}
	return b, feed, h, run(t, o)
}

// stopInOrder stops the loop (stop, from run) and fails t if it failed
// or if the handler saw a message out of order.
func (h *inOrder) stopInOrder(t *testing.T, stop func() error) {
	t.Helper()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bad != "" {
		t.Fatal(h.bad)
	}
}

// inOrder is a handler that records what it is handed: the last sequence
// (After), every message, and the first one that does not follow the one
// before. restart, when set and true for a message, makes it ask for a
// restart after that message.
type inOrder struct {
	restart func() bool

	mu    sync.Mutex
	after uint64
	got   []jetstream.Msg
	bad   string
}

func (h *inOrder) After() uint64 { h.mu.Lock(); defer h.mu.Unlock(); return h.after }

func (h *inOrder) Handle(ctx context.Context, msgs <-chan jetstream.Msg) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			seq := md.Sequence.Stream
			h.mu.Lock()
			if seq != h.after+1 && h.bad == "" {
				h.bad = fmt.Sprintf("seq %d handed after %d", seq, h.after)
			}
			h.after = seq
			h.got = append(h.got, m)
			h.mu.Unlock()
			if h.restart != nil && h.restart() {
				return fmt.Errorf("a restart after %d: %w", seq, consume.ErrRestart)
			}
		}
	}
}

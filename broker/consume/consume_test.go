package consume_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/consume"
)

func stream(t *testing.T, js jetstream.JetStream, retention jetstream.RetentionPolicy) {
	t.Helper()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Retention: retention}); err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := js.Publish(context.Background(), "s.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// seen collects the bodies handled, counting each.
type seen struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *seen) add(b []byte) {
	s.mu.Lock()
	s.n[string(b)]++
	s.mu.Unlock()
}

func (s *seen) all(from, to int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < to; i++ {
		if s.n[strconv.Itoa(i)] == 0 {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, l interface{ Run(context.Context) error }) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(cancel)
	return func() error { cancel(); return <-done }
}

// TestLoopRecreatesADeletedConsumer: a DeliverNew consumer deleted under
// the loop is recreated after what the loop acked, so every message
// published while it was missing is handled; Running says so meanwhile.
func TestLoopRecreatesADeletedConsumer(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	s := &seen{n: map[string]int{}}
	l := resumingLoop(t, b.JS, s)
	stop := run(t, l)
	waitFor(t, "running", l.Running)
	publish(t, b.JS, 0, 10)
	waitFor(t, "first ten handled", func() bool { return s.all(0, 10) })
	if err := b.JS.DeleteConsumer(context.Background(), "S", "c"); err != nil {
		t.Fatal(err)
	}
	publish(t, b.JS, 10, 30) // while the consumer is missing, or just recreated
	waitFor(t, "every later message handled", func() bool { return s.all(10, 30) })
	waitFor(t, "running again", l.Running)
	if err := stop(); err != nil {
		t.Fatalf("Run after ctx ended: %v", err)
	}
	if l.Running() {
		t.Fatal("Running after Run returned")
	}
}

// TestLoopSettles: Nak redelivers, Term does not, Held waits for Settle.
func TestLoopSettles(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.WorkQueuePolicy)
	s := &seen{n: map[string]int{}}
	var held []jetstream.Msg
	var mu sync.Mutex
	var l *consume.Loop
	l, err := consume.New(b.JS, consume.Config{Stream: "S",
		Consumer: jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute},
		Handler: func(_ context.Context, m jetstream.Msg) consume.Decision {
			s.add(m.Data())
			md, _ := m.Metadata()
			switch string(m.Data()) {
			case "0":
				if md.NumDelivered == 1 {
					return consume.Nak(0) // once: it comes back
				}
				return consume.Ack
			case "1":
				return consume.Term
			default:
				mu.Lock()
				held = append(held, m)
				mu.Unlock()
				return consume.Held
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	publish(t, b.JS, 0, 3)
	waitFor(t, "the nak'd message back", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.n["0"] == 2 })
	waitFor(t, "the held message", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == 1 })
	mu.Lock()
	l.Settle(held[0], consume.Ack)
	mu.Unlock()
	info, err := b.JS.Stream(context.Background(), "S")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the work queue empty", func() bool {
		i, err := info.Info(context.Background())
		return err == nil && i.State.Msgs == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s.n["1"] != 1 || s.n["2"] != 1 {
		t.Fatalf("term'd or held message delivered again: %v", s.n)
	}
}

// TestLoopEndsOnARejectedConfiguration: a consumer the broker refuses
// (deliver by start sequence, with no sequence) ends Run with an error.
func TestLoopEndsOnARejectedConfiguration(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	l, err := consume.New(b.JS, consume.Config{Stream: "S",
		Consumer: jetstream.ConsumerConfig{Durable: "c", DeliverPolicy: jetstream.DeliverByStartSequencePolicy, AckPolicy: jetstream.AckExplicitPolicy},
		Handler:  func(context.Context, jetstream.Msg) consume.Decision { return consume.Ack }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Run(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want the broker's rejection", err, ctx.Err())
	}
}

// TestOrderedRestartsAndGivesUp: a handler failing without progress is
// run again from After, MaxFailures times, then Run returns its error;
// progress resets the count.
func TestOrderedRestartsAndGivesUp(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	publish(t, b.JS, 0, 10)
	var (
		mu       sync.Mutex
		after    uint64
		attempts int
	)
	o, err := consume.NewOrdered(b.JS, consume.OrderedConfig{Stream: "S", MaxFailures: 2, RetryDelay: time.Millisecond,
		After: func() uint64 { mu.Lock(); defer mu.Unlock(); return after },
		Handle: func(ctx context.Context, msgs <-chan jetstream.Msg) error {
			mu.Lock()
			attempts++
			mu.Unlock()
			for m := range msgs {
				md, _ := m.Metadata()
				if string(m.Data()) == "5" {
					return fmt.Errorf("cannot handle seq %d", md.Sequence.Stream)
				}
				mu.Lock()
				after = md.Sequence.Stream
				mu.Unlock()
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = o.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v, want the handler's error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if after != 5 || attempts != 3 {
		t.Fatalf("after %d (want 5: seqs 1..5 handled), attempts %d (want 1 + MaxFailures)", after, attempts)
	}
}

// TestLoopKeepsAConsumerItCannotUpdate: a consumer another replica
// recreated from a start sequence cannot be updated back to DeliverNew; a
// starting loop binds it as it is instead of failing.
func TestLoopKeepsAConsumerItCannotUpdate(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	publish(t, b.JS, 0, 5)
	if _, err := b.JS.CreateConsumer(context.Background(), "S", jetstream.ConsumerConfig{Durable: "c",
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 3, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	s := &seen{n: map[string]int{}}
	l, err := consume.New(b.JS, consume.Config{Stream: "S",
		Consumer: jetstream.ConsumerConfig{Durable: "c", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy},
		Handler:  func(_ context.Context, m jetstream.Msg) consume.Decision { s.add(m.Data()); return consume.Ack }})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	waitFor(t, "the existing consumer's messages", func() bool { return s.all(2, 5) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestAckSyncIsAppliedBeforeALaterRequest: once AckSync returns, the
// broker has applied the acknowledgement, so a consumer reset asked right
// after it (what a pusher partition's next owner does after a hand-over)
// restarts after the message. Settle's Ack only sends it: the broker
// applies acknowledgements on the consumer's own queue, and may answer a
// later reset from the floor before it. Every other round the message was
// acknowledged by Settle just before (as a partition's floor usually is
// when it is handed over), which the client library will not send again.
func TestAckSyncIsAppliedBeforeALaterRequest(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	got := make(chan jetstream.Msg, 1)
	l, err := consume.New(b.JS, consume.Config{Stream: "S",
		Consumer: jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckAllPolicy, AckWait: time.Minute},
		Handler: func(_ context.Context, m jetstream.Msg) consume.Decision {
			got <- m
			return consume.Held
		}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, l)
	ctx := context.Background()
	stale := 0
	const rounds = 300
	for i := range rounds {
		publish(t, b.JS, i, i+1)
		var m jetstream.Msg
		select {
		case m = <-got:
		case <-time.After(20 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			l.Settle(m, consume.Ack)
		}
		if err := l.AckSync(ctx, m); err != nil {
			t.Fatalf("AckSync of %d: %v", md.Sequence.Stream, err)
		}
		resp, err := b.JS.ResetConsumer(ctx, "S", "c")
		if err != nil {
			t.Fatal(err)
		}
		if resp.ResetSeq != md.Sequence.Stream+1 {
			stale++
			t.Errorf("reset after the acknowledgement of %d restarts at %d", md.Sequence.Stream, resp.ResetSeq)
		}
	}
	if stale > 0 {
		t.Errorf("%d of %d resets started below an acknowledged message", stale, rounds)
	}
}

// resumingLoop is a loop over stream S's DeliverNew consumer "c" that
// recreates the consumer, found missing, right after the last message
// acknowledged, and records what it handles in s.
func resumingLoop(t *testing.T, js jetstream.JetStream, s *seen) *consume.Loop {
	t.Helper()
	base := jetstream.ConsumerConfig{Durable: "c", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy}
	l, err := consume.New(js, consume.Config{Stream: "S", Consumer: base, Heartbeat: 500 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		Resume: func(last uint64) (jetstream.ConsumerConfig, error) {
			c := base
			c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
			return c, nil
		},
		Handler: func(_ context.Context, m jetstream.Msg) consume.Decision { s.add(m.Data()); return consume.Ack }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// failingFirstCreate is a JetStream whose first CreateOrUpdateConsumer
// fails as a broker away does (a timeout), before it reaches the broker.
type failingFirstCreate struct {
	jetstream.JetStream
	failed atomic.Bool
}

func (f *failingFirstCreate) CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if f.failed.CompareAndSwap(false, true) {
		return nil, context.DeadlineExceeded
	}
	return f.JetStream.CreateOrUpdateConsumer(ctx, stream, cfg)
}

// TestLoopWhoseFirstCreateFailedStartsAsConfigured: a loop whose first
// creation of its consumer fails for a moment creates it from its
// configuration on the next try (DeliverNew: nothing of the log before),
// not from Resume, which is for a consumer that went missing while the
// loop ran: from Resume(0) a new pusher partition started at sequence 1,
// and the log's history was pushed as new.
func TestLoopWhoseFirstCreateFailedStartsAsConfigured(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	publish(t, b.JS, 0, 5) // the log before the loop
	s := &seen{n: map[string]int{}}
	l := resumingLoop(t, &failingFirstCreate{JetStream: b.JS}, s)
	stop := run(t, l)
	waitFor(t, "running", l.Running)
	publish(t, b.JS, 5, 6)
	waitFor(t, "the message published after the start handled", func() bool { return s.all(5, 6) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if s.n[strconv.Itoa(i)] > 0 {
			t.Fatalf("message %d, published before the loop started (DeliverNew), was handled", i)
		}
	}
}

// ackingLoop is a loop of stream S's durable consumer c, from new
// messages, acknowledging each.
func ackingLoop(t *testing.T, js jetstream.JetStream) *consume.Loop {
	t.Helper()
	l, err := consume.New(js, consume.Config{Stream: "S", Heartbeat: 500 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		Consumer: jetstream.ConsumerConfig{Durable: "c", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy},
		Handler:  func(context.Context, jetstream.Msg) consume.Decision { return consume.Ack }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHoldDuringAHoldLeavesNoPull: a second Hold while the loop waits out a
// first one leaves no pull behind once the loop has run again and
// stopped: the pull made as the first wait ended met the second hold, and
// its iterator (a subscription and goroutines) stayed for the connection's
// life.
func TestHoldDuringAHoldLeavesNoPull(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	l := ackingLoop(t, b.JS)
	before := b.NC.NumSubscriptions()
	stop := run(t, l)
	waitFor(t, "running", l.Running)
	l.Hold(300 * time.Millisecond)
	time.Sleep(100 * time.Millisecond) // within the first hold's wait
	l.Hold(600 * time.Millisecond)
	time.Sleep(700 * time.Millisecond) // past both holds: pulling again
	waitFor(t, "running after the holds", l.Running)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := b.NC.NumSubscriptions(); n != before {
		t.Fatalf("%d subscriptions once the loop stopped, %d before it ran: a pull left behind", n, before)
	}
}

// TestNotRunningWhenTheRebindAfterAHoldFails: a loop held says it runs
// while it waits; when it cannot bind its consumer again after the hold
// (the stream gone), it says it does not (readiness went on reporting a
// loop that pulled nothing).
func TestNotRunningWhenTheRebindAfterAHoldFails(t *testing.T) {
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	l := ackingLoop(t, b.JS)
	stop := run(t, l)
	waitFor(t, "running", l.Running)
	l.Hold(200 * time.Millisecond)
	if err := b.JS.DeleteStream(context.Background(), "S"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not running once the rebind failed", func() bool { return !l.Running() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestLoopKeepsItsPinThroughARebind: a pinned puller whose pull fails
// binds its consumer again with the handle that carries its pin id, so the
// broker goes on delivering to it at once. With a new handle (no pin id)
// the broker skipped its pulls until the pin expired (PinnedTTL), then
// pinned a puller afresh, maybe another replica: the partition stalled and
// moved for nothing.
func TestLoopKeepsItsPinThroughARebind(t *testing.T) {
	const ttl = 4 * time.Second
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	type delivery struct {
		loop      int
		body, pin string
	}
	got := make(chan delivery, 16)
	loops := make([]*consume.Loop, 2)
	for i := range loops {
		_, js := b.Conn(t) // a connection each, as replicas have
		l, err := consume.New(js, consume.Config{Stream: "S", PriorityGroup: "g",
			Heartbeat: 500 * time.Millisecond, PullExpiry: time.Second, RetryDelay: 20 * time.Millisecond,
			Consumer: jetstream.ConsumerConfig{Durable: "c", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckAllPolicy,
				PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{"g"}, PinnedTTL: ttl},
			Handler: func(_ context.Context, m jetstream.Msg) consume.Decision {
				got <- delivery{loop: i, body: string(m.Data()), pin: m.Headers().Get("Nats-Pin-Id")}
				return consume.Ack
			}})
		if err != nil {
			t.Fatal(err)
		}
		loops[i] = l
		run(t, l)
	}
	for i, l := range loops {
		waitFor(t, "loop "+strconv.Itoa(i)+" running", l.Running)
	}
	publish(t, b.JS, 1, 2)
	var first delivery
	select {
	case first = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("message 1 not delivered")
	}
	if first.pin == "" {
		t.Fatal("message 1 delivered with no pin id")
	}
	x := loops[first.loop]
	waitFor(t, "the pinned loop pulling again after a failed pull", x.BreakPull())
	publish(t, b.JS, 2, 3)
	// Well under the pin's TTL: delivered after it, the message went to
	// whichever puller the broker pinned afresh.
	select {
	case d := <-got:
		if d.body != "2" || d.loop != first.loop || d.pin != first.pin {
			t.Fatalf("message %s to loop %d pinned %q; want message 2 to loop %d, still pinned %q", d.body, d.loop, d.pin, first.loop, first.pin)
		}
	case <-time.After(ttl / 2):
		t.Fatalf("message 2 not delivered within %s (the pin's TTL is %s): the rebound loop lost its pin", ttl/2, ttl)
	}
}

// TestAStalledHandlerWithAFullWindowDropsNothing: a loop whose consumer's
// MaxAckPending is its buffer's size (the pusher's partitions, until 6
// December) holds its window unsettled, and its handler stalls just after
// the client library asked for the window's rest; settlements from
// elsewhere let the broker refill the window into that pull, which then
// waits for the last message it asked for: its idle heartbeats and expiry
// status came into a buffer with no room left, and the library dropped
// them ("slow consumer, messages dropped"; a message after them would be
// dropped too). The loop leaves room for them beyond MaxAckPending.
func TestAStalledHandlerWithAFullWindowDropsNothing(t *testing.T) {
	const window = 8
	b := brokertest.Start(t, brokertest.NoEnsure())
	stream(t, b.JS, jetstream.LimitsPolicy)
	publish(t, b.JS, 1, 3*window)
	nc, js := b.Conn(t)
	taken := make(chan jetstream.Msg, 4*window)
	release := make(chan struct{})
	var n atomic.Int32
	l, err := consume.New(js, consume.Config{Stream: "S", PullMaxMessages: window,
		Heartbeat: 500 * time.Millisecond, PullExpiry: 2 * time.Second,
		Consumer: jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: window},
		Handler: func(_ context.Context, m jetstream.Msg) consume.Decision {
			taken <- m
			// The stall: the library asked for the window's rest (a
			// second pull) as it handed over this message.
			if n.Add(1) == window/2+2 {
				<-release
			}
			return consume.Held
		}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			close(release)
		}
	}()
	run(t, l)
	// Half the window settled while the handler stalls on the next: the
	// broker delivers as many again into the pull that waits for room.
	for range window / 2 {
		l.Settle(<-taken, consume.Ack)
	}
	info := func() *jetstream.ConsumerInfo {
		c, err := b.JS.Consumer(context.Background(), "S", "c")
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo()
	}
	waitFor(t, "the window refilled and the pull expired", func() bool {
		i := info()
		return i.Delivered.Consumer >= window+window/2 && i.NumWaiting == 0
	})
	// Everything the broker sent before the pong is read once Flush
	// returns, and a drop sets the connection's last error as it happens.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err != nil {
		t.Fatalf("the client dropped what the broker sent: %v", err)
	}
	close(release)
	stopped = true
}

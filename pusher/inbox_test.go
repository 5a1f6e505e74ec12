package pusher

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/streams"
)

// unanswered is a publish the broker never answers: one in flight when
// the stream's leader died.
type unanswered struct{}

func (unanswered) Ok() <-chan *jetstream.PubAck { return nil }
func (unanswered) Err() <-chan error            { return nil }
func (unanswered) Msg() *nats.Msg               { return nil }

// TestUnansweredItemsExpireFromTheirPublish: items whose answers never
// come are counted as not stored at their own deadlines (their publish
// plus inboxAnswerWait), not one inboxAnswerWait after another. A leader
// lost with a thousand items in flight held every push behind the full
// pending queue for an hour and a half (e2e's TestCluster, registry
// leader killed: a miss logged every 5 s, and the message never reached
// its devices). Here every deadline has passed: all are counted at once;
// waiting one inboxAnswerWait each, none would be within the test's time.
func TestUnansweredItemsExpireFromTheirPublish(t *testing.T) {
	misses := prometheus.NewCounter(prometheus.CounterOpts{Name: "misses"})
	in := &inbox{pending: make(chan pendingItem, maxPendingItems), misses: misses, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- in.runAnswers(ctx) }()
	const n = 100
	for i := range n {
		in.pending <- pendingItem{f: unanswered{}, deliveryID: "d", deadline: time.Now().Add(-time.Duration(n-i) * time.Millisecond)}
	}
	for testutil.ToFloat64(misses) < n {
		select {
		case err := <-done:
			t.Fatalf("runAnswers ended: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUnstoredItemIsPublishedAgain: an item the broker does not store
// (here no stream takes its subject, as none answers while the stream has
// no leader) is published again until it is stored: it is in the stream
// once the stream is back, with its operation's sequence, and is not
// counted as missed. Until 4 December it was given up at once, and a
// device whose push the provider also lost could never pull it.
func TestUnstoredItemIsPublishedAgain(t *testing.T) {
	_, js := brokertest.Start(t, brokertest.NoEnsure()).Conn(t)
	m := newMetrics()
	in := newInbox(js, m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- in.runAnswers(ctx) }()
	go func() { done <- in.runRetries(ctx) }()

	if err := in.putAsync(ctx, "dev-1", 7, []byte(`{"id":"item"}`)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, done, "an item waiting to be published again", func() bool { return testutil.ToFloat64(m.inboxRetrying) == 1 })
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streams.Inbox, Subjects: []string{streams.InboxSubjectPrefix + ">"}})
	if err != nil {
		t.Fatal(err)
	}
	waitMetric(t, done, "the item stored", func() bool { return testutil.ToFloat64(m.inboxRepublished) == 1 })
	msg, err := s.GetLastMsgForSubject(ctx, streams.InboxSubject("dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(streams.HeaderInboxSeq); got != "7" || string(msg.Data) != `{"id":"item"}` {
		t.Errorf("stored item: seq header %q, data %s", got, msg.Data)
	}
	if miss, waiting := testutil.ToFloat64(m.inboxMisses), testutil.ToFloat64(m.inboxRetrying); miss != 0 || waiting != 0 {
		t.Errorf("misses %v, waiting %v; want 0 and 0", miss, waiting)
	}
}

// waitMetric polls cond until it holds, failing after 10 s or when a loop
// of done ends.
func waitMetric(t *testing.T, done <-chan error, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("%s: a loop ended: %v", what, err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

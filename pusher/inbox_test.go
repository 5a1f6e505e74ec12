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

package deliveryflow_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestLateRetryTaskKeepsItsBudget: a retry task whose first delivery
// comes after its NotBefore (a backlog in the retry queue, every pusher
// down a while) is sent no more times than its retry budget allows, and
// its receipt counts every send. Before, that first delivery was sent at
// once while the attempt count took it for a wait: every count after it
// was one short, the task was sent once more than its budget, and its
// receipt said one attempt fewer than were made.
func TestLateRetryTaskKeepsItsBudget(t *testing.T) {
	const budget, prior = 5, 1 // setup's Policy.Attempts; the partition's 503
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("ios", "apns", apnsToken, ch)
	op := e.message(ch, "disk 2 failed")
	waitFor(t, "the message sent", func() bool { return e.outcome(op, dev) == delivery.Sent })
	var sum *delivery.Summary
	for _, r := range receipts(t, e) {
		for _, s := range r.Summaries {
			if s.OpID == op {
				sum = &s
			}
		}
	}
	if sum == nil {
		t.Fatal("no summary of the message")
	}

	// The provider refuses every send from now on; the task, as a
	// partition queues it after a 503, comes late to the retry queue.
	for range 2 * budget {
		e.apns.Script(apnsToken, sendertest.Answer{Kind: sendertest.Unavailable})
	}
	before := len(e.apns.Received(apnsToken))
	task := delivery.Task{
		ID: delivery.ID(sum.Seq, dev), Seq: sum.Seq, ChannelID: ch, OpID: op, Op: ops.MessageCreate,
		EntityID: sum.EntityID, DeviceKey: dev, AcceptedAt: sum.AcceptedAt, PriorAttempts: prior,
		NotBefore: time.Now().Add(-time.Second).UnixMilli(),
	}
	data, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.JS.Publish(context.Background(), streams.DeliverySubject(ch, dev), data, jetstream.WithMsgID(task.ID)); err != nil {
		t.Fatal(err)
	}

	var final *delivery.Receipt
	waitFor(t, "the task's outcome receipt", func() bool {
		for _, r := range receipts(t, e) {
			if r.Kind == delivery.KindOutcome && r.DeliveryID == task.ID {
				final = &r
				return true
			}
		}
		return false
	})
	if final.Outcome != delivery.Failed {
		t.Fatalf("the task ended %q (%s), want failed", final.Outcome, final.Reason)
	}
	sends := 0
	for _, o := range e.apns.Received(apnsToken)[before:] {
		if o.Data["delivery_id"] == task.ID {
			sends++
		}
	}
	if sends != budget-prior {
		t.Errorf("the task was sent %d times, want %d (a budget of %d sends, %d made before it was queued)", sends, budget-prior, budget, prior)
	}
	if final.Attempts != prior+sends {
		t.Errorf("the receipt says %d attempts, but %d sends were made (%d before the task, %d by it)", final.Attempts, prior+sends, prior, sends)
	}
}

package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// inbox keeps the full item of every notification the pusher sends, for
// the device to fetch with /v2/messages/pull (or the legacy
// /messages/pull) until the app acks it, as PushGo does before every
// provider send (dispatch/provider.rs, ensure_provider_pull_cached): both
// apps pull at launch what APNs or FCM did not bring (an offline device
// gets only the last of its collapsed pushes, FCM drops some), and ack
// each push they receive. An oversized push is a wake-up that says to
// fetch its item. Items go to their device's subject of PUSHGO_INBOX
// (streams.InboxStream) and age out with its retention.
type inbox struct {
	js jetstream.JetStream
	// pending holds the items published beside their pushes, in order,
	// until runAnswers reads the broker's answer; its capacity bounds how
	// many wait, below the JetStream context's own limit (where each
	// publish would stall).
	pending chan pendingItem
	misses  prometheus.Counter
	log     *slog.Logger
}

type pendingItem struct {
	f          jetstream.PubAckFuture
	deliveryID string
	// deadline is when the item counts as not stored: its publish time
	// plus inboxAnswerWait.
	deadline time.Time
}

// maxPendingItems bounds the inbox items unanswered at once.
const maxPendingItems = 1024

// itemMsg is the message of item (payload.InboxItem), deviceKey's delivery
// of the operation at seq.
func itemMsg(deviceKey string, seq uint64, item []byte) *nats.Msg {
	m := nats.NewMsg(streams.InboxSubject(deviceKey))
	m.Header.Set(streams.HeaderInboxSeq, strconv.FormatUint(seq, 10))
	m.Data = item
	return m
}

// put stores item as deviceKey's delivery of seq and waits for the
// broker's answer.
func (in *inbox) put(ctx context.Context, deviceKey string, seq uint64, item []byte) error {
	if _, err := in.js.PublishMsg(ctx, itemMsg(deviceKey, seq, item)); err != nil {
		return fmt.Errorf("inbox %s: %w", delivery.ID(seq, deviceKey), err)
	}
	return nil
}

// putAsync publishes item as put does, beside the push, and leaves its
// answer to runAnswers; it waits while maxPendingItems are unanswered.
func (in *inbox) putAsync(ctx context.Context, deviceKey string, seq uint64, item []byte) error {
	f, err := in.js.PublishMsgAsync(itemMsg(deviceKey, seq, item))
	if err != nil {
		return fmt.Errorf("inbox %s: %w", delivery.ID(seq, deviceKey), err)
	}
	select {
	case in.pending <- pendingItem{f: f, deliveryID: delivery.ID(seq, deviceKey), deadline: time.Now().Add(inboxAnswerWait)}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inboxAnswerWait bounds the wait for one item's answer, from its publish:
// the pusher's asynchronous publishes have no timeout of their own, and a
// publish in flight when the stream's leader dies is never answered.
const inboxAnswerWait = 5 * time.Second

// runAnswers reads the broker's answers to the items putAsync published,
// in order, until ctx ends. An item the broker did not store is counted
// and logged, and its push not sent again: it has gone (the device has it
// unless the provider lost it), and a retried push is stored again with
// its retry.
func (in *inbox) runAnswers(ctx context.Context) error {
	t := time.NewTimer(inboxAnswerWait)
	defer t.Stop()
	for {
		var it pendingItem
		select {
		case it = <-in.pending:
		case <-ctx.Done():
			return nil
		}
		// The deadline runs from the item's publish, not from the answer
		// before it: when the stream's leader died with many items in
		// flight, their waits overlap instead of adding up (one after the
		// other, 5 s each, they held every push behind a full pending
		// queue for minutes).
		t.Reset(time.Until(it.deadline))
		var err error
		select {
		case <-it.f.Ok():
		case err = <-it.f.Err():
		default:
			select {
			case <-it.f.Ok():
			case err = <-it.f.Err():
			case <-t.C:
				err = fmt.Errorf("no answer from the broker in %s", inboxAnswerWait)
			case <-ctx.Done():
				return nil
			}
		}
		if err != nil {
			in.misses.Inc()
			in.log.Warn("pusher: inbox item not stored", "delivery_id", it.deliveryID, "err", err)
		}
	}
}

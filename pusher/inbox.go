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
	// retries holds the items the broker did not store, for runRetries
	// to publish again; waiting counts them, the one in hand included.
	retries chan retryItem
	waiting prometheus.Gauge
	// misses counts the items given up on; republished those a later
	// publish stored.
	misses, republished prometheus.Counter
	log                 *slog.Logger
}

// newInbox is the inbox of js, counted in m.
func newInbox(js jetstream.JetStream, m *metrics, log *slog.Logger) inbox {
	return inbox{js: js, pending: make(chan pendingItem, maxPendingItems), retries: make(chan retryItem, maxRetryItems),
		waiting: m.inboxRetrying, misses: m.inboxMisses, republished: m.inboxRepublished, log: log}
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

// retryItem is an item the broker did not store, to be published again
// until giveUp.
type retryItem struct {
	msg        *nats.Msg
	deliveryID string
	giveUp     time.Time
}

// Publishing again. An item is not stored when its stream has no leader
// (the node that led it died, and the others have not elected another
// yet: a few seconds) or no quorum. Its push has gone out, but if the
// provider loses that push too (an offline device gets only the last of
// its collapsed pushes), the device can pull it only from the inbox; so
// the item is published again, one at a time in the order they failed,
// until inboxRetryFor after its failed answer, waiting from
// inboxRetryFirstWait, doubling up to inboxRetryMaxWait, between tries.
// An item stored twice (the first publish was stored, its answer lost) is
// read once and acked whole (streams.InboxStream).
const (
	maxRetryItems       = 4096
	inboxRetryFor       = 2 * time.Minute
	inboxRetryFirstWait = 250 * time.Millisecond
	inboxRetryMaxWait   = 5 * time.Second
)

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
		return fmt.Errorf("inbox %s: %w", delivery.LogID(seq, deviceKey), err)
	}
	return nil
}

// putAsync publishes item as put does, beside the push, and leaves its
// answer to runAnswers; it waits while maxPendingItems are unanswered.
func (in *inbox) putAsync(ctx context.Context, deviceKey string, seq uint64, item []byte) error {
	f, err := in.js.PublishMsgAsync(itemMsg(deviceKey, seq, item))
	if err != nil {
		return fmt.Errorf("inbox %s: %w", delivery.LogID(seq, deviceKey), err)
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
// in order, until ctx ends. An item the broker did not store is queued to
// be published again (retryLater), and its push not sent again: it has
// gone (the device has it unless the provider lost it).
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
			in.retryLater(it, err)
		}
	}
}

// retryLater queues it, which the broker did not store (err), for
// runRetries; when maxRetryItems already wait, it is given up.
func (in *inbox) retryLater(it pendingItem, err error) {
	m := it.f.Msg()
	if m == nil {
		in.giveUp(it.deliveryID, err)
		return
	}
	// A message of its own, not the one the publish future holds.
	again := &nats.Msg{Subject: m.Subject, Header: nats.Header{}, Data: m.Data}
	for k, v := range m.Header {
		again.Header[k] = v
	}
	in.waiting.Inc() // before the send: runRetries may take it at once
	select {
	case in.retries <- retryItem{msg: again, deliveryID: it.deliveryID, giveUp: time.Now().Add(inboxRetryFor)}:
		in.log.Info("pusher: inbox item not stored; publishing it again", "delivery", delivery.RedactID(it.deliveryID), "err", err)
	default:
		in.waiting.Dec()
		in.giveUp(it.deliveryID, fmt.Errorf("%w (and %d items already wait to be published again)", err, maxRetryItems))
	}
}

// giveUp counts and logs an item that is not stored.
func (in *inbox) giveUp(deliveryID string, err error) {
	in.misses.Inc()
	in.log.Warn("pusher: inbox item not stored", "delivery", delivery.RedactID(deliveryID), "err", err)
}

// runRetries publishes again the items retryLater queued, one at a time,
// each until it is stored or its giveUp passes, until ctx ends (the items
// still queued then are not stored: counted and logged as misses).
//
// The app may ack an item's push before its item is stored again (it
// acks every push it receives); the item is then in its inbox once more,
// and the app, which keeps deliveries by delivery id, takes it as the one
// it has and acks it again at its next pull.
func (in *inbox) runRetries(ctx context.Context) error {
	defer in.dropQueued()
	for {
		var it retryItem
		select {
		case it = <-in.retries:
		case <-ctx.Done():
			return nil
		}
		stopping := !in.publishAgain(ctx, it)
		in.waiting.Dec()
		if stopping {
			return nil
		}
	}
}

// publishAgain publishes it until it is stored or its giveUp passes
// (given up then); false when ctx ended first (given up too).
func (in *inbox) publishAgain(ctx context.Context, it retryItem) bool {
	for wait := inboxRetryFirstWait; ; wait = min(2*wait, inboxRetryMaxWait) {
		pctx, cancel := context.WithTimeout(ctx, inboxAnswerWait)
		_, err := in.js.PublishMsg(pctx, it.msg)
		cancel()
		if err == nil {
			in.republished.Inc()
			return true
		}
		left := time.Until(it.giveUp)
		if ctx.Err() == nil && left <= 0 {
			in.giveUp(it.deliveryID, err)
			return true
		}
		if ctx.Err() == nil {
			select {
			case <-time.After(min(wait, left)):
				continue
			case <-ctx.Done():
			}
		}
		in.giveUp(it.deliveryID, fmt.Errorf("%w (the pusher is stopping)", err))
		return false
	}
}

// dropQueued counts the items still queued when runRetries ends as
// misses, in one log line.
func (in *inbox) dropQueued() {
	n := 0
	for {
		select {
		case <-in.retries:
			n++
			in.misses.Inc()
			in.waiting.Dec()
		default:
			if n > 0 {
				in.log.Warn("pusher: inbox items not stored: the pusher stopped before publishing them again", "items", n)
			}
			return
		}
	}
}

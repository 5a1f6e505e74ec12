package deliveryflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/pusher/sender/sendertest"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

func (e *env) message(ch, title string) string {
	return e.post("/message", map[string]any{"channel_id": ch, "password": pw, "title": title})["op_id"].(string)
}

// outcome is the end of the delivery of opID to deviceKey as the receipts
// say: the retry queue's outcome receipt, or the summary of the device's
// partition (a failure it lists, sent when it lists it neither as failed
// nor as retried); "" while pending.
func (e *env) outcome(opID, deviceKey string) delivery.Outcome {
	rs := receipts(e.t, e)
	for _, r := range rs {
		if r.OpID == opID && r.DeviceKey == deviceKey && r.Kind == delivery.KindOutcome {
			return r.Outcome
		}
	}
	part := pusher.PartitionOf(deviceKey, e.partitions)
	for _, r := range rs {
		for _, s := range r.Summaries {
			if s.OpID != opID || s.Partition != part {
				continue
			}
			for _, f := range s.Failures {
				if f.DeviceKey == deviceKey {
					return f.Outcome
				}
			}
			if slices.Contains(s.Retried, deviceKey) {
				return ""
			}
			return delivery.Sent
		}
	}
	return ""
}

func (e *env) registry(t *testing.T) *devices.Registry {
	nc, err := e.b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	r, err := devices.Open(context.Background(), js, devices.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUnregisteredTokenIsRetired: a 410 retires the token; the device
// receives nothing after, and its later deliveries say it has no route.
func TestUnregisteredTokenIsRetired(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dead := e.device("ios", "apns", apnsToken, ch)
	e.apns.Script(apnsToken, sendertest.Answer{Kind: sendertest.Unregistered})
	first := e.message(ch, "one")
	waitFor(t, "retired receipt", func() bool { return e.outcome(first, dead) == delivery.Retired })
	d, ok, err := e.registry(t).Device(context.Background(), dead)
	if err != nil || !ok || d.HasRoute() || d.RetiredAt == 0 {
		t.Fatalf("device after 410: %+v %v %v", d, ok, err)
	}
	second := e.message(ch, "two")
	waitFor(t, "no_route receipt", func() bool { return e.outcome(second, dead) == delivery.NoRoute })
	if n := len(e.apns.Received(apnsToken)); n != 1 {
		t.Fatalf("the retired token received %d pushes, want only the one answered 410", n)
	}
}

// TestDeadTokenAnswerRetiresItFromThatDeviceOnly: a token answered
// "unregistered" for device A is retired from A only. When the token was
// bound to device B while the push was on its way (the app registered it
// again there), B keeps it and is pushed; before, the late answer retired
// the token wherever it was, and B's route with it.
func TestDeadTokenAnswerRetiresItFromThatDeviceOnly(t *testing.T) {
	gate := newSendGate(t, "on its way")
	e := setup(t, gate.wrap)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	a := e.device("android", "fcm", fcmToken, ch)
	e.fcm.Script(fcmToken, sendertest.Answer{Kind: sendertest.Unregistered})
	first := e.message(ch, "on its way")
	gate.waitStarted(t)
	b := e.device("android", "fcm", fcmToken, ch) // the token moves to B
	gate.release()
	waitFor(t, "A's outcome", func() bool { return e.outcome(first, a) != "" })
	d, ok, err := e.registry(t).Device(context.Background(), b)
	if err != nil || !ok || !d.HasRoute() || d.ProviderToken != fcmToken {
		t.Fatalf("device B after A's late 410: %+v %v %v, want its route to the token", d, ok, err)
	}
	second := e.message(ch, "after")
	waitFor(t, "B pushed", func() bool { return e.outcome(second, b) == delivery.Sent })
}

// TestTransientFailureRetriesThatDeviceOnly: 503 twice then 200 delivers
// exactly once to that device, and the other device is not held back.
func TestTransientFailureRetriesThatDeviceOnly(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	flaky := e.device("android", "fcm", fcmToken, ch)
	healthy := e.device("ios", "apns", apnsToken, ch)
	e.fcm.Script(fcmToken, sendertest.Answer{Kind: sendertest.Unavailable, RetryAfter: 0}, sendertest.Answer{Kind: sendertest.Unavailable})
	op := e.message(ch, "hello")
	waitFor(t, "healthy device sent", func() bool { return e.outcome(op, healthy) == delivery.Sent })
	waitFor(t, "flaky device sent", func() bool { return e.outcome(op, flaky) == delivery.Sent })
	if n := len(e.fcm.Received(fcmToken)); n != 3 {
		t.Fatalf("flaky device got %d attempts, want 2 failures and 1 success", n)
	}
	if n := len(e.apns.Received(apnsToken)); n != 1 {
		t.Fatalf("healthy device got %d pushes", n)
	}
	sent := 0
	for _, r := range receipts(t, e) {
		if r.OpID == op && r.DeviceKey == flaky && r.Outcome == delivery.Sent {
			sent++
		}
	}
	if sent != 1 {
		t.Fatalf("%d sent receipts for the flaky device", sent)
	}
}

// TestRetrySentOnceWhileItsReceiptIsRefused: a retried delivery the
// provider accepted while the broker refuses its outcome receipt is not
// sent again: the pusher stores the receipt again (with back-off) and
// holds the task meanwhile. Before, the task was handed back and the push
// sent to the device again every second until the receipt was stored.
func TestRetrySentOnceWhileItsReceiptIsRefused(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("android", "fcm", fcmToken, ch)
	// Retry-After: the retry comes after the receipts are refused below
	// (with room for a busy machine).
	e.fcm.Script(fcmToken, sendertest.Answer{Kind: sendertest.Unavailable, RetryAfter: 3 * time.Second})
	op := e.message(ch, "disk 2 failed")
	part := pusher.PartitionOf(dev, e.partitions)
	waitFor(t, "the partition's summary listing the retry", func() bool {
		for _, r := range receipts(t, e) {
			for _, s := range r.Summaries {
				if s.OpID == op && s.Partition == part && slices.Contains(s.Retried, dev) {
					return true
				}
			}
		}
		return false
	})

	// Every attempt at the outcome receipt, stored or not.
	var mu sync.Mutex
	tries := 0
	sub, err := e.b.NC.Subscribe(streams.ReceiptSubject(ch), func(m *nats.Msg) {
		var r delivery.Receipt
		if json.Unmarshal(m.Data, &r) == nil && r.Kind == delivery.KindOutcome && r.OpID == op && r.DeviceKey == dev {
			mu.Lock()
			tries++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ctx := context.Background()
	s, err := e.b.JS.Stream(ctx, streams.Receipts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Full: the stream answers every new receipt with an error.
	cfg, refusing := info.Config, info.Config
	refusing.MaxMsgs, refusing.Discard = int64(info.State.Msgs), jetstream.DiscardNew
	if _, err := e.b.JS.UpdateStream(ctx, refusing); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three attempts at the outcome receipt", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return tries >= 3
	})
	if n := len(e.fcm.Received(fcmToken)); n != 2 {
		t.Fatalf("the device received %d pushes while its receipt was refused, want 2 (the 503, then the retry once)", n)
	}
	if _, err := e.b.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outcome stored", func() bool { return e.outcome(op, dev) == delivery.Sent })
	if n := len(e.fcm.Received(fcmToken)); n != 2 {
		t.Fatalf("the device received %d pushes, want 2", n)
	}
}

// TestRetryTasksWaitingInTheirLaneAreSentOnce: a device's retry tasks
// go through its lane one at a time, so while one waits for a provider
// that does not answer, the ones behind it wait longer than the retry
// queue's ack wait. The pusher keeps them alive: none is handed out again
// and each is sent once when the provider answers. Before, the broker
// redelivered every task past its ack wait, and the device was pushed once
// per copy. There are more of them than a lane once held (64): the retry
// consumer's handler then blocked on the full lane, and the tasks the
// client had pulled behind it, not yet held, were handed out again.
func TestRetryTasksWaitingInTheirLaneAreSentOnce(t *testing.T) {
	const ackWait = time.Second
	gate := &retryGate{release: make(chan struct{})}
	e := setup(t, func(c *pusher.Config) { c.RetryAckWait = ackWait }, gate.wrap)
	t.Cleanup(gate.open) // before the pusher's close, which waits for the send
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("android", "fcm", fcmToken, ch)
	titles := []string{"first"}
	for i := range 69 {
		titles = append(titles, fmt.Sprintf("behind-%02d", i))
	}
	answers := make([]sendertest.Answer, len(titles))
	for i := range answers {
		answers[i] = sendertest.Answer{Kind: sendertest.Unavailable}
	}
	e.fcm.Script(fcmToken, answers...)

	// The broker's acks of the retry consumer: "+WPI" says a task is
	// still in progress.
	var mu sync.Mutex
	alive := 0
	sub, err := e.b.NC.Subscribe("$JS.ACK."+streams.Deliveries+"."+pusher.SendConsumer+".>", func(m *nats.Msg) {
		if string(m.Data) == "+WPI" {
			mu.Lock()
			alive++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	ops := make([]string, len(titles))
	for i, title := range titles {
		ops[i] = e.message(ch, title)
	}
	// The first retry to reach the provider is held there, the others
	// behind it in the device's lane, until the tasks have been kept alive
	// for longer than the ack wait: four rounds a third of it apart, of
	// every task. Every message's first send must have reached the provider
	// too: the script's 503s are taken in order of arrival, and a first
	// send late on a loaded machine, after the gate opened, took a retry's
	// 503 (one message sent three times, the last once). Which retry comes
	// first is the broker's: on a loaded machine an early message's retry
	// can come before the first message's, so the gate holds whichever
	// comes first (holding only the first message's let the retries before
	// it take later first sends' 503s, with the same three-and-one count).
	waitForWithin(t, "the held tasks kept alive past the ack wait", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return gate.held() && alive >= 4*len(titles) && len(e.fcm.Received(fcmToken)) >= len(titles)
	})
	gate.open()
	for i, op := range ops {
		waitFor(t, titles[i]+" sent", func() bool { return e.outcome(op, dev) == delivery.Sent })
	}
	sent := map[string]int{}
	for _, r := range e.fcm.Received(fcmToken) {
		sent[r.Title]++
	}
	for _, title := range titles {
		if sent[title] != 2 {
			t.Errorf("%q reached the provider %d times, want 2 (the 503, then its retry once): %v", title, sent[title], sent)
		}
	}
}

// retryGate holds every message's second send (its retry) until open: the
// lane's first is held, and the lane's others wait behind it. A third send
// of a message (a copy of its retry) passes, to be counted.
type retryGate struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	sends   map[string]int // by title
	holding int            // sends held now
}

func (g *retryGate) open() { g.once.Do(func() { close(g.release) }) }

func (g *retryGate) held() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holding > 0
}

func (g *retryGate) wrap(c *pusher.Config) {
	senders := map[payload.Provider]sender.Sender{}
	for k, v := range c.Senders {
		senders[k] = v
	}
	senders[payload.FCM] = retryGatedSender{Sender: c.Senders[payload.FCM], g: g}
	c.Senders = senders
}

type retryGatedSender struct {
	sender.Sender
	g *retryGate
}

func (s retryGatedSender) Send(ctx context.Context, n payload.Notification) sender.Result {
	s.g.mu.Lock()
	if s.g.sends == nil {
		s.g.sends = map[string]int{}
	}
	s.g.sends[n.Title]++
	second := s.g.sends[n.Title] == 2
	if second {
		s.g.holding++
	}
	s.g.mu.Unlock()
	if second {
		<-s.g.release
		s.g.mu.Lock()
		s.g.holding--
		s.g.mu.Unlock()
	}
	return s.Sender.Send(ctx, n)
}

// TestRetriedEventPushSupersededByALaterOne: an event's create answered
// 503 goes to the retry queue, and the event's close, sent meanwhile,
// reaches the device. The create's retry is then dropped (its outcome
// expired, superseded): sent after the close, it would show the event
// open again on the phone, which keeps an event as its last push said.
func TestRetriedEventPushSupersededByALaterOne(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("android", "fcm", fcmToken, ch)
	// Retry-After: the retry waits 5 s, long after the close is sent.
	e.fcm.Script(fcmToken, sendertest.Answer{Kind: sendertest.Unavailable, RetryAfter: 5 * time.Second})
	created := e.post("/event/create", map[string]any{"channel_id": ch, "password": pw, "title": "Deploy", "status": "running",
		"message": "started", "severity": "normal", "event_time": 1713750000000})
	waitFor(t, "the create's 503", func() bool { return len(e.fcm.Received(fcmToken)) == 1 })
	closed := e.post("/event/close", map[string]any{"channel_id": ch, "password": pw, "event_id": created["event_id"],
		"status": "success", "message": "done", "severity": "normal", "event_time": 1713750060000})
	waitFor(t, "the close sent", func() bool { return e.outcome(closed["op_id"].(string), dev) == delivery.Sent })
	deadline := time.Now().Add(30 * time.Second)
	for e.outcome(created["op_id"].(string), dev) == "" {
		if time.Now().After(deadline) {
			t.Fatal("the create's retry never settled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if o := e.outcome(created["op_id"].(string), dev); o != delivery.Expired {
		t.Errorf("the create's retry: %s, want expired (superseded by the close)", o)
	}
	got := e.fcm.Received(fcmToken)
	if len(got) != 2 || got[1].Data["op_id"] != closed["op_id"] {
		ids := []string{}
		for _, r := range got {
			ids = append(ids, r.Data["op_id"])
		}
		t.Fatalf("the device received %v, want the refused create then the close (%s) last", ids, closed["op_id"])
	}
}

// TestRetryNotSentAfterTheDeviceLeftTheChannel: a push the provider
// refused for a while (503 with Retry-After) is not sent to a device that
// unsubscribed from the channel meanwhile; its outcome is expired, saying
// why. Another device still subscribed gets its retry. Before, the retry
// was sent whatever the device's subscriptions had become since.
func TestRetryNotSentAfterTheDeviceLeftTheChannel(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	leaving := e.device("android", "fcm", fcmToken, ch)
	staying := e.device("ios", "apns", apnsToken, ch)
	// Retry-After: both retries wait 3 s, long after the unsubscribe.
	e.fcm.Script(fcmToken, sendertest.Answer{Kind: sendertest.Unavailable, RetryAfter: 3 * time.Second})
	e.apns.Script(apnsToken, sendertest.Answer{Kind: sendertest.Unavailable, RetryAfter: 3 * time.Second})
	op := e.message(ch, "hello")
	waitFor(t, "both first attempts refused", func() bool {
		return len(e.fcm.Received(fcmToken)) == 1 && len(e.apns.Received(apnsToken)) == 1
	})
	e.post("/channel/unsubscribe", map[string]any{"device_key": leaving, "channel_id": ch})
	deadline := time.Now().Add(30 * time.Second)
	for e.outcome(op, leaving) == "" || e.outcome(op, staying) == "" {
		if time.Now().After(deadline) {
			t.Fatal("the retries never settled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if o := e.outcome(op, leaving); o != delivery.Expired {
		t.Errorf("the retry to the device that left: %s, want expired", o)
	}
	if o := e.outcome(op, staying); o != delivery.Sent {
		t.Errorf("the retry to the device that stayed: %s, want sent", o)
	}
	if n := len(e.fcm.Received(fcmToken)); n != 1 {
		t.Errorf("the device that left received %d attempts, want only the refused first", n)
	}
	if n := len(e.apns.Received(apnsToken)); n != 2 {
		t.Errorf("the device that stayed received %d attempts, want the refused first and its retry", n)
	}
	reason := ""
	for _, r := range receipts(t, e) {
		if r.OpID == op && r.DeviceKey == leaving && r.Kind == delivery.KindOutcome {
			reason = r.Reason
		}
	}
	if !strings.Contains(reason, "left the channel") {
		t.Errorf("the expired receipt's reason: %q, want it to say the device left the channel", reason)
	}
}

// TestHistoryIsNeverPushed: operations appended before a device subscribed
// (replayed later through /channel/history) raise no push for it.
func TestHistoryIsNeverPushed(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	for i := 0; i < 5; i++ {
		e.message(ch, fmt.Sprint("old ", i))
	}
	e.device("ios", "apns", apnsToken, ch)
	op := e.message(ch, "new")
	waitFor(t, "the new message", func() bool { return len(e.apns.Received(apnsToken)) >= 1 })
	waitPartitionsPassed(t, e) // every operation settled: a wrong push of the old ones would have been made
	got := e.apns.Received(apnsToken)
	if len(got) != 1 || got[0].Data["op_id"] != op {
		t.Fatalf("device received %d pushes (%v); want only the new message", len(got), got)
	}
}

// TestTwoReplicasSendEachTaskOnce: two pushers share the consumers; every
// (operation, device) is sent once. Then one replica stops mid-load and the
// other finishes its work: nothing is lost.
func TestTwoReplicasSendEachTaskOnce(t *testing.T) {
	e := setup(t)
	second := e.start()
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	var tokens []string
	for i := 0; i < 8; i++ {
		tok := strings.Repeat(fmt.Sprintf("%02x", i+1), 32)
		tokens = append(tokens, tok)
		e.device("ios", "apns", tok, ch)
	}
	const n = 40
	var wg sync.WaitGroup
	failed := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { // no t.Fatal off the test's goroutine: the failure is reported below
			defer wg.Done()
			body := map[string]any{"channel_id": ch, "password": pw, "title": fmt.Sprint("m", i)}
			r, err := e.api.Do(context.Background(), "POST", "/message", body, nil)
			switch {
			case err != nil:
				failed <- err.Error()
			case r.Status != 200:
				failed <- r.String()
			}
		}()
		if i == n/2 {
			_ = second.Close() // a replica leaves mid-load
		}
	}
	wg.Wait()
	close(failed)
	for f := range failed {
		t.Fatalf("a message was not accepted: %s", f)
	}
	for _, tok := range tokens {
		deadline := time.Now().Add(10 * time.Second)
		for len(e.apns.Received(tok)) < n {
			if time.Now().After(deadline) {
				got := map[string]bool{}
				for _, o := range e.apns.Received(tok) {
					got[o.Data["op_id"]] = true
				}
				for _, r := range receipts(t, e) {
					if !got[r.OpID] && r.Kind == delivery.KindExpanded {
						t.Logf("missing op %s seq %d: expanded to %d tasks", r.OpID, r.Seq, r.Tasks)
					}
				}
				t.Fatalf("token %s got %d of %d messages", tok[:4], len(got), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitPartitionsPassed(t, e) // nothing left to push again
	for _, tok := range tokens {
		seen := map[string]int{}
		for _, o := range e.apns.Received(tok) {
			seen[o.Data["op_id"]]++
		}
		if len(seen) != n {
			t.Fatalf("token %s got %d distinct messages, want %d", tok[:4], len(seen), n)
		}
		for op, c := range seen {
			if c != 1 {
				t.Errorf("token %s got op %s %d times", tok[:4], op, c)
			}
		}
	}
}

// TestOversizedGoesThroughTheInbox: a notification over 4 KiB becomes a
// wake-up push carrying its delivery_id; the full item waits in the
// device's inbox until the device acks it.
func TestOversizedGoesThroughTheInbox(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("ios", "apns", apnsToken, ch)
	long := strings.Repeat("All systems nominal. ", 300) // ~6 KB of Markdown
	e.post("/message", map[string]any{"channel_id": ch, "password": pw, "title": "Report", "body": long})
	waitFor(t, "the wake-up push", func() bool { return len(e.apns.Received(apnsToken)) == 1 })
	wake := e.apns.Received(apnsToken)[0]
	id := wake.Data["delivery_id"]
	// The wake-up shows a cut body (so the person sees something); the
	// whole item is in the inbox. The apps know a wake-up by PushGo's
	// markers (provider_wakeup, provider_mode; _skip_persist keeps it out
	// of the Apple app's store), not by a key of our own.
	if id == "" || wake.Data["provider_wakeup"] != "1" || wake.Data["provider_mode"] != "wakeup" ||
		wake.Data["_skip_persist"] != "1" || len(wake.Data["body"]) > 520 {
		t.Fatalf("wake-up push carries %v", wake.Data)
	}
	page := e.post("/v2/messages/pull", map[string]any{"device_key": dev})
	items := page["items"].([]any)
	if len(items) != 1 || page["has_more"] != false {
		t.Fatalf("inbox page %v", page)
	}
	item := items[0].(map[string]any)
	if item["delivery_id"] != id || item["payload"].(map[string]any)["body"] != long {
		t.Fatalf("inbox item %v", item)
	}
	acked := e.post("/v2/messages/ack", map[string]any{"device_key": dev, "delivery_ids": []string{id, "1:nope"}})
	if acked["requested_count"] != 2.0 || acked["removed_count"] != 1.0 {
		t.Fatalf("ack %v", acked)
	}
	if again := e.post("/v2/messages/pull", map[string]any{"device_key": dev}); len(again["items"].([]any)) != 0 {
		t.Fatalf("inbox after ack %v", again)
	}
}

// TestEveryPushWaitsInTheInbox: every push, not only an oversized one,
// is in its device's inbox until the app acks it, as PushGo stores each
// provider delivery before sending it: the apps pull at launch what APNs
// or FCM did not bring (an offline iPhone gets only the last of its
// collapsed pushes), and ack each push they receive. The item is the
// push's whole map, on the APNs path cut from the operation's template
// and on FCM's built per device; the legacy /messages/pull (the Android
// app's) takes what it answers.
func TestEveryPushWaitsInTheInbox(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	iphone := e.device("ios", "apns", apnsToken, ch)
	android := e.device("android", "fcm", fcmToken, ch)
	titles := []string{"Disk 2 failed", "Disk 2 rebuilt", "Backup done"}
	for _, title := range titles {
		e.post("/message", map[string]any{"channel_id": ch, "password": pw, "title": title, "body": title + ", details"})
	}
	waitFor(t, "the pushes", func() bool {
		return len(e.apns.Received(apnsToken)) == len(titles) && len(e.fcm.Received(fcmToken)) == len(titles)
	})
	// An item is stored while its push is on its way: the delivery ends
	// when both are done.
	inboxed := func(dev string) bool {
		return len(e.post("/v2/messages/pull", map[string]any{"device_key": dev})["items"].([]any)) == len(titles)
	}
	waitFor(t, "the items in the inboxes", func() bool { return inboxed(iphone) && inboxed(android) })
	// A device's pushes may reach the provider out of order (pipelined);
	// the inbox is in the log's.
	pushed := map[string]map[string]string{}
	for _, r := range e.apns.Received(apnsToken) {
		pushed[r.Data["delivery_id"]] = r.Data
	}
	page := e.post("/v2/messages/pull", map[string]any{"device_key": iphone})
	items := page["items"].([]any)
	if len(items) != len(titles) || page["has_more"] != false {
		t.Fatalf("the iPhone's inbox: %v", page)
	}
	ids := make([]string, len(items))
	for i, it := range items {
		item := it.(map[string]any)
		p := item["payload"].(map[string]any)
		ids[i], _ = item["delivery_id"].(string)
		push := pushed[ids[i]]
		if push == nil || p["delivery_id"] != ids[i] || p["title"] != titles[i] || p["body"] != titles[i]+", details" ||
			p["message_id"] != push["message_id"] || p["sent_at"] != push["sent_at"] {
			t.Fatalf("inbox item %d %v, push %v", i, item, push)
		}
	}
	// The app acks what it received: the inbox keeps the rest.
	e.post("/v2/messages/ack", map[string]any{"device_key": iphone, "delivery_ids": []string{ids[0], ids[2]}})
	left := e.post("/v2/messages/pull", map[string]any{"device_key": iphone})["items"].([]any)
	if len(left) != 1 || left[0].(map[string]any)["delivery_id"] != ids[1] {
		t.Fatalf("the iPhone's inbox after its acks: %v", left)
	}

	taken := apitest.MustOK(t, e.api.Post(t, "/messages/pull", map[string]any{"device_key": android})).Data["items"]
	fcmPushed := map[string]string{}
	for _, r := range e.fcm.Received(fcmToken) {
		fcmPushed[r.Data["delivery_id"]] = r.Data["title"]
	}
	msgs, _ := taken.([]any)
	if len(msgs) != len(titles) {
		t.Fatalf("the Android inbox (legacy pull): %v", taken)
	}
	for i, m := range msgs {
		item := m.(map[string]any)
		id, _ := item["delivery_id"].(string)
		if fcmPushed[id] != titles[i] || item["payload"].(map[string]any)["title"] != titles[i] {
			t.Fatalf("legacy pull item %d %v, pushes %v", i, item, fcmPushed)
		}
	}
	again := apitest.MustOK(t, e.api.Post(t, "/messages/pull", map[string]any{"device_key": android})).Data["items"]
	if rest, _ := again.([]any); len(rest) != 0 {
		t.Fatalf("the legacy pull took the items, yet it answers %v again", again)
	}
}

// TestRebindIsPushedAtOnce: a device that binds a new provider token and
// gets a message right after receives it on the new token, never the old
// one: the senders read routes from memory only once it holds every route
// written before the operation.
func TestRebindIsPushedAtOnce(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("android", "fcm", fcmToken, ch)
	first := e.message(ch, "before")
	waitFor(t, "first push", func() bool { return e.outcome(first, dev) == delivery.Sent })
	const rounds = 20
	for i := range rounds {
		token := fmt.Sprintf("%s-rebound-%02d", fcmToken, i)
		e.post("/channel/device", map[string]any{"device_key": dev, "channel_type": "fcm", "provider_token": token})
		op := e.message(ch, fmt.Sprintf("after-%02d", i))
		waitFor(t, "push "+op, func() bool { return e.outcome(op, dev) == delivery.Sent })
		if n := len(e.fcm.Received(token)); n != 1 {
			t.Fatalf("round %d: the new token received %d pushes, want 1", i, n)
		}
	}
	if n := len(e.fcm.Received(fcmToken)); n != 1 {
		t.Fatalf("the first token received %d pushes, want only the one before the rebind", n)
	}
}

// TestStopLetsARetrySendFinish: a pusher stopped (SIGTERM) while a retry's
// send is under way lets it finish and stores its outcome before it stops:
// cut, the push the provider had taken was sent again when its task came
// back, a duplicate on the device.
func TestStopLetsARetrySendFinish(t *testing.T) {
	e := setup(t)
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("android", "fcm", fcmToken, ch)
	e.fcm.Script(fcmToken, sendertest.Answer{Kind: sendertest.Unavailable},
		sendertest.Answer{Kind: sendertest.OK, Latency: time.Second})
	op := e.message(ch, "hello")
	waitFor(t, "the retry's send under way", func() bool { return len(e.fcm.Received(fcmToken)) == 2 })
	if err := e.push.Close(); err != nil {
		t.Fatal(err)
	}
	if o := e.outcome(op, dev); o != delivery.Sent {
		t.Fatalf("outcome %q once the pusher stopped, want sent (the send cut by the stop)", o)
	}
	if n := len(e.fcm.Received(fcmToken)); n != 2 {
		t.Fatalf("%d requests, want 2 (the failure and the retry)", n)
	}
}

package deliveryflow_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/payload"
	"github.com/pushgo/gateway/pusher/sender"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestStaleOwnerAckDoesNotStallTheFloor: a partition's owner that stops
// reaching the broker for longer than the failover time (a stalled
// process, a network blip) loses the pin without knowing it, and sends the
// acknowledgement of an operation it finishes once it is back. The broker
// takes that AckAll (a higher delivery sequence than any of the new
// owner's, which restarted them at its reset) and ignores the new owner's
// acknowledgements below it. Before, the partition's floor then stood
// still for good in a quiet log (every later operation sent, none
// acknowledged: redelivered every ack wait, sent again by the next owner,
// and filling the partition's window in a busy log). Now the new owner
// notices (a redelivery of an operation it acknowledged, which the broker
// still holds) and moves the floor itself without sending anything twice.
func TestStaleOwnerAckDoesNotStallTheFloor(t *testing.T) {
	const failover = 3 * time.Second // the least PUSHGO_DELIVERY_FAILOVER
	e := setup(t, func(c *pusher.Config) {
		c.Partitions, c.Failover, c.BalanceInterval = 1, failover, time.Hour
	})
	ch := e.post("/channel/create", map[string]any{"channel_name": "stale", "password": pw})["channel_id"].(string)
	token := fcmToken + "-stale"
	e.device("android", "fcm", token, ch)
	e.push.Close() // the replicas below are A and B

	// A: its own connection, whose writes (pulls, acknowledgements,
	// summaries) the test can hold, and a provider that holds "held".
	link := &heldLink{}
	ncA, _ := e.b.ConnAs(t, broker.RoleAdmin, nats.InProcessServer(link.over(e.b.Server())))
	gateA := newSendGate(t, "held")
	pusherA := e.startOn(ncA, gateA.wrap, func(c *pusher.Config) { c.SendTimeout = time.Minute })

	received := func(title string) int { return timesReceived(e, token, title) }
	for _, title := range []string{"one", "two", "three", "four", "five"} {
		e.message(ch, title)
	}
	waitFor(t, "A's first pushes", func() bool { return received("five") == 1 })
	waitFloor(t, e, lastSeq(t, e))

	e.message(ch, "held")
	heldSeq := lastSeq(t, e)
	gateA.waitStarted(t)
	link.hold()
	ncB, _ := e.b.Conn(t)
	gateB := newSendGate(t, "held")
	pusherB := e.startOn(ncB, gateB.wrap)
	waitForWithin(t, "B taking the partition over", 30*time.Second, gateB.started)

	// A finishes "held" and, back on the broker, acknowledges it.
	gateA.release()
	link.release()
	waitFloor(t, e, heldSeq)
	gateB.release()
	e.message(ch, "after")
	last := lastSeq(t, e)
	waitForWithin(t, "the partition's floor at the log's end", 60*time.Second, func() bool {
		return partitionFloor(t, e) == last
	})
	if n := received("after"); n != 1 {
		t.Errorf(`"after" pushed %d times, want once`, n)
	}
	if n := received("held"); n != 2 {
		t.Errorf(`"held" pushed %d times, want twice (by A, then by B, which took the partition over before A finished it)`, n)
	}

	// A, which lost the partition, stops: its stop leaves B's pin alone
	// (A still held its old pin id, and unpinned the partition from under
	// B, which then took it over again and sent its operations twice).
	if err := pusherA.Close(); err != nil {
		t.Fatal(err)
	}
	if owned := pusherB.Owned(context.Background()); !slices.Contains(owned, 0) {
		t.Fatalf("B owns partitions %v after A's stop, want 0 still", owned)
	}
}

// heldLink is an in-process connection whose writes the test can hold.
type heldLink struct {
	mu   sync.Mutex
	gate chan struct{} // closed: writes go through
}

func (l *heldLink) hold() {
	l.mu.Lock()
	l.gate = make(chan struct{})
	l.mu.Unlock()
}

func (l *heldLink) release() {
	l.mu.Lock()
	if l.gate != nil {
		close(l.gate)
		l.gate = nil
	}
	l.mu.Unlock()
}

func (l *heldLink) wait() {
	l.mu.Lock()
	g := l.gate
	l.mu.Unlock()
	if g != nil {
		<-g
	}
}

type inProcessServer interface {
	InProcessConn() (net.Conn, error)
}

func (l *heldLink) over(s inProcessServer) nats.InProcessConnProvider {
	return heldLinkProvider{l: l, s: s}
}

type heldLinkProvider struct {
	l *heldLink
	s inProcessServer
}

func (p heldLinkProvider) InProcessConn() (net.Conn, error) {
	c, err := p.s.InProcessConn()
	if err != nil {
		return nil, err
	}
	return heldConn{Conn: c, l: p.l}, nil
}

type heldConn struct {
	net.Conn
	l *heldLink
}

func (c heldConn) Write(b []byte) (int, error) {
	c.l.wait()
	return c.Conn.Write(b)
}

// sendGate holds the FCM sends of one title until released.
type sendGate struct {
	title     string
	startedCh chan struct{}
	once      sync.Once
	// releaseOnce: released by the test, and again when it ends.
	releaseOnce sync.Once
	releaseCh   chan struct{}
}

// newSendGate is a gate released, at the latest, when t ends (a failure
// before the test's own release left the gated send, and with it the
// pusher's Close, waiting for ever).
func newSendGate(t *testing.T, title string) *sendGate {
	g := &sendGate{title: title, startedCh: make(chan struct{}), releaseCh: make(chan struct{})}
	t.Cleanup(g.release)
	return g
}

func (g *sendGate) wrap(c *pusher.Config) {
	inner := c.Senders[payload.FCM]
	senders := map[payload.Provider]sender.Sender{}
	for k, v := range c.Senders {
		senders[k] = v
	}
	senders[payload.FCM] = gatedSender{Sender: inner, g: g}
	c.Senders = senders
}

func (g *sendGate) started() bool {
	select {
	case <-g.startedCh:
		return true
	default:
		return false
	}
}

func (g *sendGate) waitStarted(t *testing.T) {
	t.Helper()
	waitForWithin(t, "the send of "+g.title, 30*time.Second, g.started)
}

func (g *sendGate) release() { g.releaseOnce.Do(func() { close(g.releaseCh) }) }

type gatedSender struct {
	sender.Sender
	g *sendGate
}

func (s gatedSender) Send(ctx context.Context, n payload.Notification) sender.Result {
	if n.Title == s.g.title {
		s.g.once.Do(func() { close(s.g.startedCh) })
		select {
		case <-s.g.releaseCh:
		case <-ctx.Done():
			return sender.Result{Outcome: sender.Retry, Reason: "canceled"}
		}
	}
	return s.Sender.Send(ctx, n)
}

// lastSeq is PUSHGO_OPS's last sequence.
// timesReceived is how many pushes titled title the FCM token got.
func timesReceived(e *env, token, title string) int {
	n := 0
	for _, o := range e.fcm.Received(token) {
		if o.Title == title {
			n++
		}
	}
	return n
}

func lastSeq(t *testing.T, e *env) uint64 {
	t.Helper()
	s, err := e.b.JS.Stream(context.Background(), streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// partitionFloor is the one partition consumer's ack floor.
func partitionFloor(t *testing.T, e *env) uint64 { return partitionFloorOf(t, e, 0) }

// partitionFloorOf is partition consumer i's ack floor.
func partitionFloorOf(t *testing.T, e *env, i int) uint64 {
	t.Helper()
	c, err := e.b.JS.Consumer(context.Background(), streams.Ops, fmt.Sprint(pusher.PartitionConsumerPrefix, i))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.AckFloor.Stream
}

// waitFloor waits until the partition's floor has reached seq.
func waitFloor(t *testing.T, e *env, seq uint64) {
	t.Helper()
	waitForWithin(t, fmt.Sprintf("the partition's floor at %d", seq), 30*time.Second, func() bool {
		return partitionFloor(t, e) >= seq
	})
}

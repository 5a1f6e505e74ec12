package leaderread_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestConfirmNone: on a 3-node cluster, through a follower's server, a
// subject never written is confirmed empty, and a subject written is not
// (ErrUnconfirmed: a "none" for it was a deposed leader's). Then the
// connection's server stalls for 3 s as seen by the client (nothing it
// sends is read until then, as when the server is stopped and resumed):
// a "none" is not confirmed right after, and is again once the stall is
// stallWindow behind. e2e's TestDeposedLeaderNotFoundIsNotA404 shows the
// deposed leader itself.
func TestConfirmNone(t *testing.T) {
	c := brokertest.StartCluster(t)
	p := c.Placement(t, streams.Ops)
	node := c.Nodes[p.Followers[0]]
	creds, err := nats.NkeyOptionFromSeed(node.CredentialsFile(broker.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	d := &stallingDialer{}
	nc, err := nats.Connect(node.ClientURL(), creds, nats.SetCustomDialer(d))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := leaderread.Open(ctx, js, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	stop := r.WatchStalls()
	defer stop()

	if err := r.ConfirmNone(ctx, subject(1)); err != nil {
		t.Fatalf("a subject never written: %v, want it confirmed empty", err)
	}
	if _, err := js.Publish(ctx, subject(2), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := r.ConfirmNone(ctx, subject(2)); !errors.Is(err, leaderread.ErrUnconfirmed) {
		t.Fatalf("a subject written: %v, want %v", err, leaderread.ErrUnconfirmed)
	}

	d.stall(3 * time.Second)
	time.Sleep(3 * time.Second)
	if err := r.ConfirmNone(ctx, subject(1)); !errors.Is(err, leaderread.ErrUnconfirmed) {
		t.Fatalf("right after a 3 s stall: %v, want %v", err, leaderread.ErrUnconfirmed)
	}
	stalledTill := time.Now()
	for {
		err := r.ConfirmNone(ctx, subject(1))
		if err == nil {
			t.Logf("confirmed again %s after the stall", time.Since(stalledTill).Round(time.Millisecond))
			break
		}
		if !errors.Is(err, leaderread.ErrUnconfirmed) || time.Since(stalledTill) > 10*time.Second {
			t.Fatalf("%s after the stall: %v", time.Since(stalledTill).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stallingDialer's connections deliver nothing the server sends while a
// stall lasts (it is read, and held until the stall's end).
type stallingDialer struct {
	mu    sync.Mutex
	until time.Time
}

func (d *stallingDialer) stall(for_ time.Duration) {
	d.mu.Lock()
	d.until = time.Now().Add(for_)
	d.mu.Unlock()
}

func (d *stallingDialer) wait() {
	d.mu.Lock()
	until := d.until
	d.mu.Unlock()
	time.Sleep(time.Until(until))
}

func (d *stallingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: c, d: d}, nil
}

type stallingConn struct {
	net.Conn
	d *stallingDialer
}

func (c *stallingConn) Read(p []byte) (int, error) {
	c.d.wait()
	n, err := c.Conn.Read(p)
	c.d.wait()
	return n, err
}

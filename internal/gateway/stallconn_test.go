package gateway

import (
	"net"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
)

// stallGate holds back what the broker sends on one in-process connection:
// a projector replica whose folds' connection it holds stops receiving the
// logs where the test says, and lags for as long as the test wants, with
// no timing involved. The connection stays open (a network stall, not a
// loss), so nothing reconnects; the broker's write deadline (10 s) bounds
// how long a test may hold it.
type stallGate struct {
	mu     sync.Mutex
	budget int64 // bytes that may still pass; negative: no bound
	open   chan struct{}
	opened bool
}

// stallAfter lets n more bytes from the broker through, then holds the
// rest until release (n 0: from now on).
func (g *stallGate) stallAfter(n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		g.budget = n
	}
}

// release lets everything through, for good.
func (g *stallGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		g.opened, g.budget = true, -1
		close(g.open)
	}
}

// room is how many bytes a read may take now: 0 for no bound.
func (g *stallGate) room() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int(max(g.budget, 0))
}

// take counts n bytes read, holding them until release when they are
// more than the budget left: bytes read once the gate stalls are held,
// whenever the read began.
func (g *stallGate) take(n int, closed <-chan struct{}) error {
	g.mu.Lock()
	if g.budget < 0 || int64(n) <= g.budget {
		if g.budget >= 0 {
			g.budget -= int64(n)
		}
		g.mu.Unlock()
		return nil
	}
	g.budget = 0
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-closed:
		return net.ErrClosed
	}
}

type stalledConn struct {
	net.Conn
	gate      *stallGate
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *stalledConn) Read(b []byte) (int, error) {
	if r := c.gate.room(); r > 0 && len(b) > r {
		b = b[:r]
	}
	n, err := c.Conn.Read(b)
	if werr := c.gate.take(n, c.closed); werr != nil {
		return 0, werr
	}
	return n, err
}

func (c *stalledConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// gatedServer hands out the broker's in-process connections: the first
// one through gate, the later ones as they are (a projector opens its
// reads' connection with the options of the one it was given, so its
// reads go on being answered while its folds are held).
type gatedServer struct {
	srv  nats.InProcessConnProvider
	gate *stallGate

	mu     sync.Mutex
	dialed int
}

func (s *gatedServer) InProcessConn() (net.Conn, error) {
	c, err := s.srv.InProcessConn()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.dialed++
	first := s.dialed == 1
	s.mu.Unlock()
	if !first {
		return c, nil
	}
	return &stalledConn{Conn: c, gate: s.gate, closed: make(chan struct{})}, nil
}

// stallableConn opens an in-process connection to b (as broker.RoleAdmin)
// whose traffic from the broker the returned gate holds back; the later
// connections opened with its options are not held. The gate is released
// at the end of t before the connection closes.
func stallableConn(t *testing.T, b *brokertest.Broker) (*nats.Conn, *stallGate) {
	t.Helper()
	gate := &stallGate{budget: -1, open: make(chan struct{})}
	nc, err := b.ConnectAs(broker.RoleAdmin, nats.InProcessServer(&gatedServer{srv: b.Server(), gate: gate}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	t.Cleanup(gate.release) // first: a held connection closes slowly
	return nc, gate
}

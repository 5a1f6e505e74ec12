package brokertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// ClusterSize is the number of nodes StartCluster starts.
const ClusterSize = 3

// clusterReady bounds the wait for the cluster's meta leader and for
// provision.Ensure at start.
const clusterReady = 60 * time.Second

// Cluster is an in-process JetStream cluster of ClusterSize embedded
// brokers (the production configuration of package broker, each with its
// own store directory), routed to each other over loopback TCP, for tests
// of what a scaled deployment does that one node cannot show: a read
// answered by a follower that has not yet applied a write the leader
// acknowledged.
//
// The nodes share one credentials directory, so every node admits the
// same role keys, as the servers of a real cluster share accounts.conf;
// the routes between them carry no credentials (loopback only).
type Cluster struct {
	// Nodes are the brokers (nil: a node StartLate holds back); a node's
	// index is how Conn, ConnAs and Leader name it.
	Nodes []*broker.Embedded

	connect []nats.Option
	cfgs    []broker.Config // each node's, for Restart
}

// StartCluster starts ClusterSize embedded brokers in t.TempDir(), waits
// until they have elected a meta leader and, unless NoEnsure, ensures the
// streams and buckets with Replicas ClusterSize (Streams sets the other
// options; its Replicas, if not 1, is kept). Listen is ignored: each node
// listens on a free loopback port (a server opens its routes only after
// its client port). A node that cannot listen on its ports (another
// process took one after freePorts found it free) has the cluster started
// again on new ports, twice at most. Any other failure fails t at once;
// the nodes are shut down when t ends.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := options{streams: streams.DefaultOptions(), ensure: true}
	for _, opt := range opts {
		opt(&o)
	}
	if o.streams.Replicas == 1 {
		o.streams.Replicas = ClusterSize
	}
	dir := t.TempDir()
	c := onNewPorts(t, "start the cluster", func(attempt int) (*Cluster, error) {
		return startNodes(t, filepath.Join(dir, fmt.Sprintf("attempt%d", attempt)), o)
	})
	if len(o.late) > 0 {
		// The servers elect no meta leader until they all came up once.
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReady)
	defer cancel()
	c.awaitMetaLeader(t, ctx)
	if o.ensure {
		_, js := c.Conn(t, 0)
		// The meta group may still be settling its first peers: a create
		// it cannot place yet is asked again.
		if err := provision.EnsureWhenReady(ctx, js, o.streams, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("brokertest: ensure streams and buckets on the cluster: %v", err)
		}
	}
	return c
}

// restartWait bounds Restart's tries of a node whose cluster port is taken.
const restartWait = 15 * time.Second

// startAttempts bounds how often onNewPorts starts something.
const startAttempts = 3

// onNewPorts calls start (attempt 1, 2, ...) until it returns without
// broker.ErrListen, startAttempts times at most, and fails t with what
// and its error otherwise. Each call of start listens on ports it has not
// tried before: a port found free a moment ago may have been taken since
// by another process (a parallel test package), which new ports make
// unlikely twice.
func onNewPorts[T any](t testing.TB, what string, start func(attempt int) (T, error)) T {
	t.Helper()
	for attempt := 1; ; attempt++ {
		v, err := start(attempt)
		if err == nil {
			return v
		}
		if !errors.Is(err, broker.ErrListen) || attempt == startAttempts {
			t.Fatalf("brokertest: %s: %v", what, err)
		}
		t.Logf("brokertest: %s: %v; again on other ports", what, err)
	}
}

// startNodes starts the nodes of a cluster on new ports under dir, except
// those o holds back. If one fails it shuts down those it started and
// returns the error; else the nodes are shut down when t ends.
func startNodes(t testing.TB, dir string, o options) (*Cluster, error) {
	// A route port and a client port a node. All are taken from the
	// kernel at once, so they differ; a client port of 0 could be handed
	// a route port freePorts had just released for a node not started
	// yet.
	ports := freePorts(t, 2*ClusterSize)
	routePorts, clientPorts := ports[:ClusterSize], ports[ClusterSize:]
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &Cluster{connect: o.connect}
	for i, p := range routePorts {
		cfg := o.cfg
		// The server starts its routes only once its client port is
		// open, so every node listens (on loopback, credentials required).
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", clientPorts[i])
		cfg.Dir = filepath.Join(dir, fmt.Sprintf("n%d", i))
		cfg.CredentialsDir = filepath.Join(dir, "credentials")
		cfg.ServerName = fmt.Sprintf("n%d", i)
		cfg.ClusterName = "pushgo-test"
		cfg.ClusterListen = fmt.Sprintf("127.0.0.1:%d", p)
		cfg.Routes = routes
		c.cfgs = append(c.cfgs, cfg)
		if slices.Contains(o.late, i) {
			c.Nodes = append(c.Nodes, nil)
			continue
		}
		e, err := broker.Start(cfg)
		if err != nil {
			for _, n := range c.Nodes {
				if n != nil {
					n.Shutdown()
				}
			}
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		c.Nodes = append(c.Nodes, e)
	}
	for _, n := range c.Nodes {
		if n != nil {
			t.Cleanup(n.Shutdown)
		}
	}
	return c, nil
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("brokertest: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// awaitMetaLeader waits until one node leads the JetStream meta group, it
// hears from every node, and every node's view of the group is current.
func (c *Cluster) awaitMetaLeader(t testing.TB, ctx context.Context) {
	t.Helper()
	for {
		leaders, peers, current, running := 0, 0, 0, 0
		for _, n := range c.Nodes {
			if n == nil {
				continue
			}
			running++
			if n.Server().JetStreamIsLeader() {
				leaders++
				// Only the meta leader lists the peers it hears from.
				peers = len(n.Server().JetStreamClusterPeers())
			}
			if n.Server().JetStreamIsCurrent() {
				current++
			}
		}
		if leaders == 1 && peers == running && current == running {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("brokertest: cluster has no meta leader after %s (%d leaders, %d current)", clusterReady, leaders, current)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Restart starts node i (again, or for the first time after StartLate) on
// its store, its cluster port and its routes, on a new client port. It
// fails t if the node does not start within restartWait.
//
// The cluster port cannot change (the others route to it), and right after
// the node's shutdown it can still be taken: make test's parallel packages
// open loopback connections by the thousand, and one handed that port as
// its local port holds it until it closes (TestEnsureWaitsForAPeer failed
// so on a fresh clone: three starts in a row, none waiting). So a
// start that cannot listen waits and tries again, from 50 ms doubling to
// 1 s, each time on a new client port.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	if c.Nodes[i] != nil {
		c.Nodes[i].Shutdown()
	}
	cfg := c.cfgs[i]
	cfg.Listen = "127.0.0.1:0" // the old client port is not held for it
	// A client port of 0 can be handed the node's own route port, just
	// released by its shutdown, or a late node's: the next one is not.
	deadline := time.Now().Add(restartWait)
	var e *broker.Embedded
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var err error
		if e, err = broker.Start(cfg); err == nil {
			break
		}
		if !errors.Is(err, broker.ErrListen) || time.Now().After(deadline) {
			t.Fatalf("brokertest: restart cluster node %d: %v", i, err)
		}
		t.Logf("brokertest: restart cluster node %d: %v; again in %s", i, err, wait)
		time.Sleep(wait)
	}
	t.Cleanup(e.Shutdown)
	c.Nodes[i] = e
}

// Conn opens an in-process connection to node i as broker.RoleAdmin and a
// JetStream handle over it: what a process attached to that node has. The
// connection is closed when t ends.
func (c *Cluster) Conn(t testing.TB, i int) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectAs(t, c.Nodes[i], broker.RoleAdmin, c.connect)
}

// ConnAs is Conn with the credentials, and so the permissions, of role r.
func (c *Cluster) ConnAs(t testing.TB, i int, r broker.Role, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connectAs(t, c.Nodes[i], r, append(slices.Clip(c.connect), opts...))
}

// Placement says which node leads a stream and which follow it.
type Placement struct {
	Leader    int
	Followers []int
}

// Placement is where stream (a bucket's stream is KV_<bucket>) is now: the
// index of its leader's node and of its followers' nodes, from the
// stream's cluster info. It waits (up to a minute) for the stream to have
// a leader, every replica current and, when the stream allows direct
// gets, every replica serving them (a follower joins the direct get
// queue group a while after it has caught up; until then a direct get
// through its server is answered by another replica): a test then reads
// through a follower's server from that follower, as in a settled
// cluster. It fails t if that does not happen.
func (c *Cluster) Placement(t testing.TB, stream string) Placement {
	t.Helper()
	_, js := c.Conn(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), clusterReady)
	defer cancel()
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			if p, ok := c.placement(s.CachedInfo()); ok {
				return p
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("brokertest: stream %s has no leader with current replicas: %v", stream, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) placement(info *jetstream.StreamInfo) (Placement, bool) {
	index := func(name string) int {
		return slices.IndexFunc(c.Nodes, func(n *broker.Embedded) bool { return n.Server().Name() == name })
	}
	ci := info.Cluster
	if ci == nil || ci.Leader == "" {
		return Placement{}, false
	}
	p := Placement{Leader: index(ci.Leader)}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return Placement{}, false
		}
		p.Followers = append(p.Followers, index(r.Name))
	}
	if p.Leader < 0 || len(p.Followers) != info.Config.Replicas-1 {
		return Placement{}, false
	}
	if info.Config.AllowDirect {
		for _, i := range append([]int{p.Leader}, p.Followers...) {
			if i < 0 || !c.servesDirectGets(i, info.Config.Name) {
				return Placement{}, false
			}
		}
	}
	return p, true
}

// servesDirectGets reports whether node i's replica of stream answers
// direct gets: it holds the local queue subscription replicas answer
// them on.
func (c *Cluster) servesDirectGets(i int, stream string) bool {
	subject := "$JS.API.DIRECT.GET." + stream
	sz, err := c.Nodes[i].Server().Subsz(&server.SubszOptions{Subscriptions: true, Test: subject, Limit: 1 << 16})
	if err != nil {
		return false
	}
	for _, sd := range sz.Subs {
		if sd.Subject == subject && sd.Queue != "" {
			return true
		}
	}
	return false
}

// LeadOn moves the leadership of stream to node i (stepping the leader
// down until the cluster elects i), so a test can place its writer and
// its reader. It fails t if i is not a replica of the stream or does not
// become its leader within a minute.
func (c *Cluster) LeadOn(t testing.TB, stream string, i int) {
	t.Helper()
	_, js := c.Conn(t, i)
	ctx, cancel := context.WithTimeout(context.Background(), clusterReady)
	defer cancel()
	for {
		p := c.Placement(t, stream)
		if p.Leader == i {
			return
		}
		if !slices.Contains(p.Followers, i) {
			t.Fatalf("brokertest: node %d holds no replica of %s", i, stream)
		}
		// Ask for node i by name: the server elects it if it can.
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Conn().RequestWithContext(sctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream,
			fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, c.Nodes[i].Server().Name()))
		scancel()
		if ctx.Err() != nil {
			t.Fatalf("brokertest: node %d did not become leader of %s: %v", i, stream, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

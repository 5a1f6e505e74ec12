package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/schemas/streams"
)

// The cluster phase's broker: three nats-server processes on loopback
// (natsCluster), each with its own store directory, routed to each other,
// configured as deploy/nats/nats.conf configures compose.yaml's nodes (the
// same cluster pings, the roles' nkey users with the permissions the
// embedded broker grants, in one JetStream account) except for what one
// machine and the comparison need: loopback ports, temporary stores, and
// JetStream's sync interval the gateway's default (deploy/nats/nats.conf
// leaves nats-server's own, 2 minutes).
//
// Processes, not embedded servers: a deployment's brokers are processes of
// their own (compose.yaml), so the gateway reaches them over TCP, its
// garbage collector and scheduler do not carry theirs, and the CPU figures
// of this process (the gateway's, or the raw publishers') do not include
// the three servers', which are counted apart (natsCluster.cpu).

// clusterNodes is the cluster's size.
const clusterNodes = 3

// clusterReadyLimit bounds the cluster's start: the processes, the meta
// leader, and a stream it can place on every node.
const clusterReadyLimit = 60 * time.Second

// natsBuildLimit bounds the build of nats-server (a compile when the build
// cache does not hold it yet).
const natsBuildLimit = 5 * time.Minute

// natsCluster is the running cluster: its nodes, the roles' seeds, and the
// temporary directory that holds the stores, configurations, logs and
// seeds (and the nats-server binary it built).
type natsCluster struct {
	dir      string
	credsDir string // <role>.nk seeds (broker.CredentialsFile)
	nodes    []*natsNode
}

// natsNode is one nats-server process.
type natsNode struct {
	name          string
	client, route int // loopback ports
	logPath       string
	cmd           *exec.Cmd
	exited        chan struct{} // closed once the process ended; then waitErr is set
	waitErr       error
}

// url is the node's client URL.
func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.client) }

// startNATSCluster starts the three nodes with bin (built from the module
// cache when empty) and waits until the cluster places a replicated
// stream. sync is JetStream's sync setting on every node.
func startNATSCluster(ctx context.Context, bin string, sync broker.Sync) (_ *natsCluster, err error) {
	c := &natsCluster{}
	if c.dir, err = os.MkdirTemp("", "pushgo-bench-cluster-*"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if bin == "" {
		if bin, err = buildNATSServer(ctx, c.dir); err != nil {
			return nil, err
		}
	}
	c.credsDir = filepath.Join(c.dir, "credentials")
	users, err := writeRoleSeeds(c.credsDir)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range clusterNodes {
		n := &natsNode{name: fmt.Sprintf("n%d", i+1), exited: make(chan struct{})}
		if n.client, err = freePort(); err != nil {
			return nil, err
		}
		if n.route, err = freePort(); err != nil {
			return nil, err
		}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", n.route))
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		store := filepath.Join(c.dir, n.name, "jetstream")
		conf := filepath.Join(c.dir, n.name+".conf")
		if err := os.MkdirAll(store, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(conf, []byte(natsConfig(n, store, routes, sync, users)), 0o600); err != nil {
			return nil, err
		}
		n.logPath = filepath.Join(c.dir, n.name+".log")
		if err := n.start(bin, conf); err != nil {
			return nil, fmt.Errorf("nats-server %s: %w", n.name, err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, clusterReadyLimit)
	defer cancel()
	if err := c.awaitReady(rctx); err != nil {
		return nil, err
	}
	return c, nil
}

// buildNATSServer builds nats-server at the version the workspace requires
// (the module cache holds it: nothing is downloaded) into dir. It needs
// the go command and a working directory inside the repository, as
// `make bench` has; -nats-server names a binary otherwise.
func buildNATSServer(ctx context.Context, dir string) (string, error) {
	bctx, cancel := context.WithTimeout(ctx, natsBuildLimit)
	defer cancel()
	out := filepath.Join(dir, "nats-server")
	build := exec.CommandContext(bctx, "go", "build", "-o", out, "github.com/nats-io/nats-server/v2")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nats-server (give -nats-server PATH instead): %v\n%s", err, b)
	}
	return out, nil
}

// writeRoleSeeds makes one nkey user per role and writes its seed to
// dir/<role>.nk, as cmd/pushgo-keys does for compose.yaml; it returns the
// public keys by role.
func writeRoleSeeds(dir string) (map[broker.Role]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	users := map[broker.Role]string{}
	for _, r := range broker.Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, err
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(broker.CredentialsFile(dir, r), append(seed, '\n'), 0o600); err != nil {
			return nil, err
		}
		if users[r], err = kp.PublicKey(); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// natsConfig is node n's configuration: deploy/nats/nats.conf with the
// values of this machine, JetStream's sync setting and limits the
// embedded broker's (broker.Config defaults), and deploy/nats/accounts.conf
// with the users' public keys.
func natsConfig(n *natsNode, store string, routes []string, sync broker.Sync, users map[broker.Role]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: \"127.0.0.1:%d\"\nmax_payload: 1048576\n", n.name, n.client)
	syncValue := fmt.Sprintf("%q", sync.Interval.String())
	if sync.Always {
		syncValue = "always"
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: %s\n  max_memory_store: %d\n  max_file_store: %d\n}\n",
		store, syncValue, int64(256<<20), int64(10<<30))
	fmt.Fprintf(&b, "cluster {\n  name: pushgo-bench\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n  ping_interval: \"2s\"\n  ping_max: 3\n}\n",
		n.route, strings.Join(routes, ", "))
	b.WriteString("accounts {\n  PUSHGO {\n    jetstream: enabled\n    users: [\n")
	for _, r := range broker.Roles {
		p := r.Permissions()
		if p == nil {
			fmt.Fprintf(&b, "      { nkey: %s }\n", users[r])
			continue
		}
		fmt.Fprintf(&b, "      { nkey: %s, permissions: { publish: { allow: [%s] }, subscribe: { allow: [%s] } } }\n",
			users[r], quotedList(p.Publish.Allow), quotedList(p.Subscribe.Allow))
	}
	b.WriteString("    ]\n  }\n}\n")
	return b.String()
}

func quotedList(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// start runs the node's process, its output to its log file.
func (n *natsNode) start(bin, conf string) error {
	logf, err := os.Create(n.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	n.cmd = exec.Command(bin, "-c", conf)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := startTied(n.cmd); err != nil {
		return err
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
	return nil
}

// logTail is the end of the node's log, for an error.
func (n *natsNode) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return "\n" + n.name + " log (end):\n" + string(b)
}

// alive fails if a node has exited.
func (c *natsCluster) alive() error {
	for _, n := range c.nodes {
		select {
		case <-n.exited:
			return fmt.Errorf("nats-server %s exited: %v%s", n.name, n.waitErr, n.logTail())
		default:
		}
	}
	return nil
}

// connect opens a TCP connection to node i with the credentials of role
// r, and a JetStream handle over it.
func (c *natsCluster) connect(i int, r broker.Role) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := broker.Remote{Creds: broker.CredentialsFile(c.credsDir, r)}.Options()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, nats.Name("pushgo-bench-"+string(r)), nats.MaxReconnects(-1))
	nc, err := nats.Connect(c.nodes[i].url(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", c.nodes[i].name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// probeStream is the stream awaitReady places on the three nodes.
const probeStream = "PUSHGO_BENCH_PROBE"

// awaitReady waits until every node accepts connections and the cluster
// places a stream on the three of them (its meta group has its peers),
// then removes that stream.
func (c *natsCluster) awaitReady(ctx context.Context) error {
	var last error
	for i := range c.nodes {
		for {
			if err := c.alive(); err != nil {
				return err
			}
			nc, _, err := c.connect(i, broker.RoleAdmin)
			if err == nil {
				nc.Close()
				break
			}
			last = err
			if ctx.Err() != nil {
				return fmt.Errorf("cluster not ready: %w", last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	nc, js, err := c.connect(0, broker.RoleAdmin)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := jetstream.StreamConfig{Name: probeStream, Subjects: []string{"pushgo.bench.probe"}, Replicas: clusterNodes}
	for {
		if err := c.alive(); err != nil {
			return err
		}
		// A request the cluster is not ready to answer gets no answer:
		// each attempt has a bound of its own.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.placeStream(actx, js, cfg)
		cancel()
		if err == nil {
			return js.DeleteStream(ctx, probeStream)
		}
		last = err
		if ctx.Err() != nil {
			return fmt.Errorf("cluster does not place a stream on %d nodes within %s: %w", clusterNodes, clusterReadyLimit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// placeStream creates (or updates) a stream and waits until it has a
// leader and every replica is current; it returns the leader's node index.
func (c *natsCluster) placeStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (int, error) {
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return -1, err
	}
	return c.awaitPlaced(ctx, js, cfg.Name)
}

// awaitPlaced waits until stream has a leader and every replica is current
// and returns the leader's node index.
func (c *natsCluster) awaitPlaced(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			if i, ok := c.leader(s.CachedInfo()); ok {
				return i, nil
			}
			err = errors.New("no leader with every replica current")
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("stream %s: %w", stream, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leader is the index of the node that leads a stream whose replicas are
// all current.
func (c *natsCluster) leader(info *jetstream.StreamInfo) (int, bool) {
	ci := info.Cluster
	if ci == nil || ci.Leader == "" || len(ci.Replicas) != info.Config.Replicas-1 {
		return -1, false
	}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return -1, false
		}
	}
	i := slices.IndexFunc(c.nodes, func(n *natsNode) bool { return n.name == ci.Leader })
	return i, i >= 0
}

// ensureStreams creates the gateway's streams and buckets with opts, as
// its provision.Ensure does at start, asking again while the cluster
// cannot place them yet.
func (c *natsCluster) ensureStreams(ctx context.Context, opts streams.Options) error {
	nc, js, err := c.connect(0, broker.RoleAdmin)
	if err != nil {
		return err
	}
	defer nc.Close()
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := provision.Ensure(actx, js, opts)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ensure streams and buckets on the cluster: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpu is the CPU time the three processes have used so far.
func (c *natsCluster) cpu() (time.Duration, error) {
	var total time.Duration
	for _, n := range c.nodes {
		d, err := procCPU(n.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// close stops the nodes (SIGTERM; SIGKILL after 10 s), waits for them to
// exit, and removes the directory. It may be called more than once.
func (c *natsCluster) close() {
	for _, n := range c.nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range c.nodes {
		if n.cmd == nil || n.cmd.Process == nil {
			continue
		}
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.exited
		}
	}
	c.nodes = nil
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
		c.dir = ""
	}
}

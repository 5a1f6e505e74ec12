package e2e

// The scaled shape of compose.yaml, run as local processes: three real
// nats-server processes (built from the module cache) on the repository's
// deploy/nats/nats.conf, and the pushgo processes of each compose service
// with the service's command and environment. Only what cannot be the same
// on one machine changes: every address becomes a free loopback port, the
// volumes become temporary directories, the secrets the seeds that
// cmd/pushgo-keys (make compose-keys) writes, and the pushers get a local
// fake FCM as their provider (compose leaves providers to the operator).

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterBins are the binaries the cluster tests build once: nats-server
// at the version go.mod requires (the module cache has it; nothing else is
// downloaded) and cmd/pushgo-keys.
var clusterBins struct {
	once               sync.Once
	natsServer, keyGen string
	err                error
}

func buildClusterBins(t *testing.T) (natsServer, keyGen string) {
	t.Helper()
	clusterBins.once.Do(func() {
		dir := filepath.Dir(pushgoBin)
		clusterBins.natsServer = filepath.Join(dir, "nats-server")
		clusterBins.keyGen = filepath.Join(dir, "pushgo-keys")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for pkg, out := range map[string]string{
			"github.com/nats-io/nats-server/v2":         clusterBins.natsServer,
			"github.com/pushgo/gateway/cmd/pushgo-keys": clusterBins.keyGen,
		} {
			build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
			build.Dir = ".."
			if b, err := build.CombinedOutput(); err != nil {
				clusterBins.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if clusterBins.err != nil {
		t.Fatal(clusterBins.err)
	}
	return clusterBins.natsServer, clusterBins.keyGen
}

// composeProject is compose.yaml as Docker Compose reads it.
func composeProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../compose.yaml"}, cli.WithWorkingDirectory(".."), cli.WithName("pushgo"),
		cli.WithoutEnvironmentResolution, cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// natsNode is one nats-server process of the cluster.
type natsNode struct {
	name                   string
	client, route, monitor int // loopback ports
	storeDir               string
	args, env              []string
	mu                     sync.Mutex
	cmd                    *exec.Cmd
	output                 *syncBuffer
	done                   chan struct{}
	stopped                bool // SIGSTOPped
}

// exited reports whether n's process has ended (killed, not restarted).
func (n *natsNode) exited() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.client) }

// cluster is compose.yaml's topology on this machine.
type cluster struct {
	t       *testing.T
	project *types.Project
	nodes   []*natsNode
	keysDir string
	url     string // every node's client URL, comma-separated
	fcm     string // the fake FCM's endpoint the pushers send to
	creds   string // the FCM service account file
	// services are the pushgo processes by compose service name.
	services map[string][]*gateway
	// volumes are the directories standing for the named volumes the
	// services mount at /data (the image's data directory): one a volume,
	// shared by every replica that mounts it, as Docker does.
	volumes map[string]string
}

// dataDir is the data directory of a process of service s: the directory
// of the named volume s mounts at /data, else one of its own.
func (c *cluster) dataDir(s types.ServiceConfig) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			if c.volumes == nil {
				c.volumes = map[string]string{}
			}
			if c.volumes[v.Source] == "" {
				c.volumes[v.Source] = c.t.TempDir()
			}
			return c.volumes[v.Source]
		}
	}
	return c.t.TempDir()
}

// startCluster starts compose.yaml's three NATS servers and waits until
// each says it is healthy (JetStream on, meta leader known). A node that
// could not listen on a port freePort chose has the three started again
// on new ports (onNewPorts).
func startCluster(t *testing.T) *cluster {
	t.Helper()
	natsServer, keyGen := buildClusterBins(t)
	p := composeProject(t)
	c := &cluster{t: t, project: p, keysDir: filepath.Join(t.TempDir(), "keys"), services: map[string][]*gateway{}}
	if out, err := exec.Command(keyGen, "-dir", c.keysDir).CombinedOutput(); err != nil {
		t.Fatalf("pushgo-keys: %v\n%s", err, out)
	}
	// The admin seed lets the test's helpers (dialJS, readOps) in, as an
	// operator's nats CLI would be.
	var names []string
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	if len(names) != 3 {
		t.Fatalf("compose.yaml has NATS services %v, want three", names)
	}
	keys := readKeyValueFile(t, filepath.Join(c.keysDir, "nkeys.env"))
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stopNode(n)
			if t.Failed() {
				t.Logf("---- %s (client %d) output, last 4 KiB ----\n%s", n.name, n.client, tail(n.output.String(), 4096))
			}
		}
	})
	onNewPorts(t, "the cluster", func() error { return c.startNodes(names, keys, natsServer) })
	return c
}

// startNodes starts the NATS services names as c's nodes, on ports
// freePort chooses, and waits until each is healthy. A node that exits
// because one of its ports was taken in between (by another test
// process) is returned as an error, after every node of this attempt is
// stopped; any other failure fails the test.
func (c *cluster) startNodes(names []string, keys map[string]string, natsServer string) error {
	t := c.t
	t.Helper()
	c.nodes = nil
	for _, name := range names {
		c.nodes = append(c.nodes, &natsNode{name: name, client: freePort(t), route: freePort(t), monitor: freePort(t),
			storeDir: filepath.Join(t.TempDir(), "jetstream")})
	}
	var routes, urls []string
	for _, n := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", n.route))
		urls = append(urls, n.url())
	}
	c.url = strings.Join(urls, ",")
	brokerCreds.Store(c.url, c.keysDir)
	for _, n := range c.nodes {
		s, _ := c.project.GetService(n.name)
		n.args = volumePaths(s, s.Command)
		n.env = baseEnv()
		for k, v := range s.Environment {
			if v != nil {
				n.env = append(n.env, k+"="+*v)
			}
		}
		// deploy/nats/cluster.env's addresses, on loopback.
		n.env = append(n.env,
			fmt.Sprintf("NATS_LISTEN=127.0.0.1:%d", n.client),
			fmt.Sprintf("NATS_HTTP=127.0.0.1:%d", n.monitor),
			fmt.Sprintf("NATS_CLUSTER_LISTEN=127.0.0.1:%d", n.route),
			"NATS_ROUTES=["+strings.Join(routes, ", ")+"]",
			"NATS_STORE_DIR="+strconv.Quote(n.storeDir))
		// Its storage limits as the deployment sets them.
		n.env = append(n.env, clusterEnv(c.t, "NATS_MAX_FILE_STORE", "PUSHGO_MAX_FILE")...)
		for k, v := range keys {
			n.env = append(n.env, k+"="+v)
		}
		c.startNode(n, natsServer)
	}
	// Every node is watched at once: the others wait for a meta leader
	// while one of them has exited for a port.
	if err := c.nodesHealthy(c.nodes, 30*time.Second); err != nil {
		if !slices.ContainsFunc(c.nodes, func(n *natsNode) bool {
			return n.exited() && strings.Contains(n.output.String(), "address already in use")
		}) {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			c.stopNode(n)
		}
		return err
	}
	return nil
}

// stopNode ends n's process, if it was started, and waits until it is
// gone.
func (c *cluster) stopNode(n *natsNode) {
	n.mu.Lock()
	done := n.done
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		_ = n.cmd.Process.Kill()
	}
	n.mu.Unlock()
	if done != nil {
		<-done
	}
}

// baseEnv is this process's environment without the variables the
// processes under test read.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHGO_") && !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "SERVER_NAME=") {
			env = append(env, kv)
		}
	}
	return env
}

// clusterEnv is the settings names of deploy/nats/cluster.env, as
// NAME=value.
func clusterEnv(t testing.TB, names ...string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "nats", "cluster.env"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(raw)) {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && slices.Contains(names, k) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) != len(names) {
		t.Fatalf("deploy/nats/cluster.env sets %v of %v", out, names)
	}
	return out
}

// volumePaths replaces, in args, each bind mount's path in the container
// by its path in the repository (compose's -c /etc/nats/nats.conf runs
// deploy/nats/nats.conf).
func volumePaths(s types.ServiceConfig, args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && strings.HasPrefix(a, v.Target) {
				out[i] = v.Source + strings.TrimPrefix(a, v.Target)
			}
		}
	}
	return out
}

func (c *cluster) startNode(n *natsNode, bin string) {
	c.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.output == nil {
		n.output = &syncBuffer{}
	}
	fmt.Fprintf(n.output, "---- start %s ----\n", time.Now().Format("15:04:05.000"))
	n.cmd = exec.Command(bin, n.args...)
	n.cmd.Env = n.env
	n.cmd.Stdout, n.cmd.Stderr = n.output, n.output
	if err := n.cmd.Start(); err != nil {
		c.t.Fatalf("%s: %v", n.name, err)
	}
	n.stopped = false
	done := make(chan struct{})
	n.done = done
	cmd := n.cmd
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

// waitNodeHealthy polls a node's /healthz until it answers 200, and fails
// the test if it does not within bound.
func (c *cluster) waitNodeHealthy(n *natsNode, bound time.Duration) {
	c.t.Helper()
	if err := c.nodesHealthy([]*natsNode{n}, bound); err != nil {
		c.t.Fatal(err)
	}
}

// nodesHealthy polls the nodes' /healthz until each has answered 200. It
// returns an error when one exits first or bound passes.
func (c *cluster) nodesHealthy(nodes []*natsNode, bound time.Duration) error {
	probe := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(bound)
	healthy := make(map[*natsNode]bool)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.exited() {
				return fmt.Errorf("%s exited:\n%s", n.name, tail(n.output.String(), 4096))
			}
			if healthy[n] {
				continue
			}
			resp, err := probe.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					healthy[n] = true
				}
			}
		}
		if len(healthy) == len(nodes) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	var slow []string
	for _, n := range nodes {
		if !healthy[n] {
			slow = append(slow, fmt.Sprintf("%s:\n%s", n.name, tail(n.output.String(), 4096)))
		}
	}
	return fmt.Errorf("not healthy within %s: %s", bound, strings.Join(slow, "\n"))
}

// node returns the node called name (a stream leader's name).
func (c *cluster) node(name string) *natsNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// kill ends n with SIGKILL and waits until it is gone.
func (c *cluster) kill(n *natsNode) {
	n.mu.Lock()
	_ = n.cmd.Process.Kill()
	n.mu.Unlock()
	<-n.done
}

// pause stops n (SIGSTOP: a hung node, its sockets open) until resume.
func (c *cluster) pause(n *natsNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_ = n.cmd.Process.Signal(syscall.SIGSTOP)
	n.stopped = true
}

func (c *cluster) resume(n *natsNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_ = n.cmd.Process.Signal(syscall.SIGCONT)
	n.stopped = false
}

// restart starts a killed node again on its ports and store. Its client
// and route ports stay (the clients and the other nodes know them); its
// monitoring port is only the harness's, so one another test process took
// while the node was down is replaced.
func (c *cluster) restart(n *natsNode) {
	c.t.Helper()
	bin, _ := buildClusterBins(c.t)
	for attempt := 1; ; attempt++ {
		c.startNode(n, bin)
		err := c.nodesHealthy([]*natsNode{n}, 60*time.Second)
		if err == nil {
			return
		}
		out := n.output.String()
		thisStart := out[strings.LastIndex(out, "---- start "):]
		if attempt == portAttempts || !n.exited() || !strings.Contains(thisStart, "can't listen to the monitor port") {
			c.t.Fatal(err)
		}
		n.mu.Lock()
		n.monitor = freePort(c.t)
		n.env = append(n.env, fmt.Sprintf("NATS_HTTP=127.0.0.1:%d", n.monitor)) // the last one counts
		n.mu.Unlock()
		c.t.Logf("%s: its monitoring port was taken while it was down; starting it again on %d", n.name, n.monitor)
	}
}

// startService starts every replica of compose service name (its
// deploy.replicas) with its command and environment; extra entries are
// added to the environment. Each is waited for on /healthz.
func (c *cluster) startService(name string, extra ...string) []*gateway {
	c.t.Helper()
	s, err := c.project.GetService(name)
	if err != nil {
		c.t.Fatal(err)
	}
	replicas := 1
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		replicas = *s.Deploy.Replicas
	}
	for range replicas {
		c.services[name] = append(c.services[name], c.startReplica(s, extra...))
	}
	return c.services[name]
}

// startReplica starts one process of compose service s.
func (c *cluster) startReplica(s types.ServiceConfig, extra ...string) *gateway {
	c.t.Helper()
	secrets := map[string]string{}
	for _, sec := range s.Secrets {
		def := c.project.Secrets[sec.Source]
		target := cmp.Or(sec.Target, "/run/secrets/"+sec.Source)
		// deploy/keys/<role>.nk of make compose-keys: here, the test's.
		secrets[target] = filepath.Join(c.keysDir, filepath.Base(def.File))
	}
	var env []string
	for k, v := range s.Environment {
		if v == nil {
			continue
		}
		val := *v
		switch k {
		case "PUSHGO_HTTP_ADDR":
			continue // the harness gives each process a loopback port
		case "PUSHGO_NATS_URL":
			val = c.url
		}
		if f, ok := secrets[val]; ok {
			val = f
		}
		env = append(env, k+"="+val)
	}
	env = append(env, extra...)
	return startGateway(c.t, gwConfig{DataDir: c.dataDir(s), NATSURL: c.url, Args: s.Command, Env: env, WaitPath: "/healthz"})
}

// startAll starts the pushgo services of compose.yaml: ingest first (it
// creates the streams the others wait for), then the projectors, then the
// pushers with the cluster's fake FCM. It waits until every ingest is
// ready (a projector answers it).
func (c *cluster) startAll(fcmEndpoint, fcmCreds string) {
	c.t.Helper()
	// Every client of the tests is one address: the per-address limits on
	// unauthenticated creations would turn them away.
	ingest := c.startService("ingest", "PUSHGO_LIMIT_CHANNEL_CREATE=off", "PUSHGO_LIMIT_DEVICE_REGISTER=off")
	c.startService("projector")
	c.startService("pusher",
		"PUSHGO_FCM_CREDENTIALS_FILE="+fcmCreds,
		"PUSHGO_FCM_PROJECT_ID="+fcmProjectID,
		"PUSHGO_FCM_ENDPOINT="+fcmEndpoint)
	for _, g := range ingest {
		waitServed(c.t, g, 60*time.Second)
	}
}

// leader is the name of the node leading stream.
func (c *cluster) leader(js *jsConn, stream string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.js.Stream(ctx, stream)
	if err != nil {
		c.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		c.t.Fatalf("stream %s: %v", stream, err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		c.t.Fatalf("stream %s has no leader: %+v", stream, info.Cluster)
	}
	return info.Cluster.Leader
}

// waitLeaderElected waits until stream has a leader other than gone and
// every replica is current; it returns the new leader.
func (c *cluster) waitLeaderElected(js *jsConn, stream, gone string, bound time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := streamInfo(ctx, js.js, stream)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != gone:
			return info.Cluster.Leader
		default:
			last = fmt.Sprintf("%+v", info.Cluster)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("stream %s: no new leader within %s (last: %s)", stream, bound, last)
	return ""
}

// waitReplicasCurrent waits until every replica of stream is current
// (none offline or lagging), e.g. after a node came back.
func (c *cluster) waitReplicasCurrent(js *jsConn, stream string, bound time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := streamInfo(ctx, js.js, stream)
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2 &&
			!slices.ContainsFunc(info.Cluster.Replicas, func(p *jetstream.PeerInfo) bool { return !p.Current || p.Offline }) {
			return
		}
		last = fmt.Sprint(err)
		if info != nil && info.Cluster != nil {
			last = fmt.Sprintf("leader %q replicas %s", info.Cluster.Leader, describePeers(info.Cluster.Replicas))
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("stream %s: replicas not current within %s (last: %s)", stream, bound, last)
}

func describePeers(ps []*jetstream.PeerInfo) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "[%s current=%v offline=%v lag=%d]", p.Name, p.Current, p.Offline, p.Lag)
	}
	return b.String()
}

func streamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// readKeyValueFile reads KEY=VALUE lines (nkeys.env).
func readKeyValueFile(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			kv[k] = v
		}
	}
	return kv
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

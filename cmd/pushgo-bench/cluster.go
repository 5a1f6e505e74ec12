package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/internal/gateway"
	"github.com/pushgo/gateway/schemas/streams"
)

// The cluster phase (-phases cluster; named, not in the default): the
// write rows' comparison on a three-node JetStream cluster at R3, as the
// scaled deployment runs (compose.yaml, PUSHGO_REPLICAS=3), in one run:
//
//   - a cluster of three nats-server processes on loopback (natscluster.go),
//     JetStream sync the gateway's default (1s), started once;
//   - raw jetstream: raw.go's anchor on it: the PUSHGO_OPS stream with the
//     gateway's configuration at 3 replicas (created afresh for each run,
//     removed after it), -concurrency publishers in this process, each
//     publishing the same bodies to per-entity subjects and waiting for
//     the acknowledgement, which the stream leader gives once a majority of
//     the replicas stored the message;
//   - ours (http): the gateway (-target, gateway.Start in this process)
//     connected to the cluster as an external broker (PUSHGO_NATS_URL,
//     PUSHGO_NATS_CREDS: the target's role's nkey seed, PUSHGO_REPLICAS=3),
//     under the write row's load: -concurrency clients updating -entities
//     events and things, closed loop, in a load process of its own;
//   - the ratio ours/raw, printed without a verdict: no budget states it.
//
// The publishers and the gateway attach to the same node (-cluster-attach):
// the one leading PUSHGO_OPS, or a follower, whose server forwards each
// publish to the leader and its acknowledgement back.

func init() { registerPhase(50, func() phase { return &clusterPhase{} }) }

// clusterPhase is the cluster phase's flags, with the common options.
type clusterPhase struct {
	*options
	natsServer string // nats-server binary; "" builds it
	attach     string // attachLeader or attachFollower
	sync       broker.Sync
}

const (
	attachLeader   = "leader"
	attachFollower = "follower"
)

func (*clusterPhase) name() string { return "cluster" }
func (*clusterPhase) about() string {
	return "raw vs ours on a 3-node loopback JetStream cluster at R3; only when named"
}

// optIn: the phase adds a cluster's start and two rows of -runs runs each
// to `make bench` (about 90 s at the defaults): it runs when named.
func (*clusterPhase) optIn() {}

func (p *clusterPhase) flags(fs *flagSet) {
	fs.StringVar(&p.natsServer, "nats-server", "", "cluster phase: the nats-server binary (default: built from the module cache with go build, which needs the go command in the repository)")
	fs.StringVar(&p.attach, "cluster-attach", attachLeader, "cluster phase: the node the publishers and the gateway attach to: leader (of PUSHGO_OPS) or follower")
}

func (p *clusterPhase) setup(o *options) error {
	p.options = o
	p.sync = gateway.Defaults().Sync
	if p.attach != attachLeader && p.attach != attachFollower {
		return errors.New("-cluster-attach must be leader or follower")
	}
	if p.natsServer != "" {
		if _, err := os.Stat(p.natsServer); err != nil {
			return fmt.Errorf("-nats-server: %w", err)
		}
	}
	return nil
}

func (p *clusterPhase) header() string {
	return fmt.Sprintf("cluster (%d nats-server processes, R%d, sync=%s, attached to %s)", clusterNodes, clusterNodes, p.sync, p.attachedLabel())
}

func (p *clusterPhase) loadNote() string { return "" }

// limit: the build of nats-server, the cluster's start, two rows of -runs
// timed runs (each with room for the catch-up of the projector), and the
// gateway's start, set-up and shutdown.
func (p *clusterPhase) limit() time.Duration {
	perRun := 2*(p.warmup+p.duration+opTimeout+15*time.Second) + settleLimit
	return natsBuildLimit + clusterReadyLimit + time.Duration(p.runs)*perRun + 3*time.Minute
}

// streamOptions are the gateway's stream options at the cluster's size.
func (p *clusterPhase) streamOptions() streams.Options {
	cfg := gateway.Defaults()
	cfg.Replicas = clusterNodes
	return cfg.StreamOptions()
}

// attachTo is the node to attach to, given the stream leader's.
func (p *clusterPhase) attachTo(leader int) int {
	if p.attach == attachLeader {
		return leader
	}
	return (leader + 1) % clusterNodes
}

func (p *clusterPhase) run(ctx context.Context) (table, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(os.Stderr, "== %s\n", p.header())
	began := time.Now()
	c, err := startNATSCluster(ctx, p.natsServer, p.sync)
	if err != nil {
		return nil, err
	}
	defer c.close()
	fmt.Fprintf(os.Stderr, "  set-up: %d nats-server processes on 127.0.0.1 ready in %s (%s)\n",
		len(c.nodes), time.Since(began).Round(time.Millisecond), c.dir)

	t := &clusterTable{o: p}
	if t.raw, err = repeat(ctx, p.options, "raw jetstream", func(int) (clusterRun, error) {
		return atAnchorProcs(func() (clusterRun, error) { return p.rawRun(ctx, c) })
	}); err != nil {
		return nil, err
	}

	g, err := p.startGateway(ctx, c, log)
	if err != nil {
		return nil, err
	}
	defer g.close()
	if t.ours, err = repeat(ctx, p.options, "ours (http)", func(int) (clusterRun, error) {
		run, err := c.measure(func() (result, error) {
			return runLoad(ctx, g.spec(opUpdate).closed(p.concurrency, p.warmup, p.duration))
		})
		if err != nil {
			return run, err
		}
		run.res.note = g.settleNote(ctx)
		return run, nil
	}); err != nil {
		return nil, err
	}
	return t, nil
}

// rawRun is one run of the raw row: a fresh PUSHGO_OPS at 3 replicas, the
// publishers attached to the chosen node, the closed loop, and the stream
// removed.
func (p *clusterPhase) rawRun(ctx context.Context, c *natsCluster) (clusterRun, error) {
	nc, js, err := c.connect(0, broker.RoleAdmin)
	if err != nil {
		return clusterRun{}, err
	}
	defer nc.Close()
	opts := p.streamOptions()
	cfg := provision.StreamConfig(streams.OpsStream(opts), opts)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	leader, err := c.placeStream(sctx, js, cfg)
	cancel()
	if err != nil {
		return clusterRun{}, fmt.Errorf("create %s: %w", cfg.Name, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := js.DeleteStream(dctx, cfg.Name); err != nil {
			fmt.Fprintf(os.Stderr, "  delete %s: %v\n", cfg.Name, err)
		}
	}()
	r, err := p.newRaw(c, p.attachTo(leader))
	if err != nil {
		return clusterRun{}, err
	}
	defer r.close()
	return c.measure(func() (result, error) {
		return closedLoop(ctx, p.concurrency, p.warmup, p.duration, r.publish, false), nil
	})
}

// newRaw is raw.go's publishers over a TCP connection to node i (as
// RoleAdmin, unrestricted, as raw.go's in-process connection).
func (p *clusterPhase) newRaw(c *natsCluster, i int) (*rawTarget, error) {
	r := &rawTarget{}
	var err error
	if r.nc, r.js, err = c.connect(i, broker.RoleAdmin); err != nil {
		return nil, err
	}
	r.addEntities(p.entities, p.bodySize)
	return r, nil
}

// startGateway provisions the streams and buckets at 3 replicas, starts
// the gateway attached to the chosen node of PUSHGO_OPS, and creates the
// channel and the entities (not measured).
func (p *clusterPhase) startGateway(ctx context.Context, c *natsCluster, log *slog.Logger) (_ *target, err error) {
	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cfg := gateway.Defaults()
	cfg.Replicas, cfg.Target = clusterNodes, p.target
	// The gateway ensures them too at start; provisioned first, the
	// leader of PUSHGO_OPS is known before the gateway picks its node.
	if err := c.ensureStreams(sctx, cfg.StreamOptions()); err != nil {
		return nil, err
	}
	nc, js, err := c.connect(0, broker.RoleAdmin)
	if err != nil {
		return nil, err
	}
	leader, err := c.awaitPlaced(sctx, js, streams.Ops)
	nc.Close()
	if err != nil {
		return nil, err
	}
	node := c.nodes[p.attachTo(leader)]

	cfg.NATSURL, cfg.NATSCreds = node.url(), broker.CredentialsFile(c.credsDir, broker.Role(p.target))
	t, err := launchGateway(sctx, p.options, cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.eventIDs, err = t.create(sctx, p.entities, p.concurrency, "/event/create", "event_id", t.bodies.eventCreate); err != nil {
		return nil, err
	}
	if t.thingIDs, err = t.create(sctx, p.entities, p.concurrency, "/thing/create", "thing_id", t.bodies.thingCreate); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  set-up: gateway (target %s) attached to %s, channel, %d events, %d things created in %s\n",
		p.target, node.name, len(t.eventIDs), len(t.thingIDs), time.Since(began).Round(time.Millisecond))
	return t, nil
}

func (p *clusterPhase) attachedLabel() string {
	if p.attach == attachLeader {
		return "the leader of " + streams.Ops
	}
	return "a follower of " + streams.Ops
}

// clusterRun is one run of a cluster row: the row's result (its CPU
// figures without the brokers' share among the others) and the cores the
// three nats-server processes used meanwhile.
type clusterRun struct {
	res          result
	brokers      float64
	brokersPerOp time.Duration // the nodes' CPU time per successful operation
}

// columns: the result's own, and the medians of the brokers' figures.
func (clusterRun) columns() []column[clusterRun] {
	return []column[clusterRun]{
		nested(func(r *clusterRun) *result { return &r.res }),
		mid(func(r *clusterRun) *float64 { return &r.brokers }),
		mid(func(r *clusterRun) *time.Duration { return &r.brokersPerOp }),
	}
}

func (r clusterRun) progress(o *options, name string, run int) {
	r.res.progress(o, name, run)
	fmt.Fprintf(os.Stderr, "         nats-server processes: %.2f cores, %s per operation\n", r.brokers, fmtMicros(r.brokersPerOp))
}

// measure runs f and counts the cores the nodes used meanwhile, which it
// takes out of the result's others (the nodes are the system under test's
// broker, not a disturbance). It fails if a node has exited.
func (c *natsCluster) measure(f func() (result, error)) (clusterRun, error) {
	cpu0, err0 := c.cpu()
	t0 := time.Now()
	res, err := f()
	if err != nil {
		return clusterRun{}, err
	}
	cpu1, err1 := c.cpu()
	run := clusterRun{res: res}
	if wall := time.Since(t0).Seconds(); err0 == nil && err1 == nil && wall > 0 {
		run.brokers = (cpu1 - cpu0).Seconds() / wall
		run.res.cpu.others = max(run.res.cpu.others-run.brokers, 0)
		if res.rate > 0 {
			run.brokersPerOp = time.Duration(run.brokers / res.rate * float64(time.Second))
		}
	}
	return run, c.alive()
}

package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// deploymentOf is a pusher of a deployment of n partitions, only to make
// its partition consumers (partitionConsumer) as one of its replicas
// would.
func deploymentOf(n int) *Pusher {
	return &Pusher{cfg: Config{Partitions: n, Failover: 6 * time.Second, PartitionWindow: 256}}
}

// TestAutoLearnsTheCountFromAnyPartitionConsumer: a pusher left to choose
// (auto) that finds only some of a deployment's partition consumers
// (another replica of a new deployment is still creating them, one
// goroutine each) runs the count they record, not the highest number + 1
// it sees nor its own default, and Start returns with every partition
// consumer made. Before, a replica that listed only pushgo-deliver-0 ran
// 1 partition for its life while the other ran 2, and each sent some
// devices' pushes twice.
func TestAutoLearnsTheCountFromAnyPartitionConsumer(t *testing.T) {
	for _, tc := range []struct {
		found, count int // the consumer found, and the count it records
	}{{0, 3}, {1, 4}} {
		t.Run(fmt.Sprintf("consumer %d of %d", tc.found, tc.count), func(t *testing.T) {
			b := brokertest.Start(t)
			nc, js := b.Conn(t)
			ctx := context.Background()
			if _, err := js.CreateConsumer(ctx, streams.Ops, deploymentOf(tc.count).partitionConsumer(tc.found, 0)); err != nil {
				t.Fatal(err)
			}
			p := startPartitioned(t, nc, Config{})
			defer p.Close()
			if p.cfg.Partitions != tc.count || len(p.parts) != tc.count {
				t.Fatalf("auto beside consumer %d of a deployment of %d: %d partitions (%d loops)", tc.found, tc.count, p.cfg.Partitions, len(p.parts))
			}
			if got := partitionConsumers(t, js); len(got) != tc.count {
				t.Fatalf("partition consumers when Start returned: %v, want %d", got, tc.count)
			}
		})
	}
}

// TestALateCreatorOfConsumerZeroTakesTheFirstCreatorsCount: of two
// replicas of a new deployment that both listed no partition consumer,
// the first to create pushgo-deliver-0 sets the count; the other's
// create-only request finds it recording another count (here the first
// is a single-node process's 1, the second a pusher-only process's 2), so
// it lists again and runs 1.
func TestALateCreatorOfConsumerZeroTakesTheFirstCreatorsCount(t *testing.T) {
	b := brokertest.Start(t)
	_, js := b.Conn(t)
	ctx := context.Background()
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateConsumer(ctx, deploymentOf(SingleNodePartitions).partitionConsumer(0, 0)); err != nil {
		t.Fatal(err)
	}
	p := &Pusher{cfg: Config{Partitions: DefaultPartitions, NewPartitions: DefaultPartitions, Failover: 6 * time.Second, PartitionWindow: 256},
		opsStream: s, log: slog.New(slog.DiscardHandler)}
	// As it listed: nothing.
	if _, err := p.ensurePartitions(ctx, map[string]*jetstream.ConsumerInfo{}, 0); err != errPartitionsRaced {
		t.Fatalf("creating the partitions after another replica made consumer 0 with another count: %v, want errPartitionsRaced", err)
	}
	p.cfg.Partitions = 0 // auto
	if _, _, err := p.settlePartitions(ctx); err != nil {
		t.Fatal(err)
	}
	if p.cfg.Partitions != SingleNodePartitions {
		t.Fatalf("the late creator runs %d partitions, want the first creator's %d", p.cfg.Partitions, SingleNodePartitions)
	}
	if got := partitionConsumers(t, js); len(got) != SingleNodePartitions {
		t.Fatalf("partition consumers %v", got)
	}
}

// TestAChangeOfTheCountStartsEveryPartitionFromTheLowestFloor: setting 2
// partitions by hand on a stopped deployment of 4 whose partitions stand
// at different floors (what they had in flight when they stopped) makes
// both partitions again after the lowest floor, a removed partition's
// included: a device of any old partition may be in either new one, and
// none of its operations is skipped. The removed consumers and their
// floors' record are gone (a later increase starts them from the lowest
// floor again, not from where they were), and the record of the others
// is that floor.
func TestAChangeOfTheCountStartsEveryPartitionFromTheLowestFloor(t *testing.T) {
	b := brokertest.Start(t)
	nc, js := b.Conn(t)
	ctx := context.Background()
	floorsKV, err := js.KeyValue(ctx, streams.PartitionFloorsBucket)
	if err != nil {
		t.Fatal(err)
	}
	old := deploymentOf(4)
	for i, start := range []uint64{6, 4, 9, 2} { // ack floors 5, 3, 8, 1
		if _, err := js.CreateConsumer(ctx, streams.Ops, old.partitionConsumer(i, start)); err != nil {
			t.Fatal(err)
		}
		if _, err := floorsKV.Put(ctx, strconv.Itoa(i), []byte(strconv.FormatUint(start-1, 10))); err != nil {
			t.Fatal(err)
		}
	}
	p := startPartitioned(t, nc, Config{Partitions: 2})
	defer p.Close()
	if got := partitionConsumers(t, js); !slices.Equal(got, []string{"pushgo-deliver-0", "pushgo-deliver-1"}) {
		t.Fatalf("partition consumers after the change to 2: %v", got)
	}
	for i := range 2 {
		c, err := js.Consumer(ctx, streams.Ops, fmt.Sprint(PartitionConsumerPrefix, i))
		if err != nil {
			t.Fatal(err)
		}
		info := c.CachedInfo()
		if info.Config.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || info.Config.OptStartSeq != 2 || info.Config.Metadata["partitions"] != "2" {
			t.Errorf("partition %d: starts with policy %v at %d, records %q; want after the lowest floor (2), recording 2",
				i, info.Config.DeliverPolicy, info.Config.OptStartSeq, info.Config.Metadata["partitions"])
		}
		if e, err := floorsKV.Get(ctx, strconv.Itoa(i)); err != nil || string(e.Value()) != "1" {
			t.Errorf("partition %d's recorded floor: %v %v, want 1", i, e, err)
		}
	}
	for _, i := range []string{"2", "3"} {
		if e, err := floorsKV.Get(ctx, i); err != jetstream.ErrKeyNotFound {
			t.Errorf("removed partition %s's recorded floor: %v %v, want none", i, e, err)
		}
	}
}

// TestAChangeOfTheCountWhileAReplicaRunsIsRefused: a replica started with
// another count than the one the running replicas run does not change it
// under them (they hash devices with theirs): it waits for them to stop,
// up to the failover time and a little more, then its Start fails naming
// PUSHGO_DELIVERY_PARTITIONS, and the deployment is as it was. Once they
// have stopped, the same start changes it.
func TestAChangeOfTheCountWhileAReplicaRunsIsRefused(t *testing.T) {
	b := brokertest.Start(t)
	nc, js := b.Conn(t)
	running := startPartitioned(t, nc, Config{Partitions: 2, Failover: 3 * time.Second})
	waitReady(t, running) // pulling its partitions
	nc2, _ := b.Conn(t)
	p, err := Start(context.Background(), nc2, Config{Partitions: 3, Failover: 3 * time.Second})
	if err == nil {
		p.Close()
		t.Fatal("a start with 3 partitions beside a running replica of 2 changed the count")
	}
	if !strings.Contains(err.Error(), "PUSHGO_DELIVERY_PARTITIONS is 3") || !strings.Contains(err.Error(), "runs 2") {
		t.Errorf("the refusal does not name the setting and both counts: %v", err)
	}
	if got := partitionConsumers(t, js); len(got) != 2 {
		t.Fatalf("partition consumers after the refused change: %v", got)
	}
	running.Close()
	p = startPartitioned(t, nc2, Config{Partitions: 3, Failover: 3 * time.Second})
	defer p.Close()
	if got := partitionConsumers(t, js); len(got) != 3 {
		t.Fatalf("partition consumers after the change once the replica stopped: %v", got)
	}
}

// TestAReplicaStopsWhenTheCountChangesUnderIt: a replica running 2
// partitions whose deployment's consumers come to record another count (a
// replica with another count started in the same instant and changed it)
// stops, Run returning the error, rather than go on hashing devices with
// its own: at its next takeover of a partition (the reset's answer
// carries the record), or when it finds a partition consumer missing,
// before creating it again with its own count.
func TestAReplicaStopsWhenTheCountChangesUnderIt(t *testing.T) {
	for _, how := range []string{"at a takeover", "at a missing consumer"} {
		t.Run(how, func(t *testing.T) {
			b := brokertest.Start(t)
			nc, js := b.Conn(t)
			ctx := context.Background()
			p := startPartitioned(t, nc, Config{Partitions: 2, Failover: 3 * time.Second})
			defer p.Close()
			ran := make(chan error, 1)
			go func() { ran <- p.Run(context.Background()) }()
			// Once its loops have updated their consumers (their first
			// request)...
			waitReady(t, p)
			// ...consumer 0, the one whose record is in force, comes to
			// record 3.
			c, err := js.Consumer(ctx, streams.Ops, PartitionConsumerPrefix+"0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.CachedInfo().Config
			cfg.Metadata = map[string]string{"partitions": "3"}
			if _, err := js.UpdateConsumer(ctx, streams.Ops, cfg); err != nil {
				t.Fatal(err)
			}
			if how == "at a takeover" {
				// The first operation makes the replica take partition 0.
				if _, err := js.Publish(ctx, streams.OpSubject(ids.NewChannelID(), ops.KindMessage, fmt.Sprintf("%032x", 1)), []byte("{}")); err != nil {
					t.Fatal(err)
				}
			} else if err := js.DeleteConsumer(ctx, streams.Ops, PartitionConsumerPrefix+"1"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-ran:
				if err == nil || !strings.Contains(err.Error(), "changed to 3") {
					t.Fatalf("Run returned %v, want the count's change", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the replica kept running 2 partitions under a deployment of 3")
			}
			if how == "at a missing consumer" {
				if got := partitionConsumers(t, js); len(got) != 1 {
					t.Errorf("partition consumers after the replica stopped: %v (the missing one created again?)", got)
				}
			}
		})
	}
}

// waitReady waits until every loop of p runs (its partitions' loops have
// created or updated their consumers and pull).
func waitReady(t *testing.T, p *Pusher) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the replica is not ready: %v", p.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAChangeOfTheCountWaitsOutAReplicaBetweenPulls: a replica of an idle
// stream holds no pin, and between two of its pulls no pull is waiting. A
// start with another count that saw the partitions idle once changed the
// count under such a replica (seen on a loaded machine); it must see them
// idle for two pulls' length, without a break, and so refuses the change
// while a replica pulls every second.
func TestAChangeOfTheCountWaitsOutAReplicaBetweenPulls(t *testing.T) {
	b := brokertest.Start(t)
	nc, js := b.Conn(t)
	startPartitioned(t, nc, Config{Partitions: 2, Failover: 3 * time.Second}).Close()
	// A stand-in for a running replica: on each partition, a pull of
	// 100 ms once a second.
	ctx, cancel := context.WithCancel(context.Background())
	var pullers sync.WaitGroup
	defer pullers.Wait()
	defer cancel()
	for i := range 2 {
		c, err := js.Consumer(ctx, streams.Ops, fmt.Sprint(PartitionConsumerPrefix, i))
		if err != nil {
			t.Fatal(err)
		}
		pullers.Go(func() {
			for ctx.Err() == nil {
				if batch, err := c.Fetch(1, jetstream.FetchMaxWait(100*time.Millisecond), jetstream.FetchPriorityGroup(PriorityGroup)); err == nil {
					for range batch.Messages() {
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(900 * time.Millisecond):
				}
			}
		})
	}
	nc2, _ := b.Conn(t)
	p, err := Start(context.Background(), nc2, Config{Partitions: 3, Failover: 3 * time.Second})
	if err == nil {
		p.Close()
		t.Fatal("a start with 3 partitions changed the count under a replica of 2 that pulls every second")
	}
	if !strings.Contains(err.Error(), "PUSHGO_DELIVERY_PARTITIONS is 3") {
		t.Errorf("the refusal does not name the setting: %v", err)
	}
	if got := partitionConsumers(t, js); len(got) != 2 {
		t.Fatalf("partition consumers after the refused change: %v", got)
	}
}

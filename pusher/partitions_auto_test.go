package pusher

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestPartitionsAuto: a pusher left to choose (Partitions 0) starts a new
// deployment with DefaultPartitions partition consumers, and joins an
// existing deployment with that deployment's count, so an upgrade from
// the old default (8) or a deployment set to another count keeps its
// devices where they are.
func TestPartitionsAuto(t *testing.T) {
	b := brokertest.Start(t)
	nc, js := b.Conn(t)

	p := startPartitioned(t, nc, Config{})
	if p.cfg.Partitions != DefaultPartitions || len(p.parts) != DefaultPartitions {
		t.Fatalf("a new deployment: %d partitions (%d loops), want %d", p.cfg.Partitions, len(p.parts), DefaultPartitions)
	}
	waitPartitionConsumers(t, js, DefaultPartitions)
	p.Close()

	// The deployment is set to 5 (as PUSHGO_DELIVERY_PARTITIONS=5 would);
	// a pusher left to choose then joins it at 5.
	p = startPartitioned(t, nc, Config{Partitions: 5})
	waitPartitionConsumers(t, js, 5)
	p.Close()
	p = startPartitioned(t, nc, Config{})
	defer p.Close()
	if p.cfg.Partitions != 5 || len(p.parts) != 5 {
		t.Fatalf("an existing deployment of 5: %d partitions (%d loops)", p.cfg.Partitions, len(p.parts))
	}
	waitPartitionConsumers(t, js, 5)
}

// TestNewPartitionsOnlyForANewDeployment: NewPartitions (a single-node
// process's 1) is the count of a new deployment, and never changes an
// existing one's: a deployment made with two partitions, then run by a
// pusher left to choose with NewPartitions 1 (an upgraded single node),
// keeps running both, so no device moves to another partition.
func TestNewPartitionsOnlyForANewDeployment(t *testing.T) {
	b := brokertest.Start(t)
	nc, js := b.Conn(t)
	p := startPartitioned(t, nc, Config{NewPartitions: SingleNodePartitions})
	if p.cfg.Partitions != SingleNodePartitions || len(p.parts) != SingleNodePartitions {
		t.Fatalf("a new single-node deployment: %d partitions (%d loops), want %d", p.cfg.Partitions, len(p.parts), SingleNodePartitions)
	}
	waitPartitionConsumers(t, js, SingleNodePartitions)
	p.Close()

	b2 := brokertest.Start(t)
	nc2, js2 := b2.Conn(t)
	p = startPartitioned(t, nc2, Config{Partitions: 2})
	waitPartitionConsumers(t, js2, 2)
	p.Close()
	p = startPartitioned(t, nc2, Config{NewPartitions: SingleNodePartitions})
	defer p.Close()
	if p.cfg.Partitions != 2 || len(p.parts) != 2 {
		t.Fatalf("an existing deployment of 2 under NewPartitions %d: %d partitions (%d loops)", SingleNodePartitions, p.cfg.Partitions, len(p.parts))
	}
	waitPartitionConsumers(t, js2, 2)

	if _, err := Start(context.Background(), nc2, Config{NewPartitions: MaxPartitions + 1}); err == nil {
		t.Errorf("NewPartitions %d accepted", MaxPartitions+1)
	}
}

func startPartitioned(t *testing.T, nc *nats.Conn, cfg Config) *Pusher {
	t.Helper()
	p, err := Start(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// partitionConsumers lists the partition consumers of PUSHGO_OPS.
func partitionConsumers(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	l := s.ListConsumers(ctx)
	for info := range l.Info() {
		if strings.HasPrefix(info.Name, PartitionConsumerPrefix) {
			names = append(names, info.Name)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// waitPartitionConsumers waits until the partition loops, which create
// their consumers once running, have made n.
func waitPartitionConsumers(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := partitionConsumers(t, js); len(got) != n; got = partitionConsumers(t, js) {
		if time.Now().After(deadline) {
			t.Fatalf("partition consumers %v, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package pusher

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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
	ctx := context.Background()
	consumers := func() []string {
		t.Helper()
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
	// The loops create their consumers once running: wait for them.
	waitConsumers := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got := consumers(); len(got) != n; got = consumers() {
			if time.Now().After(deadline) {
				t.Fatalf("partition consumers %v, want %d", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	start := func(n int) *Pusher {
		t.Helper()
		p, err := Start(ctx, nc, Config{Partitions: n})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p := start(0)
	if p.cfg.Partitions != DefaultPartitions || len(p.parts) != DefaultPartitions {
		t.Fatalf("a new deployment: %d partitions (%d loops), want %d", p.cfg.Partitions, len(p.parts), DefaultPartitions)
	}
	waitConsumers(DefaultPartitions)
	p.Close()

	// The deployment is set to 5 (as PUSHGO_DELIVERY_PARTITIONS=5 would);
	// a pusher left to choose then joins it at 5.
	p = start(5)
	waitConsumers(5)
	p.Close()
	p = start(0)
	defer p.Close()
	if p.cfg.Partitions != 5 || len(p.parts) != 5 {
		t.Fatalf("an existing deployment of 5: %d partitions (%d loops)", p.cfg.Partitions, len(p.parts))
	}
	waitConsumers(5)
}

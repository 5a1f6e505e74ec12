package leaderread

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestOnLeaderWaitsForTheStreamsBound: OnLeader's gets through one Stream,
// all its callers together, are at most leaderGetsPerStream at a time:
// with every place taken by others, a call waits (here until its deadline)
// and sends nothing; once places are free it reads. Each get is a
// JetStream API request, and the broker drops its whole API queue past
// 10,000 waiting.
func TestOnLeaderWaitsForTheStreamsBound(t *testing.T) {
	br := brokertest.Start(t)
	ctx := context.Background()
	r, err := Open(ctx, br.JS, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := br.JS.Publish(ctx, streams.OpSubject("c", "event", "e"), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if cap(r.gets) != leaderGetsPerStream {
		t.Fatalf("the stream's bound is %d, want %d", cap(r.gets), leaderGetsPerStream)
	}
	for range leaderGetsPerStream {
		r.gets <- struct{}{} // other callers' gets in flight
	}
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	got, err := r.OnLeader(wctx, []uint64{ack.Sequence})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || got != nil {
		t.Fatalf("with every place taken: %v, %v; want the deadline, nothing read", got, err)
	}
	<-r.gets
	got, err = r.OnLeader(ctx, []uint64{ack.Sequence})
	if err != nil || len(got) != 1 || got[0] == nil || got[0].Sequence != ack.Sequence {
		t.Fatalf("with a place free: %v, %v", got, err)
	}
	if len(r.gets) != leaderGetsPerStream-1 {
		t.Fatalf("%d places taken after the read, want %d: a place not given back", len(r.gets), leaderGetsPerStream-1)
	}
}

// TestOnLeaderGivesBackEveryPlace: calls whose context ends at any moment,
// a get taking its place as the end comes included, give every place of
// the stream back: one lost at each such race left the stream's reads
// waiting for good once all of them were.
func TestOnLeaderGivesBackEveryPlace(t *testing.T) {
	br := brokertest.Start(t)
	ctx := context.Background()
	r, err := Open(ctx, br.JS, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for range 64 {
		ack, err := br.JS.Publish(ctx, streams.OpSubject("c", "event", "e"), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for range 2000 {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(time.Duration(rng.IntN(200))*time.Microsecond, cancel)
		wg.Go(func() {
			defer cancel()
			_, _ = r.OnLeader(cctx, seqs)
		})
	}
	wg.Wait()
	if n := len(r.gets); n != 0 {
		t.Fatalf("%d of the stream's places still taken once every call returned", n)
	}
}

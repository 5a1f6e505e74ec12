package projector

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestAReplicaStartedFarBehindSaysSoAtOnce: a replica whose store opens far
// behind the log (a new one, a restart after a long stop, a rebuild) says
// it is catching up from its first read on, so the front asks another
// replica at once. Until its fold's first message (after its first prune)
// it said nothing: a read it could not reach waited its whole ReadWait and
// got a plain projection_lagging, which the front does not hand on.
func TestAReplicaStartedFarBehindSaysSoAtOnce(t *testing.T) {
	b := brokertest.Start(t)
	last := appendLog(t, b.JS, mixedLog(rand.New(rand.NewPCG(7, 7)), 4*catchUpLag))
	p, err := Start(context.Background(), b.NC, Config{InMemory: true, Serve: true, ReadWait: time.Minute, FoldPartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// ReadWait is a minute: a replica that does not know it is catching
	// up waits until its fold reaches the read (about a second here),
	// then answers; one that knows says so at once.
	resp, _ := p.ServeLocal(&reads.Request{Route: reads.ChannelHistory, ChannelID: "c", MinSeq: last})
	if resp.ErrorCode == "" || !resp.CatchingUp {
		t.Fatalf("a read %d operations ahead of the store, first thing: %q (catching up %v); want catching up, at once",
			last, resp.ErrorCode, resp.CatchingUp)
	}
}

// TestAReplicaOverALogThatAgedOutIsNotCatchingUp: a log whose entries all
// aged out (its last sequence high, nothing in it) leaves a new replica
// nothing to fold: it is ready at once, not "catching up" with operations
// that are gone, for ever (no message would come to end it).
func TestAReplicaOverALogThatAgedOutIsNotCatchingUp(t *testing.T) {
	so := streams.DefaultOptions()
	so.Retention, so.DedupWindow = 2*time.Second, time.Second
	b := brokertest.Start(t, brokertest.Streams(so))
	appendLog(t, b.JS, mixedLog(rand.New(rand.NewPCG(7, 7)), 2*catchUpLag))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := b.JS.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	for s.CachedInfo().State.Msgs > 0 { // every entry aged out
		time.Sleep(100 * time.Millisecond)
		if _, err := s.Info(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Start(ctx, b.NC, Config{InMemory: true, Serve: true, FoldPartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Ready once its folds run; before, "rebuilding ... folded 0 of
	// 20000" for as long as no operation came.
	deadline := time.Now().Add(20 * time.Second)
	for err := p.Ready(); err != nil; err = p.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("a replica of a log with nothing left in it, 20 s after its start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

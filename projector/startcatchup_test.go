package projector

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/reads"
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

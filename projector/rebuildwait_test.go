package projector

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/reads"
)

// TestARebuildEndsTheReadsWaitingForTheFold: a read waits for an operation
// the fold has not reached when a rebuild begins (its folds stopped first).
// It ends at once, read_unavailable, which the front asks another replica;
// it waited its whole ReadWait for a fold that had stopped, and the
// rebuild, and every read of the process behind it, waited with it.
func TestARebuildEndsTheReadsWaitingForTheFold(t *testing.T) {
	b := brokertest.Start(t)
	last := appendLog(t, b.JS, mixedLog(rand.New(rand.NewPCG(5, 5)), 200))
	p, err := Start(context.Background(), b.NC, Config{InMemory: true, Serve: true, ReadWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, p, last)
	answered := make(chan reads.Response, 1)
	go func() {
		r, _ := p.ServeLocal(&reads.Request{Route: reads.ChannelHistory, ChannelID: "c", MinSeq: last + 1}) // never appended
		answered <- r
	}()
	for p.awaited.Load() <= last { // the read is waiting for the fold
		time.Sleep(time.Millisecond)
	}
	p.requestRebuild(errors.New("test: a corrupt projection"))
	select {
	case r := <-answered:
		if r.ErrorCode != apierr.ReadUnavailable {
			t.Fatalf("the waiting read: %+v, want read_unavailable", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting read did not end with the rebuild (its ReadWait is an hour)")
	}
}

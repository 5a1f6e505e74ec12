package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestCreatedThroughOneReplicaAuthorizesAtOnceThroughAnother: on a
// 3-node cluster, a channel created by the registry of one ingest replica
// (attached to the bucket leader's server) is found, and its password
// accepted, by the registry of another replica attached to a follower's
// server, at once, 300 times in a row: never 404 channel_not_found.
// A rename through the second replica at once succeeds too. Before, the
// second replica's lookup of a channel its view had not yet
// seen was a direct get that the follower answered "not found".
func TestCreatedThroughOneReplicaAuthorizesAtOnceThroughAnother(t *testing.T) {
	c := brokertest.StartCluster(t)
	bucket := "KV_" + streams.ChannelsBucket
	c.LeadOn(t, bucket, 0)
	p := c.Placement(t, bucket)
	ctx := context.Background()
	open := func(node int) *registry.Registry {
		_, js := c.Conn(t, node)
		r, err := registry.Open(ctx, js, registry.Options{Argon2: registry.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	a, b := open(p.Leader), open(p.Followers[0])
	// 100: the old code missed about 60% of these reads, so 100 cannot all
	// pass by luck (0.4^100; 300 cost make test's ten minutes for nothing
	// more; e2e's TestCluster does 1,000 through the HTTP API).
	const n = 100
	notFound := 0
	for i := range n {
		ch, err := a.Create(ctx, "home", "correct-horse", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, aerr := b.Authorize(ctx, ch.ID, "correct-horse")
		switch {
		case aerr != nil && aerr.Status() == 404:
			notFound++
		case aerr != nil:
			t.Fatalf("channel %d: %v", i, aerr)
		case got.ID != ch.ID || got.Name != "home":
			t.Fatalf("channel %d: authorized %+v, want %s", i, got, ch.ID)
		}
	}
	if notFound > 0 {
		t.Errorf("%d of %d channels created through one replica were 404 through the other", notFound, n)
	}
	// A rename through the other replica at once: its compare-and-swap
	// reads the record, which a follower did not have yet.
	failed := 0
	for i := range n / 5 {
		ch, err := a.Create(ctx, "home", "correct-horse", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Rename(ctx, ch, "renamed")
		if err != nil {
			failed++
			t.Logf("rename %d: %v", i, err)
			continue
		}
		if got.Name != "renamed" || got.Revision <= ch.Revision {
			t.Fatalf("rename %d: %+v", i, got)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d renames at once through the other replica failed", failed, n/5)
	}
}

package apitokens_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestCreatedThroughOneReplicaAuthorizesAtOnceThroughAnother: on a
// 3-node cluster, an integration token created through one ingest
// replica (attached to the bucket leader's server) is accepted at once by
// another replica attached to a follower's server, 300 times in a row:
// never 401 invalid_api_token. Before, the second replica's lookup of a
// token its view had not yet seen was a direct get the follower answered
// "not found".
func TestCreatedThroughOneReplicaAuthorizesAtOnceThroughAnother(t *testing.T) {
	a, b := leaderAndFollower(t)
	ctx := context.Background()
	channelID := ids.NewChannelID()
	// 100: the old code missed about 60% of these reads, so 100 cannot all
	// pass by luck (0.4^100; 300 cost make test's ten minutes for nothing
	// more; e2e's TestCluster does 1,000 through the HTTP API).
	const n = 100
	refused := 0
	for i := range n {
		secret, tok, err := a.Create(ctx, channelID, "ci", []string{"events.ingest"}, now)
		if err != nil {
			t.Fatal(err)
		}
		got, aerr := b.Authorize(ctx, "Api-Token "+secret, "events.ingest")
		switch {
		case aerr != nil && aerr.Status() == 401:
			refused++
		case aerr != nil:
			t.Fatalf("token %d: %v", i, aerr)
		case got.ID != tok.ID || got.ChannelID != channelID:
			t.Fatalf("token %d: authorized %+v, want %s", i, got, tok.ID)
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d tokens created through one replica were refused through the other", refused, n)
	}
}

// TestListedThroughAnotherReplicaAtOnce: on a 3-node cluster, a token
// created (or revoked) through a replica attached to the bucket leader's
// server is in (or out of) the list another replica, attached to a
// follower's server, answers right after, 50 times in a row: List syncs
// its view with the leader before reading it.
func TestListedThroughAnotherReplicaAtOnce(t *testing.T) {
	a, b := leaderAndFollower(t)
	ctx := context.Background()
	channelID := ids.NewChannelID()
	listed := func() []string {
		toks, aerr := b.List(ctx, channelID)
		if aerr != nil {
			t.Fatal(aerr)
		}
		var got []string
		for _, tok := range toks {
			got = append(got, tok.ID)
		}
		return got
	}
	for i := range 50 {
		_, tok, err := a.Create(ctx, channelID, "ci", []string{"events.ingest"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := listed(); !slices.Equal(got, []string{tok.ID}) {
			t.Fatalf("round %d: listed %v right after creating %s", i, got, tok.ID)
		}
		if aerr := a.Revoke(ctx, channelID, tok.ID); aerr != nil {
			t.Fatal(aerr)
		}
		if got := listed(); len(got) != 0 {
			t.Fatalf("round %d: listed %v right after revoking %s", i, got, tok.ID)
		}
	}
}

// leaderAndFollower starts a 3-node cluster whose token bucket is led by
// node 2 and opens a registry on the leader's server (a) and one on a
// follower's (b).
func leaderAndFollower(t *testing.T) (a, b *apitokens.Registry) {
	t.Helper()
	c := brokertest.StartCluster(t)
	bucket := "KV_" + streams.APITokensBucket
	c.LeadOn(t, bucket, 2)
	p := c.Placement(t, bucket)
	open := func(node int) *apitokens.Registry {
		_, js := c.Conn(t, node)
		r, err := apitokens.Open(context.Background(), js, apitokens.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	return open(p.Leader), open(p.Followers[1])
}

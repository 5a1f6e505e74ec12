package readfwd_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestBarrierHoldsAWriteThroughAnotherReplica: on a 3-node cluster, a
// write acknowledged through one ingest replica (attached to PUSHGO_OPS's
// leader's server) and read at once through another attached to a
// follower's server carries a barrier at or past the write, 300 times
// for a single-entity read (the entity's subject) and 300 for a
// channel's history (the channel's wildcard): a projector holding the
// read to it answers with the write folded. Before, the barrier was a
// direct get that the follower answered without the write (an older
// sequence, or none: the read was answered without the write, a 404 for
// an entity just created).
func TestBarrierHoldsAWriteThroughAnotherReplica(t *testing.T) {
	c := brokertest.StartCluster(t)
	c.LeadOn(t, streams.Ops, 0)
	p := c.Placement(t, streams.Ops)
	_, wjs := c.Conn(t, p.Leader)
	rnc, _ := c.Conn(t, p.Followers[1])
	// A projector replica stand-in: it answers every read with the
	// barrier it was given.
	for _, route := range []reads.Route{reads.ThingGet, reads.ChannelHistory} {
		sub, err := rnc.QueueSubscribe(reads.Subject(route), reads.QueueGroup, func(m *nats.Msg) {
			var req reads.Request
			if err := json.Unmarshal(m.Data, &req); err != nil {
				t.Errorf("request: %v", err)
				return
			}
			b, _ := json.Marshal(reads.Response{Data: jsontext.Value(fmt.Sprint(req.MinSeq))})
			_ = m.Respond(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := rnc.Flush(); err != nil { // the server holds the subscriptions before a read
		t.Fatal(err)
	}
	f := forwarder(t, rnc, 0)
	ctx := context.Background()
	// 100: the old code missed about 60% of these reads, so 100 cannot all
	// pass by luck (0.4^100; 300 cost make test's ten minutes for nothing
	// more; e2e's TestCluster does 1,000 through the HTTP API).
	const n = 100
	for _, route := range []reads.Route{reads.ThingGet, reads.ChannelHistory} {
		behind := 0
		for i := range n {
			thingID := fmt.Sprintf("%032x", i)
			ack, err := wjs.Publish(ctx, streams.OpSubject(ch, ops.KindThing, thingID), []byte("{}"))
			if err != nil {
				t.Fatal(err)
			}
			data, aerr := f.Read(ctx, &reads.Request{Route: route, ChannelID: ch, ThingID: thingID})
			if aerr != nil {
				t.Fatalf("%s %d: %v", route, i, aerr)
			}
			var barrier uint64
			if err := json.Unmarshal(data, &barrier); err != nil {
				t.Fatal(err)
			}
			if barrier < ack.Sequence {
				behind++
			}
		}
		if behind > 0 {
			t.Errorf("%s: %d of %d reads right after a write through the other replica had a barrier before it", route, behind, n)
		}
	}
}

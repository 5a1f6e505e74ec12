package pusher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestOperationNotYetOnTheFollowerIsNotTakenAsGone: on a 3-node cluster,
// a pusher attached to a follower's server (with the pusher role's
// permissions) reads an operation by the sequence it learned from the
// broker right after the operation was acknowledged through the leader's
// server, 300 times each way it does: a retry task's operation
// (opCache.get) is found, never nil ("no longer in the log": the device
// would get an expired outcome instead of its push), and a gap a
// partition fills from the log (fillGap) passes the operation to the
// intake, never over it as deleted (the devices of the partition would
// never get it). Before, both read by direct get, which the follower
// answered "not found" until it had stored the operation.
func TestOperationNotYetOnTheFollowerIsNotTakenAsGone(t *testing.T) {
	c := brokertest.StartCluster(t)
	c.LeadOn(t, streams.Ops, 0)
	pl := c.Placement(t, streams.Ops)
	_, wjs := c.Conn(t, pl.Leader)
	_, rjs := c.ConnAs(t, pl.Followers[0], broker.RolePusher)
	ctx := context.Background()
	s, err := rjs.Stream(ctx, streams.Ops)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pusher{cfg: Config{Failover: 6 * time.Second}, ops: newOpCache(leaderread.New(rjs, s), 4096), opsStream: s, metrics: newMetrics()}
	pt := &partition{p: p, intake: make(chan intakeItem, 1)}
	ep := &epoch{}
	channelID := ids.NewChannelID()
	i := 0
	// publish appends an operation through the leader's server and returns
	// its sequence and entity id.
	publish := func() (uint64, string) {
		i++
		entityID := fmt.Sprintf("%032x", i)
		data, err := json.Marshal(ops.Envelope{V: ops.EnvelopeVersion, Op: ops.MessageCreate, ChannelID: channelID,
			OpID: fmt.Sprint("op-", i), EntityID: entityID, Payload: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := wjs.Publish(ctx, streams.OpSubject(channelID, ops.KindMessage, entityID), data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence, entityID
	}
	// 100: the old code missed about 60% of these reads, so 100 cannot all
	// pass by luck (0.4^100; 300 cost make test's ten minutes for nothing
	// more; e2e's TestCluster does 1,000 through the HTTP API).
	const n = 100
	expired, passed := 0, 0
	for range n {
		seq, _ := publish()
		pt.last = seq - 1
		if !pt.fillGap(ctx, ep, seq+1) {
			t.Fatalf("seq %d: the gap could not be read", seq)
		}
		select {
		case it := <-pt.intake:
			pt.pending.Add(-1)
			if it.seq != seq {
				t.Fatalf("gap filled with %d, want %d", it.seq, seq)
			}
		default:
			passed++
		}
	}
	for range n {
		seq, entityID := publish()
		env, err := p.ops.get(ctx, seq)
		switch {
		case err != nil:
			t.Fatal(err)
		case env == nil:
			expired++
		case env.EntityID != entityID:
			t.Fatalf("seq %d: operation of %s, want %s", seq, env.EntityID, entityID)
		}
	}
	if expired > 0 {
		t.Errorf("%d of %d operations read by sequence were taken as no longer in the log", expired, n)
	}
	if passed > 0 {
		t.Errorf("%d of %d operations in a gap were passed over as deleted", passed, n)
	}
}

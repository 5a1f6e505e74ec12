package projector

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestFoldableDeadLetterIsNotTakenAsGoneOnAFollowersWord: on a 3-node
// cluster, a projector attached to a follower's server (with the
// projector role's permissions) that holds as a dead letter an entry
// this version folds finds it in the log, 1,000 times, even right after
// the entry was acknowledged through the leader's server: foldable names
// it, so the projection is folded again. Before, the entry was read by
// direct get, and the follower's "not found" passed it over as having
// left the log: the operation stayed skipped until the next start.
func TestFoldableDeadLetterIsNotTakenAsGoneOnAFollowersWord(t *testing.T) {
	c := brokertest.StartCluster(t)
	c.LeadOn(t, streams.Ops, 0)
	pl := c.Placement(t, streams.Ops)
	_, wjs := c.Conn(t, pl.Leader)
	_, rjs := c.ConnAs(t, pl.Followers[0], broker.RoleProjector)
	p := &Projector{js: rjs}
	ctx := context.Background()
	const channelID, n = "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1000
	missed := 0
	for i := range n {
		now := int64(1713750000000 + i)
		id := fmt.Sprintf("msg%04d", i)
		payload, err := json.Marshal(ops.MessagePayload{MessageID: id, Title: "hello", Severity: "low", OccurredAt: now})
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(ops.Envelope{V: ops.EnvelopeVersion, Op: ops.MessageCreate, ChannelID: channelID,
			OpID: fmt.Sprintf("op%05d", i), EntityID: id, AcceptedAt: now, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := wjs.Publish(ctx, streams.OpSubject(channelID, ops.KindMessage, id), data)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.foldable(ctx, streams.Ops, []store.DeadLetter{{Stream: streams.Ops, Seq: ack.Sequence}}); got != ack.Sequence {
			missed++
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d foldable dead letters were passed over", missed, n)
	}
}

package inbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/inbox"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestItemWrittenThroughAnotherServerIsThereAtOnce: on a 3-node cluster,
// an inbox item the pusher stored through the bucket leader's server is
// there for the device at once through an ingest attached to a
// follower's server (the device fetches it the moment the wake-up push
// arrives), 300 times: Get returns it and Ack removes it. Before, both
// read it by direct get, which the follower answered "none": an empty
// page for the item the push announced, and an ack that removed nothing.
func TestItemWrittenThroughAnotherServerIsThereAtOnce(t *testing.T) {
	c := brokertest.StartCluster(t)
	bucket := "KV_" + streams.InboxBucket
	c.LeadOn(t, bucket, 0)
	p := c.Placement(t, bucket)
	ctx := context.Background()
	_, pjs := c.ConnAs(t, p.Leader, broker.RolePusher)
	kv, err := pjs.KeyValue(ctx, streams.InboxBucket)
	if err != nil {
		t.Fatal(err)
	}
	_, ijs := c.ConnAs(t, p.Followers[0], broker.RoleIngest)
	in, err := inbox.Open(ctx, ijs)
	if err != nil {
		t.Fatal(err)
	}
	device := ids.NewDeviceKey()
	// 300: the old code missed about 60% of these reads, so 300 cannot all
	// pass by luck (e2e's TestCluster does 1,000 through the HTTP API).
	const n = 300
	missing, unacked := 0, 0
	for i := range 2 * n {
		seq := uint64(i + 1)
		item := fmt.Sprintf(`{"delivery_id":%q}`, delivery.ID(seq, device))
		if _, err := kv.Put(ctx, delivery.InboxKey(device, seq), []byte(item)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			got, err := in.Get(ctx, device, delivery.ID(seq, device))
			switch {
			case err != nil:
				t.Fatal(err)
			case got == nil:
				missing++
			case string(got) != item:
				t.Fatalf("item %d: %s, want %s", seq, got, item)
			}
			continue
		}
		removed, err := in.Ack(ctx, device, []string{delivery.ID(seq, device)})
		if err != nil {
			t.Fatal(err)
		}
		if removed != 1 {
			unacked++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d items just stored were not there", missing, n)
	}
	if unacked > 0 {
		t.Errorf("%d of %d acks of items just stored removed nothing", unacked, n)
	}
}

// TestAckedItemsLeaveNothing: items acked (v2 ack) or taken (the legacy
// pull) leave no message in the bucket's stream. A purge left a marker on
// each key's subject until the retention passed, and the broker keeps every
// subject with a message in its memory: with one key per push, that memory
// grew with every push of the retention.
func TestAckedItemsLeaveNothing(t *testing.T) {
	b := brokertest.Start(t)
	_, js := b.Conn(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, streams.InboxBucket)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inbox.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	device := ids.NewDeviceKey()
	var acked []string
	for seq := uint64(1); seq <= 20; seq++ {
		if _, err := kv.Put(ctx, delivery.InboxKey(device, seq), []byte(fmt.Sprintf(`{"n":%d}`, seq))); err != nil {
			t.Fatal(err)
		}
		if seq <= 10 {
			acked = append(acked, delivery.ID(seq, device))
		}
	}
	if removed, err := in.Ack(ctx, device, acked); err != nil || removed != 10 {
		t.Fatalf("ack: %d %v", removed, err)
	}
	if taken, err := in.Take(ctx, device, "", 100); err != nil || len(taken) != 10 {
		t.Fatalf("take: %d %v", len(taken), err)
	}
	s, err := js.Stream(ctx, "KV_"+streams.InboxBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 || info.State.NumSubjects != 0 {
		t.Fatalf("after every item was acked or taken, the inbox holds %d messages on %d subjects, want none", info.State.Msgs, info.State.NumSubjects)
	}
}

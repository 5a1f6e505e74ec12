package deliveryflow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestMissingPartitionResumesWhereThePartitionsAre: a partition consumer
// deleted under a running deployment is created again by the replica left
// (a standby, started before any operation, which never acknowledged the
// partition) where the partitions are now, not where that replica once
// knew them to be: the device's old messages are not pushed again, and
// the next one is pushed once. Before, the standby started the partition
// again from its own start-up, the log's first operation here, and the
// device got its five old messages again as new. Where the partitions are
// is the floors' record (streams.PartitionFloorsBucket), which the
// partition's owner writes.
func TestMissingPartitionResumesWhereThePartitionsAre(t *testing.T) {
	e := setup(t, func(c *pusher.Config) {
		c.Partitions, c.Failover, c.BalanceInterval = 2, 3*time.Second, time.Hour
	})
	e.start() // the standby
	ch := e.post("/channel/create", map[string]any{"channel_name": "c", "password": pw})["channel_id"].(string)
	dev := e.device("android", "fcm", fcmToken, ch)
	var old []string
	for i := range 5 {
		old = append(old, e.message(ch, fmt.Sprint("old ", i)))
	}
	for _, op := range old {
		waitFor(t, "an old message sent", func() bool { return e.outcome(op, dev) == delivery.Sent })
	}
	waitPartitionsPassed(t, e)
	// The floors' record holds the device's partition's floor (written at
	// most every second).
	part := pusher.PartitionOf(dev, 2)
	last := lastSeq(t, e)
	floors, err := e.b.JS.KeyValue(context.Background(), streams.PartitionFloorsBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the partition's floor recorded", func() bool {
		v, err := floors.Get(context.Background(), fmt.Sprint(part))
		return err == nil && string(v.Value()) == fmt.Sprint(last)
	})

	// The first replica stops; its partition consumers stay, the
	// standby's to take. The device's partition's consumer is deleted.
	if err := e.push.Close(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprint(pusher.PartitionConsumerPrefix, part)
	if err := e.b.JS.DeleteConsumer(context.Background(), streams.Ops, name); err != nil {
		t.Fatal(err)
	}
	next := e.message(ch, "next")
	deadline := time.Now().Add(30 * time.Second)
	for e.outcome(next, dev) != delivery.Sent {
		if time.Now().After(deadline) {
			t.Fatal("the message after the partition's consumer was deleted was never sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitPartitionsPassed(t, e)
	got := map[string]int{}
	for _, r := range e.fcm.Received(fcmToken) {
		got[r.Data["op_id"]]++
	}
	for _, op := range append(old, next) {
		if got[op] != 1 {
			t.Errorf("operation %s pushed %d times, want once (all: %v)", op, got[op], got)
		}
	}
}

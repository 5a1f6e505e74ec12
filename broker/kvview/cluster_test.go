package kvview_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/kvview"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestSyncThroughAFollowerSeesTheLeadersWrite: on a 3-node cluster, a map
// whose watch is attached to a follower's server holds, after Sync, a
// value written through the leader's server a moment before, 300
// times in a row. Sync asks for the first write after the view's last
// one; a follower that has not stored the write yet would answer "none"
// (the view is current) if its word were taken, so that answer must be
// the leader's.
func TestSyncThroughAFollowerSeesTheLeadersWrite(t *testing.T) {
	c := brokertest.StartCluster(t)
	stream := "KV_" + streams.DevicesBucket
	c.LeadOn(t, stream, 0)
	p := c.Placement(t, stream)
	ctx := context.Background()
	_, wjs := c.Conn(t, p.Leader)
	_, rjs := c.Conn(t, p.Followers[0])
	kv, err := wjs.KeyValue(ctx, streams.DevicesBucket)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kvview.OpenMap(ctx, rjs, streams.DevicesBucket, decodeString, kvview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// 100: the old code missed about 60% of these reads, so 100 cannot all
	// pass by luck (0.4^100; 300 cost make test's ten minutes for nothing
	// more; e2e's TestCluster does 1,000 through the HTTP API).
	const n = 100
	missed := 0
	for i := range n {
		key, val := "k"+strconv.Itoa(i%50), "v"+strconv.Itoa(i)
		if _, err := kv.Put(ctx, key, []byte(val)); err != nil {
			t.Fatal(err)
		}
		if err := m.Watch().Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if v, ok, _ := m.Get(key); !ok || v != val {
			missed++
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d writes through the leader were not in the view after Sync through a follower", missed, n)
	}
	// And with nothing written since, Sync returns (the view is current).
	if err := m.Watch().Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

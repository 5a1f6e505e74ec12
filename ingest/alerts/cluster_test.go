package alerts_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// TestResolvedAtOnceThroughAnotherServer: on a 3-node cluster, an alert
// opened through an ingest attached to the alert keys' leader is resolved
// at once through an ingest attached to a follower's server, 150 times,
// each time twice: the key's first Event, unknown to the second ingest,
// and, once the first has opened the key again, its next Event, which the
// second ingest holds as closed. Every resolve closes the open Event.
// Before, the second ingest read the key by direct get, which the
// follower may answer before it has the claim: the resolve was answered
// "nothing to do" and the Event stayed open.
func TestResolvedAtOnceThroughAnotherServer(t *testing.T) {
	c := brokertest.StartCluster(t)
	bucket := "KV_" + streams.AlertKeysBucket
	c.LeadOn(t, bucket, 0)
	p := c.Placement(t, bucket)
	ctx := context.Background()
	opener, resolver := clusterTracker(t, c, p.Leader), clusterTracker(t, c, p.Followers[0])
	at := wire.Millis(1_800_000_060_000)
	resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}

	// 150 keys, two generations each: 300 resolves (a follower's direct
	// get answered about 60% of such reads "none" in the other cluster
	// tests; 300 cannot all pass by luck).
	const keys = 150
	lost := 0
	for i := range keys {
		r := firing(fmt.Sprint("cluster-", i), "disk full")
		for gen := range 2 {
			opened, aerr := opener.Open(ctx, r)
			if aerr != nil || !opened.Created {
				t.Fatalf("key %d, open %d: %+v %v", i, gen+1, opened, aerr)
			}
			closed, aerr := resolver.Close(ctx, r.Key, resolve)
			if aerr != nil {
				t.Fatalf("key %d, resolve %d: %v", i, gen+1, aerr)
			}
			if closed.Absent {
				lost++
				break // the Event stays open: the key's next report refreshes it
			}
			if !closed.Updated || closed.EventID != opened.EventID {
				t.Fatalf("key %d, resolve %d: %+v, want the close of %s", i, gen+1, closed, opened.EventID)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d resolves through the follower's server found no open Event and closed nothing (of up to %d)", lost, 2*keys)
	}
}

// TestReportedAtOnceThroughAnotherServer: on a 3-node cluster, an alert
// opened through an ingest attached to the alert keys' leader is reported
// again at once through an ingest attached to a follower's server, which
// has not seen the key (an Alertmanager high-availability pair sends each
// notification to both), 20 times, each time twice: the key's first
// Event, and, once the first ingest has resolved it and opened the key
// again, its next Event. The second report updates the Event the first
// opened, every time, and is never refused. The second ingest's claim
// loses, and its next turn reads the key: until 4 December by direct get,
// which a follower may answer without the claim or with the previous
// Event's entry, and each turn that did lost again until the seventh
// answered 503 ("too many concurrent reports of this alert"). Here the
// followers catch up within a turn, so this does not fail on that code;
// a follower restarted a moment before, which answers from 90% caught
// up, is where it did. Now the turn reads the leader.
func TestReportedAtOnceThroughAnotherServer(t *testing.T) {
	c := brokertest.StartCluster(t)
	bucket := "KV_" + streams.AlertKeysBucket
	c.LeadOn(t, bucket, 0)
	p := c.Placement(t, bucket)
	ctx := context.Background()
	first := clusterTracker(t, c, p.Leader)
	at := wire.Millis(1_800_000_060_000)
	resolve := ops.EventRequest{Status: ptr("resolved"), Message: ptr("ok"), Severity: ptr("high"), EventTime: &at}
	const keys = 20
	refused := 0
	for i := range keys {
		// A process of its own per key: one that has not seen it.
		second := clusterTracker(t, c, p.Followers[i%len(p.Followers)])
		r := firing(fmt.Sprint("twice-", i), "disk full")
		for gen := range 2 {
			opened, aerr := first.Open(ctx, r)
			if aerr != nil || !opened.Created {
				t.Fatalf("key %d, open %d: %+v %v", i, gen+1, opened, aerr)
			}
			again := r
			again.ContentHash, again.Event.Message = "h:disk full again", ptr("disk full again")
			got, aerr := second.Open(ctx, again)
			if aerr != nil {
				refused++
				t.Logf("key %d, report %d through the follower's server: %v", i, gen+1, aerr)
			} else if got.EventID != opened.EventID || got.Created {
				t.Fatalf("key %d, report %d through the follower's server: %+v, want an update of %s", i, gen+1, got, opened.EventID)
			}
			if _, aerr := first.Close(ctx, r.Key, resolve); aerr != nil {
				t.Fatalf("key %d, resolve %d: %v", i, gen+1, aerr)
			}
		}
	}
	if refused > 0 {
		t.Errorf("%d of %d reports through the follower's server were refused", refused, 2*keys)
	}
}

// clusterTracker is a tracker, with its writer, of a process attached to
// node of c.
func clusterTracker(t *testing.T, c *brokertest.Cluster, node int) *alerts.Tracker {
	t.Helper()
	ctx := context.Background()
	_, js := c.Conn(t, node)
	w, err := oplog.New(ctx, js, oplog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	tr, err := alerts.New(ctx, js, w, alerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

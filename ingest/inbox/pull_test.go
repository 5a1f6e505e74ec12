package inbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/inbox"
	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestDrainingABacklogReadsItOnce: an app drains a backlog stored in a
// burst as the apps do, pull (no after) and ack, a page at a time: every
// item comes once, in order, and the reads go through the backlog about
// once in all. Each pull and each ack read the rest of the device's
// inbox, so draining n items read about n²/page messages.
func TestDrainingABacklogReadsItOnce(t *testing.T) {
	// A burst: the whole backlog within the copies window; the reads are
	// bounded past what they need by count.
	inbox.SetCopiesScan(t.Cleanup, 20)
	b := brokertest.Start(t)
	ctx := context.Background()
	in, err := inbox.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	device := ids.NewDeviceKey()
	const n, page = 1000, 100
	for seq := uint64(1); seq <= n; seq++ {
		put(t, b.JS, device, seq, fmt.Sprintf(`{"delivery_id":%q}`, delivery.ID(seq, device)))
	}
	before := in.MessagesRead()
	var got []string
	for {
		p, err := in.Pull(ctx, device, "", page)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range p.Items {
			var item struct {
				DeliveryID string `json:"delivery_id"`
			}
			if err := json.Unmarshal(it, &item); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, item.DeliveryID)
		}
		got = append(got, ids...)
		if len(ids) > 0 {
			if removed, err := in.Ack(ctx, device, ids); err != nil || removed != len(ids) {
				t.Fatalf("ack of %d: %d removed, %v", len(ids), removed, err)
			}
		}
		if !p.HasMore {
			break
		}
		if len(got) > n {
			t.Fatalf("more than %d items pulled", n)
		}
	}
	if len(got) != n || got[0] != delivery.ID(1, device) || got[n-1] != delivery.ID(n, device) {
		t.Fatalf("%d items pulled (first %v), want the %d in order", len(got), got[:min(len(got), 3)], n)
	}
	// Each page's pull and ack read its page and copiesScan more: about
	// 2.4n in all. The rest of the inbox at each: about n²/page = 10,000.
	read := in.MessagesRead() - before
	t.Logf("draining %d items read %d messages", n, read)
	if read > 3*n {
		t.Fatalf("draining %d items read %d messages: the reads grow with the backlog", n, read)
	}
}

// TestFetchByDeliveryIDOutlastsClockSkew: the item a wake-up push named is
// found by the v2 pull (Get) and by the legacy pull (Take), and a direct
// push's by its ack alone, even when the servers that stamp the operation
// and its item disagree by more than the reads' slack (here a read that
// starts after the item was stored): the legacy pull answered nothing (the
// Android 1.2 app showed nothing for the wake-up), and the ack removed
// nothing (the Apple app's next full sync filed the push again).
func TestFetchByDeliveryIDOutlastsClockSkew(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	in, err := inbox.Open(ctx, b.JS)
	if err != nil {
		t.Fatal(err)
	}
	device := ids.NewDeviceKey()
	// The operation, in the log: its time starts the item's read.
	ack, err := b.JS.Publish(ctx, streams.OpsSubjectPrefix+"skew", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	id := delivery.ID(ack.Sequence, device)
	put(t, b.JS, device, ack.Sequence, fmt.Sprintf(`{"delivery_id":%q}`, id))
	ack2, err := b.JS.Publish(ctx, streams.OpsSubjectPrefix+"skew", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	id2 := delivery.ID(ack2.Sequence, device)
	put(t, b.JS, device, ack2.Sequence, fmt.Sprintf(`{"delivery_id":%q}`, id2))
	inbox.SetOpClockSlack(t.Cleanup, -time.Hour) // the item's server an hour behind
	got, err := in.Get(ctx, device, id)
	if err != nil || got == nil {
		t.Fatalf("v2 pull of %s: %s, %v", id, got, err)
	}
	taken, err := in.Take(ctx, device, id, 1)
	if err != nil || len(taken) != 1 {
		t.Fatalf("legacy pull of %s: %d items, %v; want the item", id, len(taken), err)
	}
	// The ack of a direct push, alone (the apps' legacy /messages/ack).
	if removed, err := in.Ack(ctx, device, []string{id2}); err != nil || removed != 1 {
		t.Fatalf("ack of %s: %d removed, %v; want the item", id2, removed, err)
	}
}
